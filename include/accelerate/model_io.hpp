// Model weights as HF writes them (Accelerator.save_model / load_checkpoint_in_model): one model.safetensors, or
// shards model-00001-of-0000N.safetensors with model.safetensors.index.json mapping each tensor to its shard.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <ATen/core/Tensor.h>
#include <c10/core/Device.h>
#include <c10/core/ScalarType.h>

namespace torch::nn {
class Module;
}

namespace accelerate {

/// Writes the module's parameters and buffers (state-dict names) into `dir`, split into shards of at most
/// `max_shard_size` bytes (a larger tensor gets a shard of its own). Stale shards of an earlier save are removed.
void save_model(torch::nn::Module& model, const std::string& dir, int64_t max_shard_size = int64_t{10} << 30);

/// How load_checkpoint_in_model maps a checkpoint onto a model: the options of HF's load_checkpoint_in_model
/// (dtype, device, strict) and of torch's load_state_dict (strict, the keys it returns), plus the key renaming
/// and per-tensor transform that bringing in another library's checkpoint needs (transformers' GPT-2 stores
/// Conv1D weights as (in, out), a torch::nn::Linear holds (out, in)).
struct LoadOptions {
  /// true: a tensor the model needs that the checkpoint lacks (missing) or a checkpoint tensor the model has no
  /// place for (unexpected) is an error, as torch's strict=True. false: both are returned in LoadResult and the
  /// rest is loaded. Shape and dtype mismatches are errors either way (as torch's).
  bool strict = true;
  /// Cast on load: the model's floating-point parameters and buffers are converted to this dtype and the
  /// checkpoint's floating-point tensors cast to it (integer and bool tensors are never cast, as HF's). Without
  /// it a dtype that differs from the model's tensor is an error naming the tensor.
  std::optional<c10::ScalarType> dtype;
  /// The device the model is moved to before the copy (tensors go from the memory-mapped file straight there).
  std::optional<c10::Device> device;
  /// Checkpoint key -> model key, applied first (e.g. {"lm_head.weight", "wte.weight"}).
  std::map<std::string, std::string> rename;
  /// Then this, on every key (after `rename`): the model key, or nullopt to skip the checkpoint tensor (neither
  /// loaded nor counted as unexpected; transformers' `_keys_to_ignore_on_load_unexpected`).
  std::function<std::optional<std::string>(const std::string& key)> rename_fn;
  /// Applied to each checkpoint tensor (a view of the memory-mapped file) before the shape check and the copy,
  /// with the model key: e.g. `t.t()` for a Conv1D weight. Keep it a view (transpose, narrow, view): it runs
  /// before anything is copied, for the checks, so a computing transform reads the whole tensor early.
  std::function<at::Tensor(const std::string& model_key, const at::Tensor& tensor)> transform;
};

/// What a load left out: torch's `_IncompatibleKeys` (missing_keys, unexpected_keys), by name, sorted. Both are
/// empty after a strict load (which throws instead).
struct LoadResult {
  std::vector<std::string> missing_keys;     // model keys the checkpoint does not have
  std::vector<std::string> unexpected_keys;  // checkpoint keys (after renaming) the model does not have
};

/// HF's init_empty_weights, for one module after it is built: its parameters keep their shapes, dtypes and devices
/// but lose their memory (buffers are kept); reading one throws, saying so. LibTorch's modules allocate and initialise
/// their weights in their constructors and have no meta-device construction, so a model built block by block through
/// this, `h->push_back(accelerate::init_empty_weights(Block(config)))`, never holds more than one block's weights.
/// Only ZeRO stage 3 prepares such a model (each process then holds its shard of each block: rank 0's values when
/// rank 0 built the block with weights, else loaded with load_checkpoint_in_model after prepare); at other stages
/// prepare refuses it with ConfigError. Returns `module`.
void init_empty_weights(torch::nn::Module& module);
template <class M>
requires requires(const M& m) { m.get(); }  // a module holder or a shared_ptr to a module
M init_empty_weights(M module) {
  init_empty_weights(static_cast<torch::nn::Module&>(*module));
  return module;
}

/// Loads weights written by save_model (or by HF / Python safetensors / transformers' save_pretrained) into
/// `model`: `path` is a .safetensors file, a model.safetensors.index.json file, or a folder with
/// model.safetensors.index.json or model.safetensors. On a model prepared at ZeRO stage 3 each process copies only
/// its shard of each unit's parameters (the slices it keeps, read from the mapped files); call it on every process
/// with the same checkpoint (LoadOptions::dtype and device are refused there: convert before prepare). Files are
/// memory-mapped: only the tensors that are copied are read from disk. Every tensor is checked before any is copied, so
/// a checkpoint that does not fit loads nothing and CheckpointError lists every problem by name (missing and unexpected
/// keys under strict, shapes and dtypes always, two checkpoint keys renamed onto one model key, an index entry its
/// shard lacks), naming the file. Throws CheckpointError also for an unreadable or invalid file or index.
LoadResult load_checkpoint_in_model(torch::nn::Module& model, const std::string& path, const LoadOptions& options = {});

}  // namespace accelerate
