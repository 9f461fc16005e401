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

}  // namespace

namespace detail {
std::map<std::string, at::Tensor> model_state(torch::nn::Module& model) {
  std::map<std::string, at::Tensor> out;
  for (const auto& p : model.named_parameters()) out[p.key()] = p.value().detach();
  for (const auto& b : model.named_buffers()) out[b.key()] = b.value().detach();
  return out;
}

void save_model_streamed(const std::map<std::string, at::Tensor>& layout, const std::string& dir,
                         int64_t max_shard_size, const std::function<at::Tensor(const std::string&)>& fetch,
                         bool write) {
  ACCELERATE_CHECK(max_shard_size > 0, ConfigError, "save_model: max_shard_size must be > 0, got ", max_shard_size,
                   ".");
  if (write) fs::create_directories(dir);
  using Shard = std::vector<std::pair<std::string, at::Tensor>>;
  std::vector<Shard> shards(1);
  int64_t current = 0, total = 0;
  for (const auto& [name, t] : layout) {
    const int64_t bytes = t.numel() * static_cast<int64_t>(t.element_size());
    if (current > 0 && current + bytes > max_shard_size) {
      shards.emplace_back();
      current = 0;
    }
    shards.back().emplace_back(name, t);
    current += bytes;
    total += bytes;
  }
  std::set<std::string> written;
  nlohmann::json index{{"metadata", {{"total_size", total}}}, {"weight_map", nlohmann::json::object()}};
  for (size_t k = 0; k < shards.size(); ++k) {
    auto& shard = shards[k];
    // Larger elements first keeps every tensor aligned (a stable sort: names stay in order within a size).
    std::stable_sort(shard.begin(), shard.end(),
                     [](const auto& a, const auto& b) { return a.second.element_size() > b.second.element_size(); });
    const auto name = shards.size() == 1 ? std::string("model.safetensors") : shard_name(k + 1, shards.size());
    auto fetch_entry = [&](size_t i) { return fetch(shard[i].first); };
    if (!write) {
      for (size_t i = 0; i < shard.size(); ++i) fetch_entry(i);  // the collectives of the processes that write
      continue;
    }
    // Written under a temporary name, then renamed: a reader never sees a half-written shard.
    save_safetensors_streamed(shard, (fs::path(dir) / name).string(), {{"format", "pt"}}, fetch_entry,
                              Replace::Atomically);
    written.insert(name);
    for (const auto& [tensor, _] : shard) index["weight_map"][tensor] = name;
  }
  if (!write) return;
  if (shards.size() > 1) {
    write_text_file(fs::path(dir) / kModelIndex, index.dump(2), Replace::Atomically);
    written.insert(kModelIndex);
  }
  // Shards of an earlier save that this one did not rewrite would confuse a reader: remove them (as HF does).
  for (const auto& entry : fs::directory_iterator(dir)) {
    const auto file = entry.path().filename().string();
    const bool ours = file.rfind("model", 0) == 0 && (file.ends_with(".safetensors") || file == kModelIndex);
    if (ours && !written.count(file)) fs::remove(entry.path());
  }
}

}  // namespace detail

void save_model(torch::nn::Module& model, const std::string& dir, int64_t max_shard_size) {
  const auto state = detail::model_state(model);
  detail::save_model_streamed(
      state, dir, max_shard_size, [&](const std::string& name) { return state.at(name); }, true);
}

}  // namespace accelerate
