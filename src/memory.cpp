#include <accelerate/memory.hpp>

#include <accelerate/error.hpp>

#include <ATen/DeviceAccelerator.h>
#include <torch/optim/optimizer.h>

#include <sys/resource.h>
#include <unordered_set>

#include "detail/model_state.hpp"
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

namespace {
/// Bytes of the distinct storages of `tensors` (of their gradients with `of_grad`).
int64_t storage_bytes(const std::vector<at::Tensor>& tensors, bool of_grad) {
  std::unordered_set<const void*> seen;
  int64_t bytes = 0;
  for (const auto& p : tensors) {
    if (!p.defined()) continue;
    const auto& t = of_grad ? p.grad() : p;
    if (!t.defined()) continue;
    if (detail::storage_is_empty(t)) continue;  // a freed ZeRO-3 parameter: its size, but no memory
    const auto& storage = t.storage();
    if (seen.insert(storage.unsafeGetStorageImpl()).second) bytes += static_cast<int64_t>(storage.nbytes());
  }
  return bytes;
}

std::vector<at::Tensor> with_optimizer_params(std::vector<at::Tensor> all, torch::optim::Optimizer& optimizer) {
  for (auto& group : optimizer.param_groups()) all.insert(all.end(), group.params().begin(), group.params().end());
  return all;
}
}  // namespace

int64_t gradient_bytes(const std::vector<at::Tensor>& parameters) { return storage_bytes(parameters, true); }

int64_t gradient_bytes(const std::vector<at::Tensor>& parameters, torch::optim::Optimizer& optimizer) {
  return gradient_bytes(with_optimizer_params(parameters, optimizer));
}

int64_t parameter_bytes(const std::vector<at::Tensor>& parameters) { return storage_bytes(parameters, false); }

int64_t parameter_bytes(const std::vector<at::Tensor>& parameters, torch::optim::Optimizer& optimizer) {
  return parameter_bytes(with_optimizer_params(parameters, optimizer));
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
