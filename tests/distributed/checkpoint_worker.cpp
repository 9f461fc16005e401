// Checkpoints in every rank (1 or 2 processes, CPU): an interrupted run resumed from save_state/load_state ends
// bitwise equal to an uninterrupted one (mid-epoch, shuffled data, dropout, AdamW, a schedule, accumulation);
// rotation keeps the newest complete checkpoints; incomplete or corrupt ones are refused with the file named.
#include <accelerate/accelerate.hpp>

#include <torch/torch.h>

#include <filesystem>
#include <fstream>
#include <gtest/gtest.h>

#include "distributed_gtest.hpp"

using namespace accelerate;
namespace fs = std::filesystem;

namespace {

std::shared_ptr<ProcessState> g_state;

struct NetImpl : torch::nn::Module {
  explicit NetImpl(int hidden = 16)
      : a(register_module("a", torch::nn::Linear(6, hidden))),
        drop(register_module("drop", torch::nn::Dropout(0.2))),
        b(register_module("b", torch::nn::Linear(hidden, 3))) {}
  torch::Tensor forward(torch::Tensor x) { return b(drop(torch::tanh(a(x)))); }
  torch::nn::Linear a;
  torch::nn::Dropout drop;
  torch::nn::Linear b;
};
TORCH_MODULE(Net);

/// A folder every rank agrees on (rank 0 picks it).
std::string shared_temp_dir(const std::string& name) {
  std::vector<c10::IValue> dir{c10::IValue(std::string())};
  if (g_state->is_main_process()) {
    auto path = fs::temp_directory_path() / ("accelerate_ckpt_" + std::to_string(::getpid()) + "_" + name);
    fs::remove_all(path);
    dir[0] = path.string();
  }
  broadcast_object_list(*g_state, dir, 0);
  return dir[0].toStringRef();
}

struct Training {
  Accelerator acc;
  Net model;
  torch::optim::AdamW adamw;
  DataLoader loader;
  LRScheduler schedule;
  AcceleratedOptimizer* opt = nullptr;
  AcceleratedScheduler* sched = nullptr;

  Training(uint64_t seed, const torch::Tensor& x, const torch::Tensor& y)
      : acc(g_state, [&] {
          AcceleratorOptions o;
          o.cpu = true;
          o.seed = seed;
          o.gradient_accumulation_steps = 2;
          return o;
        }()),
        adamw(model->parameters(), 1e-2),
        loader(std::make_shared<TensorDataset>(x, y), {.batch_size = 4, .shuffle = true}),
        schedule(get_scheduler("linear", adamw, {.num_warmup_steps = 3, .num_training_steps = 60})) {
    acc.prepare(model);
    opt = &acc.prepare(adamw);
    acc.prepare(loader);
    sched = &acc.prepare(schedule);
  }

  /// Trains until the end of epoch 3; calls on_step(epoch, batch) after each micro-step.
  template <class F>
  void train(F&& on_step) {
    for (int64_t epoch = loader.epoch(); epoch < 3; ++epoch) {
      int64_t i = 0;
      for (auto& batch : loader) {
        auto step = acc.accumulate(model);
        acc.backward(torch::cross_entropy_loss(model->forward(batch.data), batch.target));
        opt->step();
        sched->step();
        opt->zero_grad();
        on_step(epoch, i++);
      }
    }
  }
};

}  // namespace

TEST(Checkpoint, ResumeMidEpochIsBitwiseIdentical) {
  torch::manual_seed(1);
  auto x = torch::randn({40 * g_state->num_processes(), 6});
  auto y = torch::randint(0, 3, {x.size(0)}, torch::kLong);
  const auto dir = shared_temp_dir("resume");
  std::vector<torch::Tensor> uninterrupted;
  {
    Training run(7, x, y);
    bool saved = false;
    run.train([&](int64_t epoch, int64_t i) {
      if (!saved && epoch == 1 && i >= 3 && run.acc.sync_gradients()) {
        run.acc.save_state(dir);
        saved = true;
      }
    });
    ASSERT_TRUE(saved);
    for (const auto& p : run.model->parameters()) uninterrupted.push_back(p.detach().clone());
  }
  Training resumed(12345, x, y);  // other initial weights and RNG: everything must come from the checkpoint
  resumed.acc.load_state(dir);
  EXPECT_EQ(resumed.loader.epoch(), 1);
  resumed.train([](int64_t, int64_t) {});
  auto params = resumed.model->parameters();
  for (size_t i = 0; i < params.size(); ++i) {
    EXPECT_TRUE(torch::equal(params[i], uninterrupted[i])) << "parameter " << i << " differs after resume, max diff "
                                                           << (params[i] - uninterrupted[i]).abs().max().item<double>();
  }
  wait_for_everyone(*g_state);
  if (g_state->is_main_process()) fs::remove_all(dir);
}

TEST(Checkpoint, RotationKeepsTheNewestCompleteOnes) {
  const auto project = shared_temp_dir("rotation");
  AcceleratorOptions o;
  o.cpu = true;
  o.project = {.project_dir = project, .automatic_checkpoint_naming = true, .total_limit = 2};
  Accelerator acc(g_state, o);
  Net model;
  acc.prepare(model);
  for (int i = 0; i < 5; ++i) acc.save_state();
  EXPECT_EQ(acc.project_configuration().iteration, 5);
  std::vector<std::string> left;
  for (const auto& e : fs::directory_iterator(fs::path(project) / "checkpoints")) left.push_back(e.path().filename());
  std::sort(left.begin(), left.end());
  EXPECT_EQ(left, (std::vector<std::string>{"checkpoint_3", "checkpoint_4"}));
  // An interrupted newer save (no COMPLETE marker) is skipped by load_state(), which takes the newest complete one.
  wait_for_everyone(*g_state);
  if (g_state->is_main_process()) {
    fs::create_directories(fs::path(project) / "checkpoints" / "checkpoint_9");
    std::ofstream(fs::path(project) / "checkpoints" / "checkpoint_9" / "model.safetensors") << "partial";
  }
  wait_for_everyone(*g_state);
  EXPECT_EQ(fs::path(acc.load_state()).filename(), "checkpoint_4");
  EXPECT_EQ(acc.project_configuration().iteration, 5);
  wait_for_everyone(*g_state);
  if (g_state->is_main_process()) fs::remove_all(project);
}

TEST(Checkpoint, BadInputIsRefusedWithTheFileNamed) {
  const auto dir = shared_temp_dir("bad");
  AcceleratorOptions o;
  o.cpu = true;
  Accelerator acc(g_state, o);
  Net model;
  acc.prepare(model);
  acc.save_state(dir);
  try {
    acc.save_state(dir);  // not empty: refused, the checkpoint stays intact
    FAIL() << "overwrote a checkpoint";
  } catch (const CheckpointError& e) {
    EXPECT_NE(std::string(e.what()).find("already exists"), std::string::npos) << e.what();
  }
  EXPECT_NO_THROW(acc.load_state(dir));
  {
    AcceleratorOptions other_options;
    other_options.cpu = true;
    Accelerator other(g_state, other_options);
    Net wider(32);  // another model
    other.prepare(wider);
    try {
      other.load_state(dir);
      FAIL() << "loaded a checkpoint of another model";
    } catch (const CheckpointError& e) {
      EXPECT_NE(std::string(e.what()).find("model.safetensors"), std::string::npos) << e.what();
    }
  }
  wait_for_everyone(*g_state);
  if (g_state->is_main_process()) fs::resize_file(fs::path(dir) / "model.safetensors", 20);  // truncated
  wait_for_everyone(*g_state);
  try {
    acc.load_state(dir);
    FAIL() << "loaded a truncated file";
  } catch (const CheckpointError& e) {
    EXPECT_NE(std::string(e.what()).find("model.safetensors"), std::string::npos) << e.what();
  }
  wait_for_everyone(*g_state);
  if (g_state->is_main_process()) {
    fs::remove(fs::path(dir) / "COMPLETE");
  }
  wait_for_everyone(*g_state);
  EXPECT_THROW(acc.load_state(dir), CheckpointError);  // no completion marker
  wait_for_everyone(*g_state);
  if (g_state->is_main_process()) fs::remove_all(dir);
}

int main(int argc, char** argv) { return accelerate::testing::run_distributed_tests(argc, argv, g_state, "checkpoint_worker"); }
