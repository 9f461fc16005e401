#include "estimate/memory_estimate.hpp"

#include <accelerate/error.hpp>

#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <sstream>

#include <fcntl.h>
#include <nlohmann/json.hpp>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "detail/safetensors_format.hpp"

namespace accelerate::cli {
namespace fs = std::filesystem;
namespace {

/// Adds the tensors of one safetensors file, mapped read-only so that only the header's pages are read.
void add_file(const fs::path& file, ModelSize& size) {
  const int fd = ::open(file.c_str(), O_RDONLY);
  ACCELERATE_CHECK(fd >= 0, CheckpointError, "estimate-memory: cannot open ", file.string(), ".");
  struct stat st {};
  ::fstat(fd, &st);
  const auto bytes = static_cast<size_t>(st.st_size);
  void* mapped = bytes > 0 ? ::mmap(nullptr, bytes, PROT_READ, MAP_PRIVATE, fd, 0) : MAP_FAILED;
  ::close(fd);  // the mapping keeps the file
  ACCELERATE_CHECK(mapped != MAP_FAILED, CheckpointError, "estimate-memory: ", file.string(),
                   " is empty or cannot be mapped; it is not a safetensors file.");
  const std::unique_ptr<void, std::function<void(void*)>> mapping(mapped, [bytes](void* m) { ::munmap(m, bytes); });
  const auto header = detail::safetensors::parse(static_cast<const uint8_t*>(mapped), bytes, file.string());
  for (const auto& e : header.entries) {
    int64_t n = 1;
    for (auto d : e.shape) n *= d;
    size.parameters += n;
    if (n > size.largest) size.largest = n, size.largest_name = e.name;
  }
}

void add_index(const fs::path& index, ModelSize& size) {
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(std::ifstream(index));
  } catch (const nlohmann::json::exception& e) {
    throw CheckpointError(detail::concat("estimate-memory: ", index.string(), " is not valid JSON: ", e.what()));
  }
  ACCELERATE_CHECK(j.is_object() && j.contains("weight_map") && j["weight_map"].is_object(), CheckpointError,
                   "estimate-memory: ", index.string(), " has no \"weight_map\" object (a safetensors index has one).");
  std::set<std::string> shards;
  for (const auto& [name, file] : j["weight_map"].items()) {
    ACCELERATE_CHECK(file.is_string(), CheckpointError, "estimate-memory: ", index.string(), ": the shard of '", name,
                     "' is not a file name.");
    shards.insert(file.get<std::string>());
  }
  for (const auto& shard : shards) add_file(index.parent_path() / shard, size);
}

}  // namespace

ModelSize count_parameters(const std::string& path) {
  fs::path p(path);
  ACCELERATE_CHECK(fs::exists(p), CheckpointError, "estimate-memory: ", path,
                   " does not exist; give a .safetensors file, a model.safetensors.index.json, a folder holding "
                   "one, or --num_parameters.");
  if (fs::is_directory(p)) {
    if (fs::exists(p / "model.safetensors.index.json")) {
      p /= "model.safetensors.index.json";
    } else {
      ACCELERATE_CHECK(fs::exists(p / "model.safetensors"), CheckpointError, "estimate-memory: ", path,
                       " holds neither model.safetensors nor model.safetensors.index.json.");
      p /= "model.safetensors";
    }
  }
  ModelSize size;
  p.extension() == ".json" ? add_index(p, size) : add_file(p, size);
  return size;
}

std::vector<MemoryRow> estimate_training_memory(int64_t parameters, const std::vector<std::string>& dtypes,
                                                int num_processes) {
  static const std::map<std::string, int> kBytes = {{"float32", 4}, {"bfloat16", 2}, {"float16", 2}};
  ACCELERATE_CHECK(parameters >= 1, ConfigError, "estimate-memory: the model needs at least one parameter, got ",
                   parameters, ".");
  ACCELERATE_CHECK(num_processes >= 1, ConfigError, "estimate-memory: --num_processes must be >= 1, got ",
                   num_processes, ".");
  std::vector<MemoryRow> rows;
  // Rounded up without the sum that overflows near int64's maximum.
  const double shard = static_cast<double>(parameters / num_processes + (parameters % num_processes != 0 ? 1 : 0));
  for (const auto& dtype : dtypes) {
    const auto it = kBytes.find(dtype);
    ACCELERATE_CHECK(it != kBytes.end(), ConfigError, "estimate-memory: unknown dtype '", dtype,
                     "'; use float32, bfloat16 or float16.");
    const double b = it->second, all = static_cast<double>(parameters);
    for (int stage = 0; stage <= 3; ++stage) {
      rows.push_back({dtype, stage, (stage >= 3 ? shard : all) * b, (stage >= 2 ? shard : all) * b,
                      2 * (stage >= 1 ? shard : all) * b});
    }
  }
  return rows;
}

std::string human_bytes(double bytes) {
  static const char* const kUnits[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB", "ZiB"};
  int unit = 0;
  while (bytes >= 1024 && unit < 7) bytes /= 1024, ++unit;
  std::ostringstream s;
  s.precision(2);
  s << std::fixed << bytes << " " << kUnits[unit];
  return s.str();
}

}  // namespace accelerate::cli
