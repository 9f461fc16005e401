// Our safetensors files against Python's safetensors (the reference implementation), both directions.
#include <accelerate/accelerate.hpp>
#include <accelerate/model_io.hpp>
#include <accelerate/safetensors.hpp>

#include <torch/nn/modules/container/sequential.h>
#include <torch/nn/modules/linear.h>
#include <torch/optim/adamw.h>

#include <nlohmann/json.hpp>

#include <ATen/ATen.h>
#include <cstdlib>
#include <filesystem>
#include <gtest/gtest.h>

#include "subprocess.hpp"

namespace st = accelerate::safetensors;
namespace fs = std::filesystem;

namespace {
// The same tensors as reference() in safetensors_interop.py.
st::TensorMap reference() {
  st::TensorMap t;
  const std::vector<std::pair<std::string, at::ScalarType>> dtypes = {
      {"f32", at::kFloat}, {"f64", at::kDouble}, {"f16", at::kHalf}, {"bf16", at::kBFloat16}, {"i64", at::kLong},
      {"i32", at::kInt},   {"i16", at::kShort},  {"i8", at::kChar},  {"u8", at::kByte},       {"bool", at::kBool}};
  for (const auto& [name, type] : dtypes) {
    auto values = at::arange(-6, 6, at::kDouble).reshape({3, 4}) * 1.5;
    if (type == at::kBool)
      t[name] = values > 0;
    else if (type == at::kByte)
      t[name] = values.abs().to(type);
    else
      t[name] = values.to(type);
  }
  t["scalar"] = at::scalar_tensor(3.25);
  t["scalar"] = t["scalar"].to(at::kFloat);
  t["empty"] = at::zeros({0, 5});
  t["model.layer.weight"] = at::linspace(-1, 1, 60).reshape({6, 10});
  return t;
}

std::string temp(const std::string& name) {
  return (fs::temp_directory_path() / ("accelerate_st_" + std::to_string(::getpid()) + "_" + name)).string();
}

accelerate::testing::RunResult python(const std::string& mode, const std::string& path, const std::string& extra = "") {
  std::vector<std::string> argv{ACCELERATE_TEST_PYTHON,
                                ACCELERATE_TEST_SOURCE_DIR "/tests/interop/safetensors_interop.py", mode, path};
  if (!extra.empty()) argv.push_back(extra);
  return accelerate::testing::run(argv);
}
}  // namespace

TEST(SafetensorsInterop, PythonReadsWhatWeWrite) {
  const auto path = temp("ours.safetensors");
  st::save_file(reference(), path, {{"format", "pt"}, {"written_by", "accelerate-cpp"}});
  auto r = python("check", path);
  EXPECT_EQ(r.exit_code, 0) << r.output;
  fs::remove(path);
}

TEST(SafetensorsInterop, WeReadWhatPythonWrites) {
  const auto path = temp("python.safetensors");
  auto r = python("write", path);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  st::File file(path);
  EXPECT_EQ(file.metadata().at("written_by"), "python");
  auto expected = reference();
  ASSERT_EQ(file.keys().size(), expected.size());
  for (const auto& [name, tensor] : expected) {
    auto got = file.get(name);
    EXPECT_EQ(got.scalar_type(), tensor.scalar_type()) << name;
    EXPECT_EQ(got.sizes(), tensor.sizes()) << name;
    EXPECT_TRUE(at::equal(got, tensor)) << name;
  }
  fs::remove(path);
}

TEST(SafetensorsInterop, PythonReadsShardedModelsThroughTheIndex) {
  torch::nn::Sequential model(torch::nn::Linear(16, 32), torch::nn::Linear(32, 32), torch::nn::Linear(32, 4));
  const auto dir = temp("sharded_model"), single = temp("single_model");
  accelerate::save_model(*model, dir, 2048);
  accelerate::save_model(*model, single);
  ASSERT_TRUE(fs::exists(fs::path(dir) / "model.safetensors.index.json"));
  auto r = python("check_sharded", dir, single + "/model.safetensors");
  EXPECT_EQ(r.exit_code, 0) << r.output;
  fs::remove_all(dir);
  fs::remove_all(single);
}

TEST(SafetensorsInterop, PythonReadsModelAndOptimizerOfACheckpoint) {
  accelerate::AcceleratorOptions options;
  options.cpu = true;
  accelerate::Accelerator acc(options);
  torch::nn::Linear model(3, 2);
  torch::optim::AdamW adamw(model->parameters(), 0.1);
  acc.prepare(model);
  auto& opt = acc.prepare(adamw);
  acc.backward(model->forward(at::ones({4, 3})).sum());  // one step: Adam moments exist
  opt.step();
  const auto dir = temp("checkpoint");
  acc.save_state(dir);
  // The values Python must find, by file and tensor name (parameters in model order: weight, bias).
  auto values = [](const at::Tensor& t) {
    auto f = t.detach().to(at::kDouble).flatten().contiguous();
    return nlohmann::json{t.sizes().vec(), std::vector<double>(f.data_ptr<double>(), f.data_ptr<double>() + f.numel())};
  };
  nlohmann::json expected;
  expected["model.safetensors"]["weight"] = values(model->weight);
  expected["model.safetensors"]["bias"] = values(model->bias);
  auto params = model->parameters();
  for (size_t i = 0; i < params.size(); ++i) {
    auto& s = static_cast<torch::optim::AdamWParamState&>(*adamw.state().at(params[i].unsafeGetTensorImpl()));
    expected["optimizer.safetensors"]["state." + std::to_string(i) + ".exp_avg"] = values(s.exp_avg());
    expected["optimizer.safetensors"]["state." + std::to_string(i) + ".exp_avg_sq"] = values(s.exp_avg_sq());
  }
  auto r = python("check_checkpoint", dir, expected.dump());
  EXPECT_EQ(r.exit_code, 0) << r.output;
  fs::remove_all(dir);
}
