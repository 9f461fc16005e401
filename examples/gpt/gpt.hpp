// A GPT-2-architecture decoder (nanoGPT's model.py in LibTorch): pre-LayerNorm blocks, causal self-attention
// through scaled_dot_product_attention, GELU (tanh form, GPT-2's "gelu_new"), learned positions, and the output
// projection tied to the token embedding. Parameter names follow HF's GPT2LMHeadModel without its "transformer."
// prefix, so save_hf_gpt2() only renames the prefix and transposes GPT-2's Conv1D weights.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <torch/nn/module.h>
#include <torch/nn/modules/container/modulelist.h>
#include <torch/nn/modules/embedding.h>
#include <torch/nn/modules/linear.h>
#include <torch/nn/modules/normalization.h>
#include <torch/optim/adamw.h>

#include <accelerate/sharding_unit.hpp>

namespace gpt {

struct Config {
  int64_t vocab_size = 256;  // bytes
  int64_t block_size = 128;  // context length
  int64_t n_layer = 4;
  int64_t n_head = 4;
  int64_t n_embd = 128;
  /// Rows of the position table (transformers' n_positions); 0: block_size. A pretrained model may have more
  /// positions than the context it is fine-tuned with.
  int64_t n_positions = 0;
  double layer_norm_epsilon = 1e-5;
  /// Recompute each block's activations in backward instead of keeping them (accelerate::checkpoint; HF's
  /// gradient_checkpointing_enable()). Not saved in config.json: it changes memory, not the model.
  bool gradient_checkpointing = false;
  /// Build each block through accelerate::init_empty_weights (no weights until ZeRO stage 3 loads each process's
  /// shard of them), so that no process holds the whole model at once.
  bool empty_blocks = false;
};

struct CausalSelfAttentionImpl : torch::nn::Module {
  explicit CausalSelfAttentionImpl(const Config& c);
  torch::Tensor forward(const torch::Tensor& x);  // (B, T, C) -> (B, T, C)
  int64_t n_head;
  torch::nn::Linear c_attn, c_proj;
};
TORCH_MODULE(CausalSelfAttention);

struct MlpImpl : torch::nn::Module {
  explicit MlpImpl(const Config& c);
  torch::Tensor forward(const torch::Tensor& x);
  torch::nn::Linear c_fc, c_proj;
};
TORCH_MODULE(Mlp);

/// A ZeRO-3 unit (accelerate::ShardingUnit): at --zero_stage 3 its parameters are gathered only while it runs.
struct BlockImpl : torch::nn::Module, accelerate::ShardingUnit {
  explicit BlockImpl(const Config& c);
  torch::Tensor forward(torch::Tensor x);
  torch::nn::LayerNorm ln_1, ln_2;
  CausalSelfAttention attn;
  Mlp mlp;
};
TORCH_MODULE(Block);

struct GptImpl : torch::nn::Module {
  explicit GptImpl(const Config& c);
  /// idx: (B, T) int64 token ids, T <= block_size -> logits (B, T, vocab_size).
  torch::Tensor forward(const torch::Tensor& idx);
  /// Mean cross entropy of the next-token prediction: logits of `idx` against `labels` (B, T); -100 is ignored.
  torch::Tensor loss(const torch::Tensor& idx, const torch::Tensor& labels);
  /// Per-sequence mean loss (B): what gather_for_metrics averages over the validation set.
  torch::Tensor sequence_loss(const torch::Tensor& idx, const torch::Tensor& labels);
  /// `n` tokens sampled after `prompt` (1-D int64) at `temperature`, with `generator`.
  torch::Tensor generate(torch::Tensor prompt, int64_t n, double temperature, at::Generator generator);
  /// Parameters in GPT-2's two AdamW groups (nanoGPT's configure_optimizers, HF's no_decay rule): matrices with
  /// `weight_decay`, biases and LayerNorm weights without; both at `lr`, betas (0.9, 0.95).
  std::vector<torch::optim::OptimizerParamGroup> param_groups(double lr, double weight_decay);

  Config config;
  torch::nn::Embedding wte, wpe;
  torch::nn::ModuleList h;
  torch::nn::LayerNorm ln_f;
};
TORCH_MODULE(Gpt);

/// Writes `model` as a Hugging Face GPT2LMHeadModel folder: config.json and model.safetensors with HF's key names
/// ("transformer.h.0.attn.c_attn.weight", ...) and Conv1D layouts (in, out), fp32. Python loads it with
/// `GPT2LMHeadModel.from_pretrained(folder)`.
void save_hf_gpt2(GptImpl& model, const std::string& folder);

/// A transformers GPT-2 folder's architecture (its config.json, as GPT2LMHeadModel.save_pretrained writes it;
/// transformers' defaults for absent fields), with notes on what this model leaves out (dropout). ConfigError
/// naming the field for what it cannot represent: another model_type, an activation other than GPT-2's tanh GELU,
/// untied output embeddings, n_inner other than 4 n_embd, cross-attention, unscaled or layer-scaled attention.
struct HfGpt2Config {
  Config config;  // block_size = n_positions
  std::vector<std::string> notes;
};
HfGpt2Config read_hf_gpt2_config(const std::string& folder);

/// Loads a transformers GPT-2 folder's weights (model.safetensors or a sharded index, any floating-point dtype,
/// cast to fp32) into `model` built from read_hf_gpt2_config: the "transformer." prefix dropped (files without it,
/// as the Hub's gpt2, load too), Conv1D weights transposed, the tied lm_head.weight and old files' attention-mask
/// buffers (attn.bias, attn.masked_bias) skipped. CheckpointError naming every missing, unexpected or misshapen
/// tensor; nothing is loaded then.
void load_hf_gpt2(GptImpl& model, const std::string& folder);

}  // namespace gpt
