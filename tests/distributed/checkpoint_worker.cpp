// Checkpoints in every rank (1 or 2 processes, CPU): an interrupted run resumed from save_state/load_state ends
// bitwise equal to an uninterrupted one (mid-epoch, shuffled data, dropout, each optimizer, fp16 with a
// GradScaler, a schedule, accumulation);
// rotation keeps the newest complete checkpoints; incomplete or corrupt ones are refused with the file named.
#include <accelerate/accelerate.hpp>

#include <torch/torch.h>

#include <filesystem>
#include <fstream>
#include <gtest/gtest.h>

#include "distributed_gtest.hpp"
#include "worker_helpers.hpp"

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

/// What a resume test trains with: the optimizer (each has its own state fields) and the precision (fp16 adds a
/// GradScaler whose scale and growth tracker must come back too).
struct RunConfig {
  std::string optimizer = "adamw";
  std::string precision = "no";
};

void PrintTo(const RunConfig& c, std::ostream* os) { *os << c.optimizer << ", mixed_precision " << c.precision; }

std::unique_ptr<torch::optim::Optimizer> make_optimizer(const std::string& kind, std::vector<torch::Tensor> params) {
  namespace o = torch::optim;
  if (kind == "adam") return std::make_unique<o::Adam>(params, o::AdamOptions(1e-2).amsgrad(true));
  if (kind == "sgd") return std::make_unique<o::SGD>(params, o::SGDOptions(0.1).momentum(0.9).nesterov(true));
  if (kind == "adagrad") return std::make_unique<o::Adagrad>(params, o::AdagradOptions(0.1).lr_decay(0.01));
  if (kind == "rmsprop")
    return std::make_unique<o::RMSprop>(params, o::RMSpropOptions(1e-2).momentum(0.5).centered(true));
  return std::make_unique<o::AdamW>(params, 1e-2);
}

struct Training {
  Accelerator acc;
  Net model;
  std::unique_ptr<torch::optim::Optimizer> optimizer;
  DataLoader loader;
  LRScheduler schedule;
  AcceleratedOptimizer* opt = nullptr;
  AcceleratedScheduler* sched = nullptr;
  int skipped_steps = 0;

  Training(uint64_t seed, const torch::Tensor& x, const torch::Tensor& y, const RunConfig& setup = {})
      : acc(g_state,
            [&] {
              AcceleratorOptions o;
              o.cpu = !g_state->device().is_cuda();
              o.seed = seed;
              o.gradient_accumulation_steps = 2;
              o.mixed_precision = setup.precision;
              o.fp16_on_cpu = true;  // the GradScaler's state is what these runs check
              // A scale fp16 overflows at first, and a short growth interval: the scaler skips steps, backs off and
              // grows again during the run, so a resume that lost its state would diverge.
              o.grad_scaler = {.init_scale = 1 << 24, .growth_interval = 3};
              return o;
            }()),
        optimizer(make_optimizer(setup.optimizer, model->parameters())),
        loader(std::make_shared<TensorDataset>(x, y), {.batch_size = 4, .shuffle = true}),
        schedule(get_scheduler("linear", *optimizer, {.num_warmup_steps = 3, .num_training_steps = 60})) {
    acc.prepare(model);
    opt = &acc.prepare(*optimizer);
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
        torch::Tensor loss;
        {
          auto cast = acc.autocast();
          loss = torch::cross_entropy_loss(model->forward(batch.data), batch.target);
        }
        acc.backward(loss);
        opt->step();
        sched->step();
        opt->zero_grad();
        if (acc.sync_gradients() && acc.optimizer_step_was_skipped()) ++skipped_steps;
        on_step(epoch, i++);
      }
    }
  }
};

}  // namespace

class Resume : public ::testing::TestWithParam<RunConfig> {};

TEST_P(Resume, MidEpochIsBitwiseIdentical) {
  const RunConfig setup = GetParam();
  torch::manual_seed(1);
  auto x = torch::randn({40 * g_state->num_processes(), 6});
  auto y = torch::randint(0, 3, {x.size(0)}, torch::kLong);
  const auto dir = accelerate::testing::shared_temp_dir(*g_state, "resume_" + setup.optimizer + "_" + setup.precision);
  std::vector<torch::Tensor> uninterrupted;
  double final_scale = 0;
  {
    Training run(7, x, y, setup);
    bool saved = false;
    run.train([&](int64_t epoch, int64_t i) {
      if (!saved && epoch == 1 && i >= 3 && run.acc.sync_gradients()) {
        run.acc.save_state(dir);
        saved = true;
      }
    });
    ASSERT_TRUE(saved);
    for (const auto& p : run.model->parameters()) uninterrupted.push_back(p.detach().clone());
    if (setup.precision == "fp16") {
      EXPECT_GT(run.skipped_steps, 0) << "the scaler never backed off: this run does not test its state";
      final_scale = run.acc.scaler()->get_scale();
    }
  }
  Training resumed(12345, x, y, setup);  // other initial weights and RNG: everything must come from the checkpoint
  resumed.acc.load_state(dir);
  EXPECT_EQ(resumed.loader.epoch(), 1);
  resumed.train([](int64_t, int64_t) {});
  auto params = resumed.model->parameters();
  for (size_t i = 0; i < params.size(); ++i) {
    EXPECT_TRUE(torch::equal(params[i], uninterrupted[i])) << "parameter " << i << " differs after resume, max diff "
                                                           << (params[i] - uninterrupted[i]).abs().max().item<double>();
  }
  if (setup.precision == "fp16") {
    EXPECT_EQ(resumed.acc.scaler()->get_scale(), final_scale);
  }
  wait_for_everyone(*g_state);
  if (g_state->is_main_process()) fs::remove_all(dir);
}

INSTANTIATE_TEST_SUITE_P(Optimizers, Resume,
                         ::testing::Values(RunConfig{"adamw", "no"}, RunConfig{"adam", "fp16"},
                                           RunConfig{"sgd", "fp16"}, RunConfig{"adagrad", "no"},
                                           RunConfig{"rmsprop", "bf16"}),
                         [](const auto& info) { return info.param.optimizer + "_" + info.param.precision; });

TEST(Checkpoint, OptimizerOfAnotherTypeIsRefused) {
  torch::manual_seed(1);
  auto x = torch::randn({8 * g_state->num_processes(), 6});
  auto y = torch::randint(0, 3, {x.size(0)}, torch::kLong);
  const auto dir = accelerate::testing::shared_temp_dir(*g_state, "other_optimizer");
  {
    Training run(7, x, y, {"sgd", "no"});
    run.train([](int64_t, int64_t) {});
    run.acc.save_state(dir);
  }
  Training other(7, x, y, {"adamw", "no"});
  try {
    other.acc.load_state(dir);
    ADD_FAILURE() << "loading SGD state into AdamW should fail";
  } catch (const CheckpointError& e) {
    EXPECT_NE(std::string(e.what()).find("holds the state of a sgd optimizer, but the prepared optimizer is adamw"),
              std::string::npos)
        << e.what();
  }
  wait_for_everyone(*g_state);
  if (g_state->is_main_process()) fs::remove_all(dir);
}

TEST(Checkpoint, RotationKeepsTheNewestCompleteOnes) {
  const auto project = accelerate::testing::shared_temp_dir(*g_state, "rotation");
  AcceleratorOptions o;
  o.cpu = !g_state->device().is_cuda();
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
  const auto dir = accelerate::testing::shared_temp_dir(*g_state, "bad");
  AcceleratorOptions o;
  o.cpu = !g_state->device().is_cuda();
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
    other_options.cpu = !g_state->device().is_cuda();
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

int main(int argc, char** argv) {
  return accelerate::testing::run_distributed_tests(argc, argv, g_state, "checkpoint_worker");
}
