// Internal: a module's parameters and buffers by state-dict name (what save_model and save_state write).
#pragma once

#include <functional>
#include <map>
#include <string>

#include <ATen/core/Tensor.h>
#include <c10/core/StorageImpl.h>

namespace torch::nn {
class Module;
}

namespace accelerate::detail {
class TensorSource;

std::map<std::string, at::Tensor> model_state(torch::nn::Module& model);

/// Loads every parameter and buffer of `model` from `source` by state-dict name (save_state's files, whole or in
/// pieces of any world size); a ZeRO-3 unit's parameter takes only this process's slice, read alone. Names,
/// shapes and dtypes must match exactly: CheckpointError listing each one that does not, naming `where`, before
/// anything is copied.
void load_model_state(torch::nn::Module& model, const TensorSource& source, const std::string& where);

/// save_model's files (one file, or shards of at most max_shard_size bytes with an index) for tensors named and
/// shaped as `layout` (its data is not read), each fetched by name in turn while its file is written: a process
/// holds one tensor at a time. With `write` false nothing is written, but every tensor is fetched in the same
/// order (the collectives of ZeRO-3's gathers, on the processes that do not write).
void save_model_streamed(const std::map<std::string, at::Tensor>& layout, const std::string& dir,
                         int64_t max_shard_size, const std::function<at::Tensor(const std::string&)>& fetch,
                         bool write);

/// Whether `t`'s storage has no bytes behind it (init_empty_weights, a freed ZeRO-3 unit), asked without the data
/// access that such a storage makes throw.
inline bool storage_is_empty(const at::Tensor& t) {
  return t.storage().unsafeGetStorageImpl()->_mutable_data_ptr_no_checks().get() == nullptr;
}

/// A tensor with elements but no bytes behind them: built through init_empty_weights (or on the meta device).
inline bool has_no_weights(const at::Tensor& t) { return t.is_meta() || (t.numel() > 0 && storage_is_empty(t)); }
}  // namespace accelerate::detail
