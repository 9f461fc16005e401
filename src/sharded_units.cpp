// ZeRO stage 3's units (detail/sharded_units.hpp) and unit_forward (accelerate/sharding_unit.hpp), after FSDP2's
// pre/post-forward hooks and its RegisterPostBackwardFunction, made explicit because LibTorch modules have no
// hooks: the forward gathers the unit, the outputs carry an identity Function whose backward gathers it again
// (and prefetches the unit before it), and the inputs one whose backward frees it once the unit's gradients are
// computed. The gradients themselves are reduce-scattered by ZeRO-2's sync, each unit being one bucket.
#include "detail/trace_range.hpp"
#include "detail/sharded_units.hpp"

#include <accelerate/accelerator_options.hpp>
#include <accelerate/error.hpp>

#include <ATen/ATen.h>
#include <c10/core/StorageImpl.h>
#include <torch/csrc/autograd/custom_function.h>
#include <torch/nn/module.h>

#include <algorithm>

#include "detail/communicator.hpp"
#include "detail/model_state.hpp"

namespace accelerate::detail {

namespace {
constexpr const char* kGather = "forward/backward (ZeRO-3 parameter all-gather)";
}

ShardedUnit::ShardedUnit(Communicator& comm, ZeroBucket& bucket, std::string name, c10::Device device, bool from_rank0)
    : comm_(comm), bucket_(bucket), name_(std::move(name)), loaded_(bucket.entries.size(), from_rank0) {
  at::NoGradGuard no_grad;
  const auto options = at::TensorOptions().dtype(bucket_.entries.front().param.scalar_type()).device(device);
  const int64_t shard = bucket_.shard_numel;
  // Not touched here, so never resident on a process that only receives its shard.
  full_ = at::empty({shard * comm_.world_size()}, options);
  bucket_.param_shard = at::zeros({shard}, options);
  if (from_rank0) {
    std::vector<at::Tensor> mine{bucket_.param_shard};
    std::vector<std::vector<at::Tensor>> chunks;
    if (comm_.rank() == 0) {
      full_.zero_();  // the padding
      for (const auto& entry : bucket_.entries) {
        full_.narrow(0, entry.offset, entry.param.numel()).copy_(entry.param.detach().reshape(-1));
      }
      chunks.emplace_back();
      for (int r = 0; r < comm_.world_size(); ++r) chunks.back().push_back(full_.narrow(0, r * shard, shard));
    }
    c10d::ScatterOptions scatter;
    scatter.rootRank = 0;
    constexpr const char* kOp = "prepare(model) (ZeRO-3: rank 0's parameters scattered)";
    comm_.wait(comm_.translating(kOp, [&] { return comm_.group().scatter(mine, chunks, scatter); }), kOp);
  }
  // The views are made while the storage has its bytes (views are bounds-checked), then the bytes go.
  auto freed = at::empty({shard * comm_.world_size()}, options);
  for (const auto& entry : bucket_.entries) {
    views_.push_back(full_.narrow(0, entry.offset, entry.param.numel()).view(entry.param.sizes()));
    freed_.push_back(freed.narrow(0, entry.offset, entry.param.numel()).view(entry.param.sizes()));
  }
  // Its byte count stays, so that views of a freed parameter (a forward's weight.t()) reach the data access, which
  // throws this message, instead of failing a bounds check with LibTorch's own.
  auto* nothing = freed.storage().unsafeGetStorageImpl();
  const size_t bytes = nothing->nbytes();
  nothing->reset();
  nothing->set_nbytes(bytes);
  nothing->release_data_and_set_meta_custom_data_ptr_error_msg_(concat(
      "ZeRO stage 3: this is a parameter of the unit '", name_,
      "', which exists whole only inside accelerate::unit_forward(block, x) (a block called as block->forward(x) "
      "reads it outside) or while a summon_full_params(model) guard lives (to read, save or sample on one process); "
      "see docs/training.md, ZeRO stage 3."));
  // set_data keeps each parameter's identity (autograd, the optimizer's references) and its version counter, so
  // refilling the storage later is not an in-place change that autograd's saved tensors would refuse. A parameter
  // without weights (init_empty_weights) gets a real place here.
  point_parameters(views_);
  state_ = State::Gathered;
  reshard();
}

void ShardedUnit::point_parameters(const std::vector<at::Tensor>& at) {
  for (size_t e = 0; e < bucket_.entries.size(); ++e) {
    auto param = bucket_.entries[e].param;
    param.set_data(at[e]);
  }
}

void ShardedUnit::allocate() {
  auto* storage = full_.storage().unsafeGetStorageImpl();
  const size_t bytes = full_.numel() * full_.element_size();
  storage->set_data_ptr_noswap(storage->allocator()->allocate(bytes));
  storage->set_nbytes(bytes);
  point_parameters(views_);
}

void ShardedUnit::prefetch() {
  if (state_ != State::Free) return;
  allocate();
  at::NoGradGuard no_grad;
  work_ = comm_.translating(kGather, [&] { return comm_.group()._allgather_base(full_, bucket_.param_shard); });
  state_ = State::Gathering;
}

void ShardedUnit::unshard() {
  TraceRange range("accelerate::all_gather");  // this unit's, or the wait for its prefetch
  prefetch();
  if (state_ == State::Gathering) {
    comm_.wait(work_, kGather);
    work_.reset();
    state_ = State::Gathered;
  }
}

void ShardedUnit::reshard() {
  if (pins_ > 0 || state_ == State::Free) return;
  if (state_ == State::Gathering) comm_.wait(work_, kGather);  // the collective must finish before its buffer goes
  work_.reset();
  full_.storage().unsafeGetStorageImpl()->reset();
  point_parameters(freed_);
  state_ = State::Free;
}

namespace {
/// The same place in a unit's storage: the same parameter (a detached alias, as model_state's, has another impl).
bool same_place(const at::Tensor& a, const at::Tensor& b) {
  return a.storage().unsafeGetStorageImpl() == b.storage().unsafeGetStorageImpl() &&
         a.storage_offset() == b.storage_offset() && a.sizes() == b.sizes();
}
}  // namespace

bool ShardedUnit::holds(const at::Tensor& param) const {
  return std::any_of(bucket_.entries.begin(), bucket_.entries.end(),
                     [&](const BucketEntry& e) { return same_place(e.param, param); });
}

std::optional<ShardedUnit::KeptSlice> ShardedUnit::kept_slice(const at::Tensor& param) const {
  for (const auto& entry : bucket_.entries) {
    if (!same_place(entry.param, param)) continue;
    const int64_t begin = comm_.rank() * bucket_.shard_numel;
    const int64_t lo = std::max(entry.offset, begin);
    const int64_t hi = std::min(entry.offset + entry.param.numel(), begin + bucket_.shard_numel);
    if (hi <= lo) return KeptSlice{0, bucket_.param_shard.narrow(0, 0, 0)};
    return KeptSlice{lo - entry.offset, bucket_.param_shard.narrow(0, lo - begin, hi - lo)};
  }
  return std::nullopt;
}

bool ShardedUnit::load_slice(const at::Tensor& param, const SliceReader& read) {
  const auto kept = kept_slice(param);
  if (!kept) return false;
  at::NoGradGuard no_grad;
  if (kept->values.numel() > 0) kept->values.copy_(read(kept->begin, kept->values.numel()));
  for (size_t e = 0; e < bucket_.entries.size(); ++e) {
    const auto& entry = bucket_.entries[e];
    if (!same_place(entry.param, param)) continue;
    if (state_ == State::Gathered) entry.param.copy_(read(0, entry.param.numel()).view(entry.param.sizes()));
    loaded_[e] = true;
  }
  return true;
}

void ShardedUnit::check_materialised() const {
  const auto missing = std::count(loaded_.begin(), loaded_.end(), false);
  ACCELERATE_CHECK(missing == 0, StateError, "ZeRO stage 3: unit '", name_, "' has no weights for ", missing,
                   " of its ", loaded_.size(),
                   " parameters: rank 0 built it through init_empty_weights and no load_checkpoint_in_model filled "
                   "them since prepare. Load the weights after prepare, on every process (or build the unit with "
                   "its weights on rank 0).");
}

void ShardedUnit::write_back() {
  ACCELERATE_CHECK(state_ == State::Gathered, StateError, "ZeRO-3 unit ", name_, ": write_back while not gathered.");
  at::NoGradGuard no_grad;
  bucket_.param_shard.copy_(full_.narrow(0, comm_.rank() * bucket_.shard_numel, bucket_.shard_numel));
}

ShardedUnits::ShardedUnits(Communicator& comm, ZeroPartition& partition,
                           const std::vector<std::pair<std::string, ShardingUnit*>>& units, c10::Device device,
                           const FsdpOptions& prefetch) {
  for (const auto& [name, module] : units) modules_.push_back(module);
  units_.resize(units.size());
  // Which units rank 0 holds weights for (every parameter has weights): those start from rank 0's values,
  // as DDP's do; the others wait for a load. One element more than units, so that it is never empty.
  auto from_rank0 = at::zeros({static_cast<int64_t>(units.size()) + 1}, at::kInt);
  for (const auto& bucket : partition.buckets()) {
    if (bucket.unit < 0) continue;
    const bool real = std::none_of(bucket.entries.begin(), bucket.entries.end(),
                                   [](const BucketEntry& e) { return has_no_weights(e.param); });
    from_rank0[bucket.unit] = real ? 1 : 0;
  }
  {
    std::vector<at::Tensor> flags{from_rank0};
    c10d::BroadcastOptions broadcast;
    broadcast.rootRank = 0;
    constexpr const char* kOp = "prepare(model) (ZeRO-3: which units rank 0 holds)";
    comm.wait(comm.translating(kOp, [&] { return comm.cpu_backend().broadcast(flags, broadcast); }), kOp);
  }
  for (auto& bucket : partition.buckets()) {
    if (bucket.unit < 0) continue;
    units_.at(bucket.unit) = std::make_unique<ShardedUnit>(comm, bucket, units.at(bucket.unit).first, device,
                                                           from_rank0[bucket.unit].item<int>() == 1);
    units_[bucket.unit]->forward_prefetch = prefetch.forward_prefetch;
    units_[bucket.unit]->backward_prefetch = prefetch.backward_prefetch;
  }
  for (size_t u = 0; u < units_.size(); ++u) {
    // A unit without trainable parameters has no bucket: it runs as an ordinary module.
    if (!units_[u]) continue;
    UnitAccess::unit(*modules_[u]) = units_[u].get();
  }
  // Registration order: the order transformers run their blocks in (FSDP2 records it; a model that runs units in
  // another order still computes the same, a prefetched unit only waits gathered until it runs or backward ends).
  ShardedUnit* before = nullptr;
  for (auto& unit : units_) {
    if (!unit) continue;
    unit->previous = before;
    if (before) before->next = unit.get();
    before = unit.get();
  }
}

ShardedUnits::~ShardedUnits() {
  for (auto* module : modules_) UnitAccess::unit(*module) = nullptr;
}

void ShardedUnits::begin_summon() {
  for (auto& unit : units_) {
    if (unit) unit->check_materialised();  // on every rank alike: before any gather
  }
  for (auto& unit : units_) {
    if (!unit) continue;
    unit->unshard();
    unit->pin();
  }
}

void ShardedUnits::end_summon(bool write_back) {
  for (auto& unit : units_) {
    if (!unit) continue;
    if (write_back) unit->write_back();
    unit->unpin();
    unit->reshard();
  }
}

bool ShardedUnits::summoned() const {
  return std::any_of(units_.begin(), units_.end(), [](const auto& u) { return u && u->pinned(); });
}

void ShardedUnits::reshard_all() {
  for (auto& unit : units_) {
    if (unit) unit->reshard();
  }
}

void ShardedUnits::release() {
  for (auto& unit : units_) {
    if (!unit) continue;
    unit->unshard();
    unit->pin();  // for good: the storage is the parameters' now
  }
  for (auto* module : modules_) UnitAccess::unit(*module) = nullptr;
}

UnitStream::UnitStream(torch::nn::Module& model) {
  for (const auto& [name, module] : find_units(model)) {
    auto* unit = UnitAccess::unit(*module);
    if (!unit) continue;
    unit->check_materialised();  // nothing gathered or saved as zeros
    units_.emplace_back(name.empty() ? "" : name + ".", unit);
  }
  for (const auto& p : model.named_parameters()) tensors_.emplace(p.key(), p.value());
  for (const auto& b : model.named_buffers()) tensors_.emplace(b.key(), b.value());
}

UnitStream::~UnitStream() {
  if (current_) current_->reshard();
}

at::Tensor UnitStream::fetch(const std::string& name) {
  ShardedUnit* owner = nullptr;
  for (const auto& [prefix, unit] : units_) {
    if (name.rfind(prefix, 0) == 0) owner = unit;
  }
  if (owner && owner != current_) {
    if (current_) current_->reshard();
    owner->unshard();
    current_ = owner;
  }
  return tensors_.at(name).detach();
}

std::map<std::string, at::Tensor> gathered_model_state(torch::nn::Module& model, bool keep) {
  UnitStream stream(model);
  std::map<std::string, at::Tensor> out;
  for (const auto& [name, t] : model_state(model)) {
    auto fetched = stream.fetch(name);
    if (keep) out.emplace(name, fetched.cpu().clone());
  }
  return out;
}

std::vector<ShardedUnit*> units_of(torch::nn::Module& model) {
  std::vector<ShardedUnit*> units;
  for (const auto& [name, module] : find_units(model)) {
    if (auto* unit = UnitAccess::unit(*module)) units.push_back(unit);
  }
  return units;
}

std::vector<std::pair<std::string, ShardingUnit*>> find_units(torch::nn::Module& module) {
  std::vector<std::pair<std::string, ShardingUnit*>> units;
  for (const auto& item : module.named_modules("", /*include_self=*/true)) {
    auto* unit = dynamic_cast<ShardingUnit*>(item.value().get());
    if (!unit) continue;
    for (const auto& [outer, _] : units) {
      ACCELERATE_CHECK(!(outer.empty() || item.key().rfind(outer + ".", 0) == 0), ConfigError, "ZeRO stage 3: module '",
                       item.key(), "' is a ShardingUnit inside the unit '", outer.empty() ? "(the model)" : outer,
                       "'; units must not nest. Make only the repeated blocks ShardingUnits.");
    }
    units.emplace_back(item.key(), unit);
  }
  return units;
}

// ---- unit_forward ----

namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

struct UnitCapsule : torch::CustomClassHolder {
  explicit UnitCapsule(ShardedUnit* u) : unit(u) {}
  ShardedUnit* unit;
};

ShardedUnit* unit_in(AutogradContext* ctx) {
  return c10::static_intrusive_pointer_cast<UnitCapsule>(ctx->saved_data["unit"].toCapsule())->unit;
}

/// On a unit's outputs: backward reaches it before the unit's own backward, which needs the parameters again.
struct PreBackward : torch::autograd::Function<PreBackward> {
  static variable_list forward(AutogradContext* ctx, c10::intrusive_ptr<UnitCapsule> unit, at::TensorList outputs) {
    ctx->saved_data["unit"] = c10::IValue::make_capsule(std::move(unit));
    return variable_list(outputs.begin(), outputs.end());
  }
  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    auto* unit = unit_in(ctx);
    unit->unshard();
    if (unit->backward_prefetch && unit->previous) unit->previous->prefetch();
    grads.insert(grads.begin(), at::Tensor());
    return grads;
  }
};

/// On a unit's inputs: backward reaches it once the unit's backward is done (its gradients are accumulated).
struct PostBackward : torch::autograd::Function<PostBackward> {
  static variable_list forward(AutogradContext* ctx, c10::intrusive_ptr<UnitCapsule> unit, at::TensorList inputs) {
    ctx->saved_data["unit"] = c10::IValue::make_capsule(std::move(unit));
    return variable_list(inputs.begin(), inputs.end());
  }
  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    unit_in(ctx)->reshard();
    grads.insert(grads.begin(), at::Tensor());
    return grads;
  }
};

bool any_requires_grad(const std::vector<at::Tensor>& tensors) {
  return std::any_of(tensors.begin(), tensors.end(),
                     [](const at::Tensor& t) { return t.defined() && t.requires_grad(); });
}

}  // namespace

}  // namespace accelerate::detail

namespace accelerate {

std::vector<at::Tensor> unit_forward_function(ShardingUnit* module, const CheckpointFunction& fn,
                                              const std::vector<at::Tensor>& inputs, UnitForwardOptions options) {
  using namespace detail;
  const bool training = at::GradMode::is_enabled();
  ShardedUnit* unit = module ? UnitAccess::unit(*module) : nullptr;
  if (!unit)
    return options.checkpoint && training ? checkpoint_function(fn, inputs, options.checkpoint_options) : fn(inputs);
  unit->check_materialised();
  unit->unshard();
  if (unit->forward_prefetch && unit->next) unit->next->prefetch();
  if (!training) {
    auto out = fn(inputs);
    unit->reshard();
    return out;
  }
  auto capsule = c10::make_intrusive<UnitCapsule>(unit);
  auto in = any_requires_grad(inputs) ? PostBackward::apply(capsule, at::TensorList(inputs)) : inputs;
  // A recomputation in backward (checkpointing) runs this again: the unit is gathered by then, or gathers.
  auto run = [unit, fn](const std::vector<at::Tensor>& x) {
    unit->unshard();
    return fn(x);
  };
  auto out = options.checkpoint ? checkpoint_function(run, in, options.checkpoint_options) : run(in);
  if (any_requires_grad(out)) out = PreBackward::apply(capsule, at::TensorList(out));
  unit->reshard();
  return out;
}

}  // namespace accelerate
