// Internal: a module's parameters and buffers by state-dict name (what save_model and save_state write).
#pragma once

#include <map>
#include <string>

#include <ATen/core/Tensor.h>
#include <c10/core/StorageImpl.h>

namespace torch::nn {
class Module;
}

namespace accelerate::detail {
std::map<std::string, at::Tensor> model_state(torch::nn::Module& model);

/// Whether `t`'s storage has no bytes behind it (init_empty_weights, a freed ZeRO-3 unit), asked without the data
/// access that such a storage makes throw.
inline bool storage_is_empty(const at::Tensor& t) {
  return t.storage().unsafeGetStorageImpl()->_mutable_data_ptr_no_checks().get() == nullptr;
}

/// A tensor with elements but no bytes behind them: built through init_empty_weights (or on the meta device).
inline bool has_no_weights(const at::Tensor& t) { return t.is_meta() || (t.numel() > 0 && storage_is_empty(t)); }
}  // namespace accelerate::detail
