// ZeRO stages 1 and 2 for an unchanged torch::optim optimizer (detail/zero_optimizer.hpp): its groups hold this
// rank's pieces of the parameters. Elementwise optimizers (Adam, AdamW, SGD, Adagrad, RMSprop: the ones
// checkpoints support) compute on a piece exactly what they compute on those elements of the whole parameter.
#include "detail/zero_optimizer.hpp"

#include <accelerate/collectives.hpp>
#include <accelerate/error.hpp>

#include <ATen/ATen.h>
#include <cmath>
#include <limits>
#include <set>
#include <torch/optim/optimizer.h>

#include "detail/communicator.hpp"

namespace accelerate::detail {
using nlohmann::json;

ZeroOptimizer::ZeroOptimizer(torch::optim::Optimizer& optimizer, const std::vector<ZeroPartition*>& partitions,
                             const ProcessState& state)
    : optimizer_(optimizer), state_(state) {
  // State held before prepare (loaded by the user) is cut into the pieces below, as a checkpoint would be.
  OptimizerState held;
  try {
    held = optimizer_state(optimizer_);
  } catch (const CheckpointError&) {
    throw ConfigError(
        "prepare(optimizer): ZeRO stages 1 and 2 shard the elementwise optimizers Adam, AdamW, SGD, Adagrad and "
        "RMSprop; this optimizer type is not one of them. Use zero_stage 0 for it.");
  }
  at::NoGradGuard no_grad;
  size_t full_index = 0;
  for (auto& group : optimizer_.param_groups()) {
    full_groups_.push_back(group.params());
    std::vector<at::Tensor> pieces;
    for (const auto& p : full_groups_.back()) {
      const size_t index = full_index++;
      ZeroPartition* owner = nullptr;
      for (auto* partition : partitions) {
        if (partition->contains(p)) owner = partition;
      }
      if (!owner) {
        ACCELERATE_CHECK(!p.requires_grad(), ConfigError, "prepare(optimizer): under ZeRO, parameter ", index,
                         " of the optimizer (shape ", p.sizes(),
                         ") is not a parameter of a model prepared before it. Prepare the model first "
                         "(acc.prepare(model, optimizer, ...)).");
        continue;  // frozen: never stepped
      }
      if (std::find(partitions_.begin(), partitions_.end(), owner) == partitions_.end()) partitions_.push_back(owner);
      const auto* info = owner->piece(p);
      if (!info) continue;  // another rank owns all of it
      auto piece = owner->piece_values(*info);
      if (owner->shards_gradients()) {
        piece.mutable_grad() = owner->buckets()[info->bucket].grad_shard.narrow(0, info->shard_offset, info->length);
      }
      slot_of_[p.unsafeGetTensorImpl()] = slots_.size();
      slot_of_[piece.unsafeGetTensorImpl()] = slots_.size();
      slots_.push_back({piece, info, owner, index});
      pieces.push_back(piece);
    }
    group_slots_.push_back(pieces.size());
    group.params() = std::move(pieces);
  }
  optimizer_.state().clear();
  if (!held.meta.at("state").empty()) {
    load_state(WholeTensors(held.tensors), held.meta, "prepare(optimizer) (its existing state)");
  }
}

void ZeroOptimizer::bind_gradients() {
  for (auto& slot : slots_) {
    if (slot.partition->shards_gradients()) continue;  // bound to the gradient shard once and for all
    const auto& grad = slot.info->param.grad();
    if (!grad.defined()) {
      slot.piece.mutable_grad().reset();
    } else if (!slot.piece.grad().defined() || !slot.piece.grad().is_alias_of(grad)) {
      slot.piece.mutable_grad() = grad.view(-1).narrow(0, slot.info->begin, slot.info->length);
    }
  }
}

void ZeroOptimizer::gather_parameters() {
  for (auto* partition : partitions_) partition->gather_parameters(*detail::communicator_of(state_));
}

void ZeroOptimizer::zero_grad(bool set_to_none) {
  at::NoGradGuard no_grad;
  for (const auto& group : full_groups_) {
    for (auto p : group) {
      if (!p.grad().defined()) continue;
      if (set_to_none) {
        p.mutable_grad().reset();
      } else {
        p.mutable_grad().zero_();
      }
    }
  }
  for (auto& slot : slots_) {
    if (slot.partition->shards_gradients()) {
      slot.piece.mutable_grad().zero_();  // the shard is the gradient's storage: kept, emptied
    } else {
      slot.piece.mutable_grad().reset();
    }
  }
}

std::vector<at::Tensor> ZeroOptimizer::piece_gradients(const std::vector<at::Tensor>& params) {
  bind_gradients();
  std::vector<at::Tensor> grads;
  for (const auto& p : params) {
    auto it = slot_of_.find(p.unsafeGetTensorImpl());
    if (it == slot_of_.end()) continue;
    const auto& grad = slots_[it->second].piece.grad();
    if (grad.defined()) grads.push_back(grad);
  }
  return grads;
}

void ZeroOptimizer::reduce_found_inf(at::Tensor& found_inf) {
  found_inf.copy_(reduce(state_, found_inf, Reduction::Max));
}

double clip_sharded_grad_norm(const ProcessState& state, const std::vector<at::Tensor>& grads, double max_norm,
                              double norm_type) {
  const bool inf = std::isinf(norm_type);
  auto local = at::zeros({}, at::TensorOptions().dtype(at::kFloat).device(state.device()));
  if (!grads.empty()) {
    std::vector<at::Tensor> norms;
    for (const auto& g : grads) norms.push_back(at::linalg_vector_norm(g, norm_type).to(at::kFloat));
    auto stacked = at::stack(norms).to(local.device());
    local = inf ? stacked.max() : stacked.pow(norm_type).sum();
  }
  auto total = reduce(state, local, inf ? Reduction::Max : Reduction::Sum);
  if (!inf) total = total.pow(1.0 / norm_type);
  const auto coefficient = at::clamp_max(max_norm / (total + 1e-6), 1.0);
  at::NoGradGuard no_grad;
  for (auto g : grads) g.mul_(coefficient.to(g.device(), g.scalar_type()));
  return total.item<double>();
}

namespace {

/// "state.<index>.<field>" -> (index, field); nullopt for any other key.
std::optional<std::pair<size_t, std::string>> parse_state_key(const std::string& key) {
  if (key.rfind("state.", 0) != 0) return std::nullopt;
  const auto dot = key.find('.', 6);
  if (dot == std::string::npos) return std::nullopt;
  try {
    return std::make_pair(static_cast<size_t>(std::stoull(key.substr(6, dot - 6))), key.substr(dot + 1));
  } catch (const std::exception&) {
    return std::nullopt;
  }
}

std::string state_key(size_t index, const std::string& field) { return concat("state.", index, ".", field); }

}  // namespace

json ZeroOptimizer::state_meta(const OptimizerState& local, std::set<std::string>* fields) {
  // Scalars (step counts) and field names by the parameters' unsharded indices, from every rank.
  json mine{{"state", json::object()}, {"fields", json::array()}};
  std::set<std::string> own;
  for (const auto& [key, tensor] : local.tensors) {
    if (auto parsed = parse_state_key(key)) own.insert(parsed->second);
  }
  for (const auto& [k, scalars] : local.meta.at("state").items()) {
    mine["state"][std::to_string(slots_.at(std::stoull(k)).full_index)] = scalars;
  }
  mine["fields"] = own;
  json merged = json::object();
  for (const auto& part : gather_object(state_, c10::IValue(mine.dump()))) {
    const auto theirs = json::parse(part.toStringRef());
    for (const auto& [index, scalars] : theirs.at("state").items()) merged.emplace(index, scalars);
    for (const auto& f : theirs.at("fields")) own.insert(f.get<std::string>());
  }
  if (fields) *fields = own;
  json out = local.meta;
  for (size_t g = 0; g < full_groups_.size(); ++g) out["param_groups"][g]["params"] = full_groups_[g].size();
  out["state"] = merged;
  return out;
}

json ZeroOptimizer::state_meta() { return state_meta(optimizer_state(optimizer_), nullptr); }

std::vector<TensorPiece> ZeroOptimizer::state_pieces() {
  std::vector<TensorPiece> pieces;
  for (const auto& [key, tensor] : optimizer_state(optimizer_).tensors) {
    const auto parsed = parse_state_key(key);
    if (!parsed) continue;
    const auto& slot = slots_.at(parsed->first);
    ACCELERATE_CHECK(tensor.numel() == slot.info->length, CheckpointError, "save_state: optimizer state '",
                     parsed->second, "' of a ZeRO piece has ", tensor.numel(), " elements, its piece ",
                     slot.info->length, "; only per-element state (Adam's moments, momentum) can be saved in pieces.");
    pieces.push_back(
        {state_key(slot.full_index, parsed->second), slot.info->param.sizes().vec(), slot.info->begin, tensor});
  }
  return pieces;
}

OptimizerState ZeroOptimizer::consolidated_state() {
  auto local = optimizer_state(optimizer_);
  std::set<std::string> fields;
  OptimizerState out;
  out.meta = state_meta(local, &fields);
  const auto& merged = out.meta["state"];
  std::unordered_map<const void*, size_t> full_index;  // a parameter's index in the unsharded optimizer
  size_t index = 0;
  for (const auto& group : full_groups_) {
    for (const auto& p : group) full_index.emplace(p.unsafeGetTensorImpl(), index++);
  }
  at::NoGradGuard no_grad;
  for (const auto& field : fields) {
    for (auto* partition : partitions_) {
      for (auto& bucket : partition->buckets()) {
        const auto options = partition->shard_options(bucket);
        auto shard = at::zeros({bucket.shard_numel}, options);
        for (const auto& slot : slots_) {
          if (slot.partition != partition || &partition->buckets()[slot.info->bucket] != &bucket) continue;
          auto it = local.tensors.find(state_key(&slot - slots_.data(), field));
          if (it != local.tensors.end()) shard.narrow(0, slot.info->shard_offset, slot.info->length).copy_(it->second);
        }
        auto all = at::empty({bucket.shard_numel * partition->world_size()}, options);
        auto& comm = *detail::communicator_of(state_);
        comm.wait(comm.group()._allgather_base(all, shard), "save_state (ZeRO optimizer state all-gather)");
        if (!state_.is_main_process()) continue;
        for (const auto& entry : bucket.entries) {
          auto it = full_index.find(entry.param.unsafeGetTensorImpl());
          if (it == full_index.end() || !merged.contains(std::to_string(it->second))) continue;
          out.tensors[state_key(it->second, field)] =
              all.narrow(0, entry.offset, entry.param.numel()).view(entry.param.sizes()).cpu().clone();
        }
      }
    }
  }
  return out;
}

void ZeroOptimizer::load_state(const TensorSource& tensors, const json& meta, const std::string& where) {
  try {
    const auto& groups = meta.at("param_groups");
    ACCELERATE_CHECK(groups.size() == full_groups_.size(), CheckpointError, where, " has ", groups.size(),
                     " parameter groups; this optimizer has ", full_groups_.size(), ".");
    json pieces = meta;
    for (size_t g = 0; g < full_groups_.size(); ++g) {
      ACCELERATE_CHECK(groups[g].value("params", size_t{0}) == full_groups_[g].size(), CheckpointError, where,
                       ": parameter group ", g, " held ", groups[g].value("params", 0), " parameters; this one has ",
                       full_groups_[g].size(), ". Is this checkpoint from another model?");
      pieces["param_groups"][g]["params"] = group_slots_[g];
    }
    pieces["state"] = json::object();
    std::unordered_map<size_t, std::vector<std::string>> by_index;  // fields
    for (const auto& key : tensors.names()) {
      if (auto parsed = parse_state_key(key)) by_index[parsed->first].push_back(parsed->second);
    }
    safetensors::TensorMap cut;
    for (size_t k = 0; k < slots_.size(); ++k) {
      const auto& slot = slots_[k];
      const auto index = std::to_string(slot.full_index);
      if (!meta.at("state").contains(index)) continue;
      pieces["state"][std::to_string(k)] = meta["state"][index];
      for (const auto& field : by_index[slot.full_index]) {
        const auto key = state_key(slot.full_index, field);
        const auto shape = tensors.shape(key);
        ACCELERATE_CHECK(c10::multiply_integers(shape) == slot.info->param.numel(), CheckpointError, where, ": tensor ",
                         key, " has shape ", c10::IntArrayRef(shape), " but its parameter has ",
                         slot.info->param.sizes(), ". Is this checkpoint from another model?");
        cut[state_key(k, field)] = tensors.read(key, slot.info->begin, slot.info->length);
      }
    }
    load_optimizer_state(optimizer_, cut, pieces, where);
  } catch (const json::exception& e) {
    throw CheckpointError(concat(where, " is malformed: ", e.what()));
  }
}

}  // namespace accelerate::detail
