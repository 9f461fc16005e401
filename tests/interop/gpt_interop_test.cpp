// The GPT example's model and Python transformers: the folder save_hf_gpt2 writes loads as GPT2LMHeadModel and
// gives the same logits (within 1e-4, fp32), and a GPT-2 trained in Python fine-tunes in C++ (--init_from).
#include <accelerate/safetensors.hpp>

#include <torch/torch.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "gpt.hpp"
#include "subprocess.hpp"

namespace fs = std::filesystem;

TEST(GptInterop, TransformersLoadsTheModelAndAgreesOnLogits) {
  torch::manual_seed(3);
  gpt::Gpt model(gpt::Config{.vocab_size = 256, .block_size = 16, .n_layer = 2, .n_head = 2, .n_embd = 32});
  {
    // Non-trivial biases and LayerNorm parameters, so a transposed or misnamed tensor cannot go unnoticed.
    torch::NoGradGuard no_grad;
    for (auto& p : model->parameters()) p.add_(torch::randn_like(p) * 0.05);
  }
  model->eval();
  const auto dir = fs::temp_directory_path() / ("accelerate_gpt_interop_" + std::to_string(::getpid()));
  fs::remove_all(dir);
  gpt::save_hf_gpt2(*model, (dir / "model").string());
  auto ids = torch::randint(0, 256, {3, 16}, torch::kLong);
  torch::Tensor logits;
  {
    torch::NoGradGuard no_grad;
    logits = model->forward(ids);
  }
  accelerate::safetensors::save_file({{"input_ids", ids}, {"logits", logits.contiguous()}},
                                     (dir / "expected.safetensors").string());
  auto r = accelerate::testing::run({ACCELERATE_TEST_PYTHON, ACCELERATE_TEST_SOURCE_DIR "/tests/interop/gpt_interop.py",
                                     (dir / "model").string(), (dir / "expected.safetensors").string()},
                                    {}, std::chrono::seconds(120));
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("max |logits difference|"), std::string::npos) << r.output;
  fs::remove_all(dir);
}

namespace {
std::string example_data_dir() {
  if (const char* d = std::getenv("ACCELERATE_CPP_DATA"); d && *d) return std::string(d) + "/shakespeare";
  return std::string(std::getenv("HOME") ? std::getenv("HOME") : ".") + "/.cache/accelerate-cpp/data/shakespeare";
}

double number_after(const std::string& text, const std::string& key) {
  const auto at = text.find(key);
  return at == std::string::npos ? std::nan("") : std::stod(text.substr(at + key.size()));
}

/// A copy of the transformers folder `from` with its weights and config.json edited.
fs::path edited_copy(const fs::path& from, const fs::path& to,
                     const std::function<void(accelerate::safetensors::TensorMap&)>& weights,
                     const std::function<void(nlohmann::json&)>& config) {
  fs::create_directories(to);
  auto tensors = accelerate::safetensors::load_file((from / "model.safetensors").string());
  weights(tensors);
  accelerate::safetensors::save_file(tensors, (to / "model.safetensors").string(), {{"format", "pt"}});
  auto json = nlohmann::json::parse(std::ifstream(from / "config.json"));
  config(json);
  std::ofstream(to / "config.json") << json.dump(2);
  return to;
}
}  // namespace

// A GPT-2 trained in Python (transformers, a few hundred steps on the example's data) comes into the C++ model
// with its architecture and weights: the same logits as transformers, and the example's first logged loss is the
// Python model's loss on that batch (not a fresh model's, about ln 256 = 5.55). Folders that do not fit are refused
// naming each tensor or field.
TEST(GptInterop, APretrainedTransformersModelFineTunesFromItsWeights) {
  const auto data = example_data_dir();
  ASSERT_TRUE(fs::exists(data + "/train.bin")) << data << "/train.bin is missing: run scripts/setup.sh";
  const auto dir = fs::temp_directory_path() / ("accelerate_gpt_pretrained_" + std::to_string(::getpid()));
  fs::remove_all(dir);
  auto py =
      accelerate::testing::run({ACCELERATE_TEST_PYTHON, ACCELERATE_TEST_SOURCE_DIR "/tests/interop/gpt_pretrained.py",
                                data, dir.string(), "200"},
                               {}, std::chrono::seconds(240));
  ASSERT_EQ(py.exit_code, 0) << py.output;
  const double python_loss = number_after(py.output, "python_loss=");

  // The logits of the loaded model, in process.
  const auto hf = gpt::read_hf_gpt2_config((dir / "model").string());
  EXPECT_EQ(hf.config.n_layer, 4);
  EXPECT_EQ(hf.config.n_positions, 128);
  EXPECT_FALSE(hf.notes.empty()) << "transformers' dropout 0.1 is not applied: a note says so";
  gpt::Gpt model(hf.config);
  gpt::load_hf_gpt2(*model, (dir / "model").string());
  model->eval();
  const auto expected = accelerate::safetensors::load_file((dir / "expected.safetensors").string());
  torch::Tensor logits;
  {
    torch::NoGradGuard no_grad;
    logits = model->forward(expected.at("input_ids"));
  }
  EXPECT_LT((logits - expected.at("logits")).abs().max().item<double>(), 1e-4);

  // The example's first logged loss: one window, so any shuffle order gives it.
  auto first = accelerate::testing::run(
      {ACCELERATE_TEST_GPT, "--init_from", (dir / "model").string(), "--data_dir", (dir / "one").string(),
       "--batch_size", "1", "--max_steps", "1", "--log_interval", "1", "--sample_tokens", "0", "--num_workers", "0"},
      {}, std::chrono::seconds(120));
  ASSERT_EQ(first.exit_code, 0) << first.output;
  EXPECT_NE(first.output.find("initialised from"), std::string::npos) << first.output;
  EXPECT_NEAR(number_after(first.output, "step=1 loss="), python_loss, 2e-5) << first.output << py.output;
  EXPECT_LT(python_loss, 4.0) << "the Python model did not learn: the comparison would not tell it from a fresh one";
  // At ZeRO stage 3 on 2 processes the blocks are built without weights (init_empty_weights) and each process
  // loads only its shards of them after prepare: the same first loss, and the same refusal of a folder that does
  // not fit.
  const auto cli = (fs::path(ACCELERATE_TEST_GPT).parent_path() / "accelerate-cpp").string();
  auto sharded = accelerate::testing::run({cli,
                                           "launch",
                                           "--cpu",
                                           "--num_processes",
                                           "2",
                                           "--timeout",
                                           "60",
                                           ACCELERATE_TEST_GPT,
                                           "--zero_stage",
                                           "3",
                                           "--init_from",
                                           (dir / "model").string(),
                                           "--data_dir",
                                           (dir / "one").string(),
                                           "--batch_size",
                                           "1",
                                           "--max_steps",
                                           "1",
                                           "--log_interval",
                                           "1",
                                           "--sample_tokens",
                                           "0",
                                           "--num_workers",
                                           "0"},
                                          {}, std::chrono::seconds(120));
  ASSERT_EQ(sharded.exit_code, 0) << sharded.output;
  EXPECT_NEAR(number_after(sharded.output, "step=1 loss="), python_loss, 2e-5) << sharded.output;

  // Missing, unexpected and misshapen tensors, each named; nothing trains.
  const auto broken = edited_copy(
      dir / "model", dir / "broken",
      [](auto& t) {
        t.erase("transformer.h.1.ln_2.bias");
        t["transformer.h.1.extra.weight"] = torch::zeros({2});
        t["transformer.wpe.weight"] = torch::zeros({64, 128});
      },
      [](auto&) {});
  auto refused = accelerate::testing::run(
      {ACCELERATE_TEST_GPT, "--init_from", broken.string(), "--data_dir", (dir / "one").string(), "--max_steps", "1"},
      {}, std::chrono::seconds(60));
  EXPECT_EQ(refused.exit_code, 1) << refused.output;
  for (const char* name :
       {"'h.1.ln_2.bias'", "'h.1.extra.weight'", "'wpe.weight' (checkpoint 'transformer.wpe.weight')",
        "Float[64, 128] but the model's is Float[128, 128]", "nothing was loaded"}) {
    EXPECT_NE(refused.output.find(name), std::string::npos) << name << "\n" << refused.output;
  }
  EXPECT_EQ(refused.output.find("step=1"), std::string::npos) << refused.output;
  // A config.json the model cannot represent, and an architecture flag that contradicts it.
  const auto relu = edited_copy(
      dir / "model", dir / "relu", [](auto&) {}, [](auto& c) { c["activation_function"] = "relu"; });
  auto bad_config =
      accelerate::testing::run({ACCELERATE_TEST_GPT, "--init_from", relu.string()}, {}, std::chrono::seconds(60));
  EXPECT_EQ(bad_config.exit_code, 2) << bad_config.output;
  EXPECT_NE(bad_config.output.find("activation_function is \"relu\""), std::string::npos) << bad_config.output;
  // A run's --output_dir instead of its model folder, and a pickled checkpoint (a trial of 2026-12-04).
  fs::create_directories(dir / "run" / "model");
  fs::copy(dir / "model" / "config.json", dir / "run" / "model" / "config.json");
  auto run_folder = accelerate::testing::run({ACCELERATE_TEST_GPT, "--init_from", (dir / "run").string()}, {},
                                             std::chrono::seconds(60));
  EXPECT_EQ(run_folder.exit_code, 2) << run_folder.output;
  EXPECT_NE(run_folder.output.find("did you mean " + (dir / "run").string() + "/model?"), std::string::npos)
      << run_folder.output;
  std::ofstream(dir / "run" / "model" / "pytorch_model.bin") << "pickle";
  auto pickled = accelerate::testing::run(
      {ACCELERATE_TEST_GPT, "--init_from", (dir / "run" / "model").string(), "--data_dir", (dir / "one").string()}, {},
      std::chrono::seconds(60));
  EXPECT_EQ(pickled.exit_code, 1) << pickled.output;
  EXPECT_NE(pickled.output.find("pytorch_model.bin, a pickle, which is not read"), std::string::npos) << pickled.output;
  auto contradicted = accelerate::testing::run(
      {ACCELERATE_TEST_GPT, "--init_from", (dir / "model").string(), "--n_layer", "2"}, {}, std::chrono::seconds(60));
  EXPECT_EQ(contradicted.exit_code, 2) << contradicted.output;
  EXPECT_NE(contradicted.output.find("--n_layer 2 differs from"), std::string::npos) << contradicted.output;
  fs::remove_all(dir);
}
