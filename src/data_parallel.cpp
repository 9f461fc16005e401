#include "detail/data_parallel.hpp"

#include <accelerate/accelerator_options.hpp>
#include <accelerate/error.hpp>

#include <torch/csrc/distributed/c10d/comm.hpp>
#include <torch/csrc/distributed/c10d/reducer.hpp>
#include <torch/nn/module.h>

#include <limits>
#include <unordered_set>

#include "detail/communicator.hpp"
#include "detail/sharding_strategy.hpp"
#include "detail/model_state.hpp"

namespace accelerate::detail {

namespace {

/// Stages 0 and 1: c10d's Reducer, as torch DDP builds it.
class ReducerSync final : public GradientSync {
 public:
  ReducerSync(Communicator& comm, const std::vector<at::Tensor>& params,
              const std::unordered_map<size_t, std::string>& names, const DdpOptions& options)
      : find_unused_(options.find_unused_parameters) {
    const int64_t cap = static_cast<int64_t>(options.bucket_cap_mb * 1024 * 1024);
    // As DDP: without unused parameters the first iteration uses one bucket, then buckets are rebuilt in the
    // order gradients really arrive (rebuild_buckets).
    std::vector<size_t> limits = find_unused_
                                     ? std::vector<size_t>{c10d::kDefaultFirstBucketBytes, static_cast<size_t>(cap)}
                                     : std::vector<size_t>{std::numeric_limits<size_t>::max()};
    std::vector<bool> sparse(params.size(), false);
    auto [buckets, per_bucket] = c10d::compute_bucket_assignment_by_size(params, limits, sparse);
    std::reverse(buckets.begin(), buckets.end());  // gradients arrive roughly in reverse parameter order
    try {
      reducer_ = std::make_unique<c10d::Reducer>(params, buckets, comm.group_ptr(), sparse, cap, find_unused_,
                                                 options.gradient_as_bucket_view, names,
                                                 std::min<int64_t>(c10d::kDefaultFirstBucketBytes, cap),
                                                 /*skip_all_reduce_unused_params=*/false,
                                                 /*use_python_reducer=*/false, std::vector<int64_t>{});
    } catch (const std::exception& e) {
      throw DistributedOperationError(concat("prepare(model): could not set up gradient synchronisation: ", e.what()));
    }
  }
  void prepare_iteration() override {
    reducer_->prepare_for_forward();
    reducer_->rebuild_buckets();
  }
  // True until the buckets were rebuilt (also on the first iteration, where there is nothing to rebuild yet).
  bool rebuilds() const override { return reducer_->should_rebuild_buckets(); }
  void prepare_for_backward(const at::Tensor& loss) override {
    // With find_unused_parameters the Reducer walks the graph from the outputs to find parameters without grads.
    reducer_->prepare_for_backward(find_unused_ ? std::vector<at::Tensor>{loss} : std::vector<at::Tensor>{});
  }

 private:
  bool find_unused_;
  std::unique_ptr<c10d::Reducer> reducer_;
};

}  // namespace

std::unique_ptr<GradientSync> make_reducer_sync(Communicator& comm, const std::vector<at::Tensor>& params,
                                                const std::unordered_map<size_t, std::string>& names,
                                                const DdpOptions& options) {
  return std::make_unique<ReducerSync>(comm, params, names, options);
}

namespace {

/// The largest of every rank's `value` (collective, over the CPU backend).
int64_t agreed_max(Communicator& comm, int64_t value, const char* op) {
  std::vector<at::Tensor> v{at::tensor({value})};
  c10d::AllreduceOptions max;
  max.reduceOp = c10d::ReduceOp::MAX;
  comm.wait(comm.translating(op, [&] { return comm.cpu_backend().allreduce(v, max); }), op);
  return v[0].item<int64_t>();
}

}  // namespace

DataParallel::DataParallel(Communicator& comm, torch::nn::Module& module, const DdpOptions& options,
                           const ShardingStrategy& strategy, c10::Device device)
    : module_(module), comm_(comm), broadcast_buffers_(options.broadcast_buffers) {
  std::vector<at::Tensor> params;
  std::vector<std::pair<std::string, at::Tensor>> state;
  std::unordered_map<size_t, std::string> names;
  std::unordered_set<const void*> seen;  // shared parameters are synchronised once
  for (const auto& item : module.named_parameters()) {
    const auto& p = item.value();
    if (!seen.insert(p.unsafeGetTensorImpl()).second) continue;
    state.emplace_back(item.key(), p);  // frozen ones too: torch DDP makes every rank identical, trainable or not
    if (!p.requires_grad()) continue;
    names[params.size()] = item.key();
    params.push_back(p);
  }
  ACCELERATE_CHECK(!params.empty(), ConfigError,
                   "prepare(model): the model has no parameter that requires grad, so there is nothing to train.");
  for (const auto& b : module.named_buffers()) {
    if (!seen.insert(b.value().unsafeGetTensorImpl()).second) continue;
    buffers_.push_back(b.value());
    state.emplace_back(b.key(), b.value());
  }
  const int64_t cap = static_cast<int64_t>(options.bucket_cap_mb * 1024 * 1024);
  ACCELERATE_CHECK(cap > 0, ConfigError, "DdpOptions::bucket_cap_mb must be > 0, got ", options.bucket_cap_mb, ".");
  partition_ = strategy.partition(module, params, comm.world_size(), comm.rank(), cap, device);
  // Stage 3's unit parameters start from rank 0's values through the units' scatter, not a whole broadcast.
  std::unordered_set<const void*> sharded;
  if (partition_) {
    for (const auto& bucket : partition_->buckets()) {
      for (const auto& e : bucket.entries) {
        if (bucket.unit >= 0) sharded.insert(e.param.unsafeGetTensorImpl());
      }
    }
  }
  std::erase_if(state, [&](const auto& s) { return sharded.count(s.second.unsafeGetTensorImpl()) > 0; });
  // A tensor without weights (init_empty_weights) cannot be broadcast: refused on every rank alike.
  const auto empty = std::find_if(state.begin(), state.end(), [](const auto& s) { return has_no_weights(s.second); });
  if (agreed_max(comm, empty != state.end() ? 1 : 0, "prepare(model) (a check of the weights)") > 0) {
    throw ConfigError(concat(
        "prepare(model): ", empty != state.end() ? "'" + empty->first + "'" : "a tensor on another process",
        " has no weights (built through init_empty_weights). Only ZeRO stage 3 fills "
        "such tensors, and only inside ShardingUnits (from rank 0's weights, or from load_checkpoint_in_model after "
        "prepare); give the rest of the model its weights, or run with zero_stage 3."));
  }
  std::vector<at::Tensor> broadcast;
  for (const auto& [name, t] : state) broadcast.push_back(t);
  // Every rank starts from rank 0's parameters and buffers, as DDP's constructor does.
  {
    at::NoGradGuard no_grad;
    comm.translating("prepare(model) (broadcast of rank 0's parameters)",
                     [&] { c10d::broadcast_coalesced(comm.group_ptr(), broadcast, 250u << 20, 0); });
  }
  // The units first: giving a parameter without weights its place may change its device, which would drop a grad
  // accumulator that the gradient synchronisation's hooks were already on.
  units_ = strategy.shard_parameters(comm, module, partition_.get(), device);
  sync_ = strategy.gradient_sync(comm, params, names, options, partition_.get());
}

DataParallel::~DataParallel() = default;

void DataParallel::sync_buffers() {
  if (!broadcast_buffers_ || buffers_.empty() || !module_.is_training()) return;
  at::NoGradGuard no_grad;
  comm_.run("broadcast_buffers (rank 0's buffers after backward)",
            [&] { c10d::broadcast_coalesced(comm_.group_ptr(), buffers_, 250u << 20, 0); });
}

}  // namespace accelerate::detail
