// ZeRO stage 2's gradient synchronisation: as the Reducer, a hook after each parameter's gradient accumulation
// counts the bucket down; complete buckets are reduce-scattered (one _reduce_scatter_base each, launched in bucket
// order on every rank so the collectives match) while backward goes on. A launched bucket's full gradients are
// released at once (their copy is in the send buffer), at most two buckets are in flight, and each rank adds the
// averaged result to its gradient shard: that release is stage 2's saving. Non-sync micro-steps are not armed, so
// their gradients accumulate locally in full, without communication, as with no_sync.
#include <accelerate/error.hpp>

#include <ATen/ATen.h>
#include <torch/csrc/autograd/function.h>
#include <torch/csrc/autograd/utils/lambda_post_hook.h>
#include <torch/csrc/autograd/variable.h>

#include "detail/trace_range.hpp"
#include "detail/communicator.hpp"
#include "detail/data_parallel.hpp"

namespace accelerate::detail {
namespace {

constexpr const char* kOp = "backward (ZeRO-2 gradient reduce-scatter)";

class ShardedGradientSync final : public GradientSync {
 public:
  ShardedGradientSync(Communicator& comm, ZeroPartition& partition) : comm_(comm), partition_(partition) {
    auto& buckets = partition_.buckets();
    in_flight_.resize(buckets.size());
    for (size_t b = 0; b < buckets.size(); ++b) {
      for (const auto& entry : buckets[b].entries) {
        // The accumulator node is only weakly referenced by the parameter: keep it, or the hook goes with it.
        auto accumulator = torch::autograd::impl::grad_accumulator(entry.param);
        const size_t slot = ready_.size();
        ready_.push_back(false);
        slot_bucket_.push_back(b);
        const auto key = accumulator->add_post_hook(std::make_unique<torch::autograd::utils::LambdaPostHook>(
            [this, slot](const torch::autograd::variable_list& outputs, const torch::autograd::variable_list&) {
              mark_ready(slot);
              return outputs;
            }));
        hooks_.emplace_back(std::move(accumulator), key);
      }
    }
  }

  ~ShardedGradientSync() override {
    for (auto& [accumulator, key] : hooks_) accumulator->del_post_hook(key);
  }

  void prepare_for_backward(const at::Tensor&) override {
    armed_ = true;
    next_ = done_ = 0;
    std::fill(ready_.begin(), ready_.end(), false);
    pending_.assign(partition_.buckets().size(), 0);
    for (const size_t b : slot_bucket_) ++pending_[b];
  }

  void finish_backward() override {
    if (!armed_) return;
    armed_ = false;
    // Parameters that got no gradient in this backward (unused) leave their bucket incomplete: reduce it now, with
    // zeros in their place, so every rank runs the same collectives.
    while (next_ < in_flight_.size()) launch(next_++);
    while (done_ < in_flight_.size()) complete(done_++);
  }

 private:
  struct InFlight {
    at::Tensor input, output;
    c10::intrusive_ptr<c10d::Work> work;
  };

  void mark_ready(size_t slot) {
    if (!armed_) return;  // a non-sync micro-step: the gradient accumulates locally
    const size_t b = slot_bucket_[slot];
    ACCELERATE_CHECK(!ready_[slot] && b >= next_, StateError,
                     "ZeRO stage 2: a parameter received a second gradient in one backward after its bucket was "
                     "reduced (is it used both inside and outside accelerate::checkpoint?). Use zero_stage 1 for "
                     "this model.");
    ready_[slot] = true;
    --pending_[b];
    // In bucket order only: every rank must issue the same collectives in the same order.
    while (next_ < pending_.size() && pending_[next_] == 0) launch(next_++);
  }

  /// Waits for bucket b's reduce-scatter, adds the average to the gradient shard, frees the buffers.
  void complete(size_t b) {
    auto& flight = in_flight_[b];
    comm_.wait(flight.work, kOp);
    at::NoGradGuard no_grad;
    partition_.buckets()[b].grad_shard.add_(flight.output.div_(static_cast<double>(partition_.world_size())));
    flight = {};
  }

  void launch(size_t b) {
    // At most two buckets in flight: their send buffers, not the whole gradient, are what stage 2 adds.
    while (done_ + 1 < b) complete(done_++);
    auto& bucket = partition_.buckets()[b];
    auto& flight = in_flight_[b];
    at::NoGradGuard no_grad;
    flight.input = at::zeros({bucket.shard_numel * partition_.world_size()}, bucket.grad_shard.options());
    for (const auto& entry : bucket.entries) {
      auto& grad = entry.param.mutable_grad();
      if (!grad.defined()) continue;
      flight.input.narrow(0, entry.offset, entry.param.numel()).copy_(grad.reshape(-1));
      grad.reset();  // its copy is in the send buffer: the full gradient is released now (stage 2's saving)
    }
    flight.output = at::empty({bucket.shard_numel}, flight.input.options());
    // Inside backward's scope (the hang report's entry for the whole backward): the translation only.
    detail::TraceRange range("accelerate::reduce_scatter");
    flight.work =
        comm_.translating(kOp, [&] { return comm_.group()._reduce_scatter_base(flight.output, flight.input); });
  }

  Communicator& comm_;
  ZeroPartition& partition_;
  std::vector<std::pair<std::shared_ptr<torch::autograd::Node>, uintptr_t>> hooks_;
  std::vector<size_t> slot_bucket_;  // bucket of each hooked parameter
  std::vector<bool> ready_;
  std::vector<int> pending_;  // parameters each bucket still waits for
  std::vector<InFlight> in_flight_;
  size_t next_ = 0;  // the next bucket to launch
  size_t done_ = 0;  // buckets below it are reduced into the shards
  bool armed_ = false;
};

}  // namespace

std::unique_ptr<GradientSync> make_sharded_gradient_sync(Communicator& comm, ZeroPartition& partition) {
  return std::make_unique<ShardedGradientSync>(comm, partition);
}

}  // namespace accelerate::detail
