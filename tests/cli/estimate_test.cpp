// estimate-memory: parameter counts from safetensors headers (file, index, folder) and the per-process bytes by
// dtype and ZeRO stage.
#include <accelerate/error.hpp>

#include <filesystem>
#include <fstream>

#include <gtest/gtest.h>

#include "detail/safetensors_format.hpp"
#include "estimate/memory_estimate.hpp"

using namespace accelerate;
using namespace accelerate::cli;
namespace fs = std::filesystem;

namespace {

/// A safetensors file of F32 tensors with these shapes (zero data).
void write_model(const fs::path& file, const std::vector<std::pair<std::string, std::vector<int64_t>>>& tensors) {
  std::vector<detail::safetensors::Entry> entries;
  uint64_t offset = 0;
  for (const auto& [name, shape] : tensors) {
    uint64_t n = 4;
    for (auto d : shape) n *= static_cast<uint64_t>(d);
    entries.push_back({name, "F32", shape, offset, offset + n});
    offset += n;
  }
  std::ofstream out(file, std::ios::binary);
  out << detail::safetensors::serialize_header(entries, {}) << std::string(offset, '\0');
}

struct TempDir {
  fs::path path = fs::temp_directory_path() / ("estimate-test-" + std::to_string(::getpid()));
  TempDir() { fs::create_directories(path); }
  ~TempDir() { fs::remove_all(path); }
};

}  // namespace

TEST(EstimateMemory, CountsFilesIndexesAndFolders) {
  TempDir dir;
  write_model(dir.path / "model.safetensors", {{"wte", {3, 4}}, {"bias", {5}}});
  auto size = count_parameters((dir.path / "model.safetensors").string());
  EXPECT_EQ(size.parameters, 17);
  EXPECT_EQ(size.largest_name, "wte");
  EXPECT_EQ(count_parameters(dir.path.string()).parameters, 17);  // the folder's model.safetensors
  write_model(dir.path / "model-00001-of-00002.safetensors", {{"a", {10, 10}}});
  write_model(dir.path / "model-00002-of-00002.safetensors", {{"b", {7}}, {"c", {3}}});
  std::ofstream(dir.path / "model.safetensors.index.json")
      << R"({"metadata": {}, "weight_map": {"a": "model-00001-of-00002.safetensors",
            "b": "model-00002-of-00002.safetensors", "c": "model-00002-of-00002.safetensors"}})";
  size = count_parameters(dir.path.string());  // the index wins in a folder, as in transformers
  EXPECT_EQ(size.parameters, 110);
  EXPECT_EQ(size.largest, 100);
}

TEST(EstimateMemory, BytesPerStage) {
  const auto rows = estimate_training_memory(10, {"float32", "bfloat16"}, 2);
  ASSERT_EQ(rows.size(), 8u);
  EXPECT_EQ(rows[0].weights, 40);  // float32, stage 0: everything replicated
  EXPECT_EQ(rows[0].gradients, 40);
  EXPECT_EQ(rows[0].optimizer, 80);  // AdamW's two moments
  EXPECT_EQ(rows[1].optimizer, 40);  // stage 1: the moments of half the parameters
  EXPECT_EQ(rows[1].gradients, 40);
  EXPECT_EQ(rows[2].gradients, 20);  // stage 2: the gradients too
  EXPECT_EQ(rows[2].weights, 40);
  EXPECT_EQ(rows[3].weights, 20);  // stage 3: the weights too
  EXPECT_EQ(rows[3].total(), 80);
  EXPECT_EQ(rows[4].total(), 80);  // bfloat16, stage 0: 2 + 2 + 4 bytes per parameter
  EXPECT_EQ(human_bytes(3.5 * 1024 * 1024), "3.50 MiB");
}

TEST(EstimateMemory, BadInputIsNamed) {
  TempDir dir;
  EXPECT_THROW(count_parameters((dir.path / "missing.safetensors").string()), CheckpointError);
  EXPECT_THROW(count_parameters(dir.path.string()), CheckpointError);  // neither file nor index
  std::ofstream(dir.path / "model.safetensors") << "not a safetensors file at all";
  EXPECT_THROW(count_parameters(dir.path.string()), CheckpointError);
  EXPECT_THROW(estimate_training_memory(10, {"float64"}, 1), ConfigError);
  EXPECT_THROW(estimate_training_memory(10, {"float32"}, 0), ConfigError);
}
