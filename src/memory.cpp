#include <accelerate/memory.hpp>

#include <accelerate/error.hpp>

#include <ATen/DeviceAccelerator.h>
#include <torch/optim/optimizer.h>

#include <sys/resource.h>
#include <unordered_set>

#include "detail/optimizer_state.hpp"

namespace accelerate {

int64_t optimizer_state_bytes(torch::optim::Optimizer& optimizer) {
  detail::OptimizerState state;
  try {
    state = detail::optimizer_state(optimizer);  // references to the state tensors, no copies
  } catch (const CheckpointError&) {
    throw ConfigError("optimizer_state_bytes: only Adam, AdamW, SGD, Adagrad and RMSprop are known.");
  }
  int64_t bytes = 0;
  for (const auto& [name, t] : state.tensors) bytes += static_cast<int64_t>(t.nbytes());
  return bytes;
}

int64_t gradient_bytes(const std::vector<at::Tensor>& parameters) {
  std::unordered_set<const void*> seen;
  int64_t bytes = 0;
  for (const auto& p : parameters) {
    if (!p.defined() || !p.grad().defined()) continue;
    const auto& storage = p.grad().storage();
    if (seen.insert(storage.unsafeGetStorageImpl()).second) bytes += static_cast<int64_t>(storage.nbytes());
  }
  return bytes;
}

int64_t gradient_bytes(const std::vector<at::Tensor>& parameters, torch::optim::Optimizer& optimizer) {
  auto all = parameters;
  for (auto& group : optimizer.param_groups()) all.insert(all.end(), group.params().begin(), group.params().end());
  return gradient_bytes(all);
}

int64_t peak_memory_bytes(c10::Device device) {
  if (device.type() == c10::kCPU) {
    rusage usage{};
    ::getrusage(RUSAGE_SELF, &usage);
    return static_cast<int64_t>(usage.ru_maxrss) * 1024;  // Linux reports kilobytes
  }
  const auto stats = at::getDeviceAllocator(device.type())->getDeviceStats(device.index() < 0 ? 0 : device.index());
  return stats.allocated_bytes[static_cast<size_t>(c10::CachingDeviceAllocator::StatType::AGGREGATE)].peak;
}

void clear_device_cache(c10::Device device) {
  if (device.type() != c10::kCPU) at::getDeviceAllocator(device.type())->emptyCache();
}

}  // namespace accelerate
