// Model weights as HF writes them (Accelerator.save_model / load_checkpoint_in_model): one model.safetensors, or
// shards model-00001-of-0000N.safetensors with model.safetensors.index.json mapping each tensor to its shard.
#pragma once

#include <cstdint>
#include <string>

namespace torch::nn {
class Module;
}

namespace accelerate {

/// Writes the module's parameters and buffers (state-dict names) into `dir`, split into shards of at most
/// `max_shard_size` bytes (a larger tensor gets a shard of its own). Stale shards of an earlier save are removed.
void save_model(torch::nn::Module& model, const std::string& dir, int64_t max_shard_size = int64_t{10} << 30);

/// Loads weights written by save_model (or by HF / Python safetensors) into `model`: `path` is a .safetensors
/// file, a folder with model.safetensors, or a folder with model.safetensors.index.json. Every tensor of the model
/// must be present with the same shape and dtype; CheckpointError names the file and the tensor otherwise.
void load_checkpoint_in_model(torch::nn::Module& model, const std::string& path);

}  // namespace accelerate
