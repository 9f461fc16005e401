// The GPT example's model in Python transformers: the folder save_hf_gpt2 writes loads as GPT2LMHeadModel and
// gives the same logits (within 1e-4, fp32).
#include <accelerate/safetensors.hpp>

#include <torch/torch.h>

#include <filesystem>
#include <gtest/gtest.h>

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
