// Objects the Accelerator refers to without owning them (loaders, schedulers, registered objects) may be destroyed
// by the user: a new one at a freed address prepares, and save_state / load_state never read one that is gone.
#include <accelerate/accelerate.hpp>

#include <torch/torch.h>

#include <filesystem>
#include <fstream>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "temp_dir.hpp"

using namespace accelerate;
namespace fs = std::filesystem;

using accelerate::testing::TempDir;

namespace {

Accelerator project_accelerator(const fs::path& dir) {
  AcceleratorOptions o;
  o.cpu = true;
  o.project.project_dir = dir.string();
  return Accelerator(o);
}

std::shared_ptr<Dataset> eight_samples() {
  return std::make_shared<TensorDataset>(torch::randn({8, 4}), torch::zeros({8}, torch::kLong));
}

int64_t saved_count(const fs::path& checkpoint, const char* what) {
  std::ifstream in(checkpoint / "metadata.json");
  return nlohmann::json::parse(in).at(what).get<int64_t>();
}

}  // namespace

TEST(Lifetime, ACopyIsAnotherObjectAndTheTokenEndsWithTheObject) {
  std::weak_ptr<const void> first;
  {
    Lifetime a;
    Lifetime b = a;
    first = a.watch();
    EXPECT_FALSE(first.expired());
    EXPECT_NE(a.watch().lock(), b.watch().lock());
  }
  EXPECT_TRUE(first.expired());
}

// HF#2234's pattern: a new evaluation loader prepared every epoch, at the same stack address each time.
TEST(AcceleratorLifetimes, ALoaderPreparedPerEpochPreparesEachTimeAndIsNotSavedOnceGone) {
  TempDir tmp{"accelerate_lifetime"};
  auto acc = project_accelerator(tmp.path);
  DataLoader train(eight_samples(), {.batch_size = 2});
  acc.prepare(train);
  for (int epoch = 0; epoch < 3; ++epoch) {
    DataLoader eval(eight_samples(), {.batch_size = 4});
    auto& prepared = acc.prepare(eval);
    int batches = 0;
    for (auto& batch : prepared) batches += batch.data.size(0) > 0;
    EXPECT_EQ(batches, 2) << "epoch " << epoch;
  }
  const fs::path without_eval = acc.save_state((tmp.path / "a").string());  // the last eval loader is gone
  EXPECT_EQ(saved_count(without_eval, "data_loaders"), 1);
  EXPECT_NO_THROW(acc.load_state(without_eval.string()));
  fs::path with_eval;
  {
    DataLoader eval(eight_samples(), {.batch_size = 4});
    acc.prepare(eval);
    with_eval = acc.save_state((tmp.path / "b").string());
  }
  EXPECT_EQ(saved_count(with_eval, "data_loaders"), 2);
  ::testing::internal::CaptureStdout();
  ::testing::internal::CaptureStderr();
  EXPECT_NO_THROW(acc.load_state(with_eval.string()));  // the training loader takes the first position
  const auto said = ::testing::internal::GetCapturedStdout() + ::testing::internal::GetCapturedStderr();
  EXPECT_NE(said.find("holds 2 data loader positions and 1 loader(s) are prepared"), std::string::npos) << said;
}

TEST(AcceleratorLifetimes, ADestroyedSchedulerIsNotSavedAndCannotStep) {
  TempDir tmp{"accelerate_lifetime"};
  auto acc = project_accelerator(tmp.path);
  auto model = acc.prepare(torch::nn::Linear(4, 2));
  torch::optim::SGD sgd(model->parameters(), 0.1);
  acc.prepare(sgd);
  AcceleratedScheduler* gone = nullptr;
  {
    LRScheduler schedule(sgd, [](int64_t step) { return 1.0 / double(step + 1); });
    gone = &acc.prepare(schedule);
    EXPECT_TRUE(gone->alive());
  }
  EXPECT_FALSE(gone->alive());
  EXPECT_THROW(gone->step(), StateError);
  LRScheduler kept(sgd, [](int64_t) { return 1.0; });
  acc.prepare(kept);  // at the address the destroyed one had, perhaps: still a new scheduler
  const fs::path dir = acc.save_state((tmp.path / "ckpt").string());
  EXPECT_EQ(saved_count(dir, "schedulers"), 1);
  EXPECT_NO_THROW(acc.load_state(dir.string()));
}

TEST(AcceleratorLifetimes, ADestroyedRegisteredObjectIsLeftOut) {
  struct Counter final : Checkpointable {
    int64_t value = 0;
    std::string state_json() const override { return std::to_string(value); }
    void load_state(const std::map<std::string, at::Tensor>&, const std::string& json) override {
      value = std::stoll(json);
    }
  };
  TempDir tmp{"accelerate_lifetime"};
  auto acc = project_accelerator(tmp.path);
  Counter kept;
  kept.value = 7;
  acc.register_for_checkpointing(kept);
  {
    Counter gone;
    acc.register_for_checkpointing(gone);
  }
  const fs::path dir = acc.save_state((tmp.path / "ckpt").string());
  EXPECT_EQ(saved_count(dir, "custom_objects"), 1);
  kept.value = 0;
  acc.load_state(dir.string());
  EXPECT_EQ(kept.value, 7);
}
