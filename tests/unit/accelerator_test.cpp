// Accelerator in a world of one: mixed precision, the accumulation sync pattern, settings from an injected
// environment, and bad input.
#include <accelerate/accelerate.hpp>

#include <torch/torch.h>

#include <cmath>
#include <filesystem>
#include <gtest/gtest.h>

using namespace accelerate;

namespace {
torch::nn::Linear tiny_model() { return torch::nn::Linear(4, 2); }

AcceleratorOptions cpu_options() {
  AcceleratorOptions o;
  o.cpu = true;
  return o;
}
}  // namespace

// Mixed precision needs acc.autocast() around the forward (C++ cannot patch the model's forward as HF does):
// forgetting it is said once, at the first backward whose forward ran outside it; using it is silent.
TEST(Accelerator, MixedPrecisionWithoutAutocastIsSaidOnce) {
  auto o = cpu_options();
  o.mixed_precision = "bf16";
  Accelerator acc(o);
  auto model = acc.prepare(tiny_model());
  auto x = torch::randn({8, 4});
  auto step = [&](bool with_autocast) {
    ::testing::internal::CaptureStderr();
    torch::Tensor loss;
    if (with_autocast) {
      auto autocast = acc.autocast();
      loss = model->forward(x).to(torch::kFloat).pow(2).mean();
    } else {
      loss = model->forward(x).pow(2).mean();
    }
    acc.backward(loss);
    return ::testing::internal::GetCapturedStderr();
  };
  EXPECT_EQ(step(true), "");
  EXPECT_EQ(step(true), "");
  const auto said = step(false);
  EXPECT_NE(said.find("mixed_precision is bf16, but no autocast region ran before this backward"), std::string::npos)
      << said;
  EXPECT_NE(said.find("accelerator_test.cpp:"), std::string::npos) << said;
  EXPECT_EQ(step(false), "");  // once
  // A region open around the whole loop counts too.
  Accelerator acc2(o);
  auto model2 = acc2.prepare(tiny_model());
  auto whole_loop = acc2.autocast();
  ::testing::internal::CaptureStderr();
  for (int i = 0; i < 2; ++i) acc2.backward(model2->forward(x).to(torch::kFloat).pow(2).mean());
  EXPECT_EQ(::testing::internal::GetCapturedStderr(), "");
}

TEST(Accelerator, Bf16AutocastOnCpu) {
  auto o = cpu_options();
  o.mixed_precision = "bf16";
  Accelerator acc(o);
  auto model = acc.prepare(tiny_model());
  auto x = torch::randn({8, 4});
  torch::Tensor inside, outside, loss;
  {
    auto guard = acc.autocast();
    inside = model->forward(x);
    loss = torch::cross_entropy_loss(inside, torch::zeros({8}, torch::kLong));
  }
  outside = model->forward(x);
  EXPECT_EQ(inside.scalar_type(), torch::kBFloat16);  // the matmul ran in bf16
  EXPECT_EQ(outside.scalar_type(), torch::kFloat);
  EXPECT_EQ(loss.scalar_type(), torch::kFloat);  // cross entropy autocasts to fp32
  EXPECT_TRUE(std::isfinite(loss.item<double>()));
  acc.backward(loss);
  EXPECT_EQ(model->weight.grad().scalar_type(), torch::kFloat);
}

// Issue 10, case 11: a GPU configuration (fp16) on a CPU trains in fp32, as HF does, and says so.
TEST(Accelerator, Fp16OnCpuTrainsInFp32AndSaysSo) {
  auto o = cpu_options();
  o.mixed_precision = "fp16";
  testing::internal::CaptureStderr();
  Accelerator acc(o);
  const auto warning = testing::internal::GetCapturedStderr();
  EXPECT_NE(warning.find("training in fp32 instead"), std::string::npos) << warning;
  EXPECT_NE(warning.find("bf16 is the CPU's mixed precision"), std::string::npos) << warning;
  EXPECT_EQ(acc.mixed_precision(), MixedPrecision::No);
  EXPECT_EQ(acc.scaler(), nullptr);
  EXPECT_NE(acc.state_report().find("Mixed precision type: no (fp16 was asked for: not on the CPU)"), std::string::npos)
      << acc.state_report();
  auto model = acc.prepare(tiny_model());
  auto guard = acc.autocast();
  EXPECT_EQ(model->forward(torch::randn({2, 4})).scalar_type(), torch::kFloat);
}

TEST(Accelerator, Fp16OnCpuAutocastsAndScalesWhenForced) {
  auto o = cpu_options();
  o.mixed_precision = "fp16";
  o.fp16_on_cpu = true;
  o.grad_scaler.init_scale = 256;
  Accelerator acc(o);
  ASSERT_NE(acc.scaler(), nullptr);
  auto model = acc.prepare(tiny_model());
  torch::optim::SGD sgd(model->parameters(), 0.1);
  auto& opt = acc.prepare(sgd);
  auto x = torch::randn({8, 4});
  torch::Tensor out;
  {
    auto guard = acc.autocast();
    out = model->forward(x);
  }
  EXPECT_EQ(out.scalar_type(), torch::kHalf);  // the matmul ran in fp16
  auto reference = model->forward(x).sum();
  reference.backward();
  const auto true_grad = model->weight.grad().clone();
  opt.zero_grad();
  acc.backward(model->forward(x).sum());
  EXPECT_TRUE(torch::allclose(model->weight.grad(), true_grad * 256));  // backward scaled the loss
  acc.unscale_gradients();
  EXPECT_TRUE(torch::allclose(model->weight.grad(), true_grad));
}

TEST(Accelerator, NoPrecisionAutocastChangesNothing) {
  Accelerator acc(cpu_options());
  auto model = acc.prepare(tiny_model());
  auto guard = acc.autocast();
  EXPECT_EQ(model->forward(torch::randn({2, 4})).scalar_type(), torch::kFloat);
}

TEST(Accelerator, AccumulationSyncPatternAndLastBatch) {
  auto o = cpu_options();
  o.gradient_accumulation_steps = 3;
  Accelerator acc(o);
  auto data = torch::arange(7, torch::kFloat).reshape({7, 1});
  DataLoader loader(std::make_shared<TensorDataset>(data, data), {.batch_size = 1});
  auto model = torch::nn::Linear(1, 1);
  torch::optim::SGD sgd(model->parameters(), 0.1);
  auto [net, opt, dl] = acc.prepare(model, sgd, loader);
  std::vector<bool> syncs;
  for (auto& batch : dl) {
    auto step = acc.accumulate(net);
    acc.backward(net->forward(batch.data).sum());
    opt.step();
    opt.zero_grad();
    syncs.push_back(acc.sync_gradients());
  }
  // Every third micro-step, and always the last batch of the epoch.
  EXPECT_EQ(syncs, (std::vector<bool>{false, false, true, false, false, true, true}));
}

TEST(Accelerator, BackwardDividesByAccumulationSteps) {
  auto o = cpu_options();
  o.gradient_accumulation_steps = 4;
  Accelerator acc(o);
  auto p = torch::ones({1}, torch::requires_grad());
  acc.backward((p * 8).sum());
  EXPECT_FLOAT_EQ(p.grad().item<float>(), 2.0f);
}

TEST(Accelerator, EnvironmentFillsUnsetOptionsOnly) {
  // The environment is injected: nothing of this process's environment is read or changed.
  const EnvironmentVariables env = {{"ACCELERATE_GRADIENT_ACCUMULATION_STEPS", "5"},
                                    {"ACCELERATE_MIXED_PRECISION", "bf16"}};
  {
    Accelerator from_env(env, cpu_options());
    EXPECT_EQ(from_env.gradient_accumulation_steps(), 5);
    EXPECT_EQ(from_env.mixed_precision(), MixedPrecision::Bf16);
    auto o = cpu_options();
    o.gradient_accumulation_steps = 2;
    o.mixed_precision = "no";
    Accelerator explicit_wins(env, o);
    EXPECT_EQ(explicit_wins.gradient_accumulation_steps(), 2);
    EXPECT_EQ(explicit_wins.mixed_precision(), MixedPrecision::No);
    Accelerator from_process(cpu_options());  // the test runs without these variables
    EXPECT_EQ(from_process.gradient_accumulation_steps(), 1);
    EXPECT_EQ(from_process.mixed_precision(), MixedPrecision::No);
  }
  EXPECT_THROW(Accelerator({{"ACCELERATE_GRADIENT_ACCUMULATION_STEPS", "many"}}, cpu_options()), ConfigError);
  EXPECT_THROW(Accelerator({{"ACCELERATE_MIXED_PRECISION", "fp8"}}, cpu_options()), ConfigError);
}

TEST(Accelerator, BadInput) {
  auto expect_error = [](auto&& f, const std::string& needle) {
    try {
      f();
      FAIL() << "expected an error mentioning " << needle;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    }
  };
  expect_error(
      [] {
        auto o = cpu_options();
        o.mixed_precision = "fp4";
        Accelerator a(o);
      },
      "mixed_precision 'fp4' is not one of no, fp16, bf16");
  expect_error(
      [] {
        auto o = cpu_options();
        o.gradient_accumulation_steps = 0;
        Accelerator a(o);
      },
      "gradient_accumulation_steps must be >= 1");
  Accelerator acc(cpu_options());
  auto model = tiny_model();
  acc.prepare(model);
  expect_error([&] { acc.prepare(model); }, "already prepared");
  torch::optim::SGD sgd(model->parameters(), 0.1);
  acc.prepare(sgd);
  expect_error([&] { acc.prepare(sgd); }, "already prepared");
  expect_error([&] { acc.backward(model->forward(torch::randn({3, 4}))); }, "must be a scalar");
  expect_error(
      [&] {
        torch::NoGradGuard no_grad;
        acc.backward(model->forward(torch::randn({3, 4})).sum());
      },
      "does not require grad");
}

TEST(Accelerator, GatherForMetricsDropsThePadding) {
  Accelerator acc(cpu_options());
  auto data = torch::arange(5, torch::kLong);
  DataLoader loader(std::make_shared<TensorDataset>(data, data), {.batch_size = 2});
  auto& dl = acc.prepare(loader);
  std::vector<int64_t> seen;
  for (auto& batch : dl) {
    auto all = acc.gather_for_metrics(batch.data);
    for (int64_t i = 0; i < all.size(0); ++i) seen.push_back(all[i].item<int64_t>());
  }
  EXPECT_EQ(seen, (std::vector<int64_t>{0, 1, 2, 3, 4}));
}

TEST(Accelerator, ClipGradients) {
  Accelerator acc(cpu_options());
  auto p = torch::zeros({2}, torch::requires_grad());
  acc.backward((p * torch::tensor({3.0f, 4.0f})).sum());
  EXPECT_NEAR(acc.clip_grad_norm_({p}, 1.0), 5.0, 1e-6);  // returns the norm before clipping
  EXPECT_NEAR(p.grad().norm().item<double>(), 1.0, 1e-5);
  acc.clip_grad_value_({p}, 0.5);
  EXPECT_LE(p.grad().abs().max().item<float>(), 0.5f);
}

TEST(Accelerator, SetSeedIsReproducibleAndDeviceSpecificShifts) {
  Accelerator acc(cpu_options());
  acc.set_seed(11);
  auto a = torch::rand({3});
  acc.set_seed(11);
  EXPECT_TRUE(torch::equal(a, torch::rand({3})));
  acc.set_seed(10, /*device_specific=*/true);  // rank 0 adds 0
  EXPECT_FALSE(torch::equal(a, torch::rand({3})));
}

TEST(DataLoader, AdaptsTorchDataDatasets) {
  struct Squares : torch::data::datasets::Dataset<Squares> {
    torch::data::Example<> get(size_t i) override {
      return {torch::full({2}, static_cast<float>(i * i)), torch::tensor(static_cast<int64_t>(i))};
    }
    torch::optional<size_t> size() const override { return 6; }
  };
  DataLoader loader(from_torch_dataset(Squares{}), {.batch_size = 4});
  std::vector<int64_t> sizes;
  std::vector<float> firsts;
  for (auto& batch : loader) {
    sizes.push_back(batch.data.size(0));
    firsts.push_back(batch.data[0][0].item<float>());
  }
  EXPECT_EQ(sizes, (std::vector<int64_t>{4, 2}));
  EXPECT_EQ(firsts, (std::vector<float>{0.0f, 16.0f}));
}

TEST(Accelerator, RegisteredObjectsAreCheckpointed) {
  struct EarlyStopping final : Checkpointable {
    double best = 0;
    at::Tensor history = at::zeros({3});
    std::map<std::string, at::Tensor> state_tensors() const override { return {{"history", history}}; }
    std::string state_json() const override { return "{\"best\": " + std::to_string(best) + "}"; }
    void load_state(const std::map<std::string, at::Tensor>& t, const std::string& json) override {
      history = t.at("history");
      best = std::stod(json.substr(json.find(':') + 1));
    }
  } tracker;
  Accelerator acc(cpu_options());
  acc.register_for_checkpointing(tracker);
  tracker.best = 0.75;
  tracker.history = at::tensor({0.5, 0.7, 0.75});
  const auto dir =
      (std::filesystem::temp_directory_path() / ("accelerate_custom_" + std::to_string(::getpid()))).string();
  acc.save_state(dir);
  EXPECT_TRUE(std::filesystem::exists(std::filesystem::path(dir) / "custom_checkpoint_0.safetensors"));
  tracker.best = 0;
  tracker.history = at::zeros({3});
  acc.load_state(dir);
  EXPECT_DOUBLE_EQ(tracker.best, 0.75);
  EXPECT_TRUE(at::equal(tracker.history, at::tensor({0.5, 0.7, 0.75})));
  std::filesystem::remove_all(dir);
}

// The state report says how busy the hardware is: on a CPU, this process's CPU time over its wall time.
TEST(Accelerator, TheStateReportSaysHowBusyTheCpuIs) {
  Accelerator acc(cpu_options());
  const auto report = acc.state_report();
  EXPECT_NE(report.find("% of one core since this process started"), std::string::npos) << report;
}
