// The Accelerator's data-parallel state: one DDP or ZeRO wrapper per prepared model (none in a world of one) and,
// under ZeRO, one sharding per prepared optimizer, in prepare() order.
#pragma once

#include <accelerate/accelerator.hpp>

#include <memory>
#include <vector>

#include "detail/data_parallel.hpp"
#include "detail/sharding_strategy.hpp"
#include "detail/zero_optimizer.hpp"

namespace accelerate {

struct Accelerator::Parallel {
  /// The ZeRO stage's strategy, made once from the resolved stage (AcceleratorOptions, launch --zero_stage).
  std::unique_ptr<detail::ShardingStrategy> strategy;
  std::vector<std::unique_ptr<detail::DataParallel>> models;
  /// Empty at stage 0; else optimizer i's sharding is sharded_optimizers[i]. Destroyed after the optimizers that
  /// use them (free_memory clears those first).
  std::vector<std::unique_ptr<detail::ZeroOptimizer>> sharded_optimizers;

  /// Stage 3: the units of prepared model `model`, or nullptr (another stage, one process, not prepared).
  detail::ShardedUnits* units_of(const torch::nn::Module* model) const {
    for (const auto& m : models) {
      if (&m->module() == model) return m->units();
    }
    return nullptr;
  }

  /// Optimizer i's ZeRO sharding, or nullptr.
  detail::ZeroOptimizer* sharding_of(size_t i) const {
    return i < sharded_optimizers.size() ? sharded_optimizers[i].get() : nullptr;
  }
};

}  // namespace accelerate
