#include "gpt.hpp"

#include <accelerate/activation_checkpointing.hpp>
#include <accelerate/error.hpp>
#include <accelerate/model_io.hpp>

#include <torch/torch.h>

#include <cmath>

namespace gpt {

CausalSelfAttentionImpl::CausalSelfAttentionImpl(const Config& c)
    : n_head(c.n_head),
      c_attn(register_module("c_attn", torch::nn::Linear(c.n_embd, 3 * c.n_embd))),
      c_proj(register_module("c_proj", torch::nn::Linear(c.n_embd, c.n_embd))) {
  ACCELERATE_CHECK(c.n_embd % c.n_head == 0, ConfigError, "--n_embd (", c.n_embd, ") must be a multiple of --n_head (",
                   c.n_head, ").");
}

torch::Tensor CausalSelfAttentionImpl::forward(const torch::Tensor& x) {
  const int64_t B = x.size(0), T = x.size(1), C = x.size(2);
  auto qkv = c_attn(x).split(C, 2);
  auto heads = [&](const torch::Tensor& t) { return t.view({B, T, n_head, C / n_head}).transpose(1, 2); };
  auto y = at::scaled_dot_product_attention(heads(qkv[0]), heads(qkv[1]), heads(qkv[2]), {}, 0.0, /*is_causal=*/true);
  return c_proj(y.transpose(1, 2).contiguous().view({B, T, C}));
}

MlpImpl::MlpImpl(const Config& c)
    : c_fc(register_module("c_fc", torch::nn::Linear(c.n_embd, 4 * c.n_embd))),
      c_proj(register_module("c_proj", torch::nn::Linear(4 * c.n_embd, c.n_embd))) {}

torch::Tensor MlpImpl::forward(const torch::Tensor& x) { return c_proj(torch::gelu(c_fc(x), "tanh")); }

BlockImpl::BlockImpl(const Config& c)
    : ln_1(register_module("ln_1",
                           torch::nn::LayerNorm(torch::nn::LayerNormOptions({c.n_embd}).eps(c.layer_norm_epsilon)))),
      ln_2(register_module("ln_2",
                           torch::nn::LayerNorm(torch::nn::LayerNormOptions({c.n_embd}).eps(c.layer_norm_epsilon)))),
      attn(register_module("attn", CausalSelfAttention(c))),
      mlp(register_module("mlp", Mlp(c))) {}

torch::Tensor BlockImpl::forward(torch::Tensor x) {
  x = x + attn(ln_1(x));
  return x + mlp(ln_2(x));
}

GptImpl::GptImpl(const Config& c)
    : config(c),
      wte(register_module("wte", torch::nn::Embedding(c.vocab_size, c.n_embd))),
      wpe(register_module("wpe", torch::nn::Embedding(c.n_positions > 0 ? c.n_positions : c.block_size, c.n_embd))),
      h(register_module("h", torch::nn::ModuleList())),
      ln_f(register_module("ln_f",
                           torch::nn::LayerNorm(torch::nn::LayerNormOptions({c.n_embd}).eps(c.layer_norm_epsilon)))) {
  ACCELERATE_CHECK(c.n_positions == 0 || c.block_size <= c.n_positions, ConfigError, "--block_size (", c.block_size,
                   ") must be at most the model's n_positions (", c.n_positions, ").");
  for (int64_t i = 0; i < c.n_layer; ++i)
    h->push_back(c.empty_blocks ? accelerate::init_empty_weights(Block(c)) : Block(c));
  // GPT-2's initialisation: N(0, 0.02), the residual projections scaled by 1/sqrt(2 n_layer), zero biases.
  torch::NoGradGuard no_grad;
  for (auto& p : named_parameters()) {
    const auto& name = p.key();
    if (c.empty_blocks && name.starts_with("h.")) continue;  // no weights to initialise: they are loaded
    if (name.ends_with(".bias")) {
      p.value().zero_();
    } else if (name.find("ln_") != std::string::npos) {
      p.value().fill_(1);
    } else {
      const bool residual = name.ends_with("c_proj.weight");
      p.value().normal_(0, residual ? 0.02 / std::sqrt(2.0 * static_cast<double>(c.n_layer)) : 0.02);
    }
  }
}

torch::Tensor GptImpl::forward(const torch::Tensor& idx) {
  const int64_t T = idx.size(1);
  ACCELERATE_CHECK(T <= config.block_size, ConfigError, "a sequence of ", T, " tokens is longer than block_size ",
                   config.block_size, ".");
  auto x = wte(idx) + wpe(torch::arange(T, idx.options()));
  for (const auto& module : *h) {
    auto block = module->as<Block>();
    x = accelerate::unit_forward(block, x, {.checkpoint = config.gradient_checkpointing && is_training()});
  }
  return torch::matmul(ln_f(x), wte->weight.t());  // tied output projection
}

torch::Tensor GptImpl::loss(const torch::Tensor& idx, const torch::Tensor& labels) {
  auto logits = forward(idx);
  return torch::nn::functional::cross_entropy(logits.flatten(0, 1), labels.flatten(),
                                              torch::nn::functional::CrossEntropyFuncOptions().ignore_index(-100));
}

torch::Tensor GptImpl::sequence_loss(const torch::Tensor& idx, const torch::Tensor& labels) {
  auto logits = forward(idx);
  auto per_token =
      torch::nn::functional::cross_entropy(logits.flatten(0, 1).to(torch::kFloat), labels.flatten(),
                                           torch::nn::functional::CrossEntropyFuncOptions().reduction(torch::kNone));
  return per_token.view(labels.sizes()).mean(1);
}

torch::Tensor GptImpl::generate(torch::Tensor prompt, int64_t n, double temperature, at::Generator generator) {
  torch::NoGradGuard no_grad;
  auto tokens = prompt.view({1, -1});
  for (int64_t i = 0; i < n; ++i) {
    const int64_t T = tokens.size(1);
    auto context = tokens.narrow(1, std::max<int64_t>(0, T - config.block_size), std::min(T, config.block_size));
    auto logits = forward(context).select(1, context.size(1) - 1).to(torch::kFloat) / temperature;
    auto next = at::multinomial(torch::softmax(logits, -1), 1, false, generator);
    tokens = torch::cat({tokens, next}, 1);
  }
  return tokens.view(-1);
}

std::vector<torch::optim::OptimizerParamGroup> GptImpl::param_groups(double lr, double weight_decay) {
  std::vector<torch::Tensor> decay, no_decay;
  for (auto& p : named_parameters()) (p.value().dim() >= 2 ? decay : no_decay).push_back(p.value());
  std::vector<torch::optim::OptimizerParamGroup> groups;
  groups.emplace_back(decay, std::make_unique<torch::optim::AdamWOptions>(
                                 torch::optim::AdamWOptions(lr).weight_decay(weight_decay).betas({0.9, 0.95})));
  groups.emplace_back(no_decay, std::make_unique<torch::optim::AdamWOptions>(
                                    torch::optim::AdamWOptions(lr).weight_decay(0.0).betas({0.9, 0.95})));
  return groups;
}

}  // namespace gpt
