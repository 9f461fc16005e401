#include <accelerate/model_io.hpp>

#include <accelerate/error.hpp>
#include <accelerate/safetensors.hpp>

#include <ATen/ATen.h>
#include <cstdio>
#include <filesystem>
#include <set>
#include <torch/nn/module.h>

#include <nlohmann/json.hpp>

#include "detail/durable_file.hpp"
#include "detail/model_files.hpp"
#include "detail/model_state.hpp"

namespace accelerate {
namespace fs = std::filesystem;
using detail::concat;

namespace {

std::string shard_name(size_t k, size_t n) {
  char buffer[64];
  std::snprintf(buffer, sizeof buffer, "model-%05zu-of-%05zu.safetensors", k, n);
  return buffer;
}

/// Written under a temporary name, then renamed: a reader never sees a half-written shard.
void save_atomically(const safetensors::TensorMap& tensors, const fs::path& path) {
  detail::save_safetensors(tensors, path.string(), {{"format", "pt"}}, detail::Replace::Atomically);
}

}  // namespace

namespace detail {
std::map<std::string, at::Tensor> model_state(torch::nn::Module& model) {
  std::map<std::string, at::Tensor> out;
  for (const auto& p : model.named_parameters()) out[p.key()] = p.value().detach();
  for (const auto& b : model.named_buffers()) out[b.key()] = b.value().detach();
  return out;
}
}  // namespace detail

void save_model(torch::nn::Module& model, const std::string& dir, int64_t max_shard_size) {
  ACCELERATE_CHECK(max_shard_size > 0, ConfigError, "save_model: max_shard_size must be > 0, got ", max_shard_size,
                   ".");
  fs::create_directories(dir);
  std::vector<safetensors::TensorMap> shards(1);
  int64_t current = 0, total = 0;
  for (const auto& [name, t] : detail::model_state(model)) {
    const int64_t bytes = t.numel() * static_cast<int64_t>(t.element_size());
    if (current > 0 && current + bytes > max_shard_size) {
      shards.emplace_back();
      current = 0;
    }
    shards.back()[name] = t;
    current += bytes;
    total += bytes;
  }
  std::set<std::string> written;
  if (shards.size() == 1) {
    save_atomically(shards[0], fs::path(dir) / "model.safetensors");
    written.insert("model.safetensors");
  } else {
    nlohmann::json index{{"metadata", {{"total_size", total}}}, {"weight_map", nlohmann::json::object()}};
    for (size_t k = 0; k < shards.size(); ++k) {
      const auto name = shard_name(k + 1, shards.size());
      save_atomically(shards[k], fs::path(dir) / name);
      written.insert(name);
      for (const auto& [tensor, _] : shards[k]) index["weight_map"][tensor] = name;
    }
    detail::write_text_file(fs::path(dir) / detail::kModelIndex, index.dump(2), detail::Replace::Atomically);
    written.insert(detail::kModelIndex);
  }
  // Shards of an earlier save that this one did not rewrite would confuse a reader: remove them (as HF does).
  for (const auto& entry : fs::directory_iterator(dir)) {
    const auto name = entry.path().filename().string();
    const bool ours = name.rfind("model", 0) == 0 && (name.ends_with(".safetensors") || name == detail::kModelIndex);
    if (ours && !written.count(name)) fs::remove(entry.path());
  }
}

}  // namespace accelerate
