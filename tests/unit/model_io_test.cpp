// save_model / load_checkpoint_in_model: HF's shard and index layout, and indexes that must be refused.
#include <accelerate/error.hpp>
#include <accelerate/safetensors.hpp>

#include <ATen/ATen.h>
#include <filesystem>
#include <fstream>
#include <gtest/gtest.h>

namespace st = accelerate::safetensors;
namespace fs = std::filesystem;

namespace {
std::string temp(const std::string& name) {
  return (fs::temp_directory_path() / ("accelerate_st_unit_" + std::to_string(::getpid()) + "_" + name)).string();
}
}  // namespace

#include <accelerate/model_io.hpp>
#include <torch/nn/modules/container/sequential.h>
#include <torch/nn/modules/linear.h>

namespace {
torch::nn::Sequential numbered_model(float offset) {
  torch::nn::Sequential m(torch::nn::Linear(4, 8), torch::nn::Linear(8, 8), torch::nn::Linear(8, 2));
  at::NoGradGuard no_grad;
  float k = offset;
  for (auto& p : m->parameters()) p.copy_(at::arange(p.numel(), at::kFloat).reshape(p.sizes()) * 0.01 + k++);
  return m;
}
bool same_weights(torch::nn::Module& a, torch::nn::Module& b) {
  auto pa = a.parameters(), pb = b.parameters();
  for (size_t i = 0; i < pa.size(); ++i) {
    if (!at::equal(pa[i], pb[i])) return false;
  }
  return true;
}
}  // namespace

TEST(SaveModel, ShardsWithIndexAndLoadsBack) {
  const auto dir = temp("sharded");
  auto source = numbered_model(1);
  // In name order the tensors take 32, 128, 32, 256, 8 and 64 bytes: with 150-byte shards that is
  // {0.bias} {0.weight} {1.bias} {1.weight} {2.bias, 2.weight}.
  accelerate::save_model(*source, dir, 150);
  EXPECT_TRUE(fs::exists(fs::path(dir) / "model.safetensors.index.json"));
  EXPECT_TRUE(fs::exists(fs::path(dir) / "model-00005-of-00005.safetensors")) << "expected 5 shards";
  auto target = numbered_model(100);
  accelerate::load_checkpoint_in_model(*target, dir);
  EXPECT_TRUE(same_weights(*source, *target));
  // Saving again unsharded removes the stale shards and the index.
  accelerate::save_model(*source, dir);
  EXPECT_FALSE(fs::exists(fs::path(dir) / "model.safetensors.index.json"));
  EXPECT_FALSE(fs::exists(fs::path(dir) / "model-00001-of-00005.safetensors"));
  auto single = numbered_model(200);
  accelerate::load_checkpoint_in_model(*single, dir);
  EXPECT_TRUE(same_weights(*source, *single));
  fs::remove_all(dir);
}

TEST(SaveModel, RefusesIndexesThatEscapeTheFolderAndOtherModels) {
  const auto dir = temp("evil");
  auto source = numbered_model(1);
  accelerate::save_model(*source, dir, 150);
  std::ofstream(fs::path(dir) / "model.safetensors.index.json")
      << R"({"metadata":{},"weight_map":{"0.weight":"../../etc/passwd"}})";
  auto target = numbered_model(5);
  try {
    accelerate::load_checkpoint_in_model(*target, dir);
    FAIL() << "followed a path out of the checkpoint folder";
  } catch (const accelerate::CheckpointError& e) {
    EXPECT_NE(std::string(e.what()).find("not a file name inside the checkpoint folder"), std::string::npos)
        << e.what();
  }
  accelerate::save_model(*source, dir);
  torch::nn::Sequential other(torch::nn::Linear(4, 3));
  EXPECT_THROW(accelerate::load_checkpoint_in_model(*other, dir), accelerate::CheckpointError);
  fs::remove_all(dir);
}
