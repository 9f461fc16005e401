// The GPT example's model in transformers' GPT-2 format: written as GPT2LMHeadModel.save_pretrained writes it, and
// read back from such a folder (a model trained in Python, or the Hub's gpt2) to fine-tune.
#include <accelerate/error.hpp>
#include <accelerate/model_io.hpp>
#include <accelerate/safetensors.hpp>

#include <torch/torch.h>

#include <filesystem>
#include <fstream>

#include <nlohmann/json.hpp>

#include "gpt.hpp"

namespace gpt {
namespace {

/// GPT-2's Conv1D layers store their weight as (in, out); a torch::nn::Linear holds (out, in).
bool is_conv1d_weight(const std::string& name) {
  return name.ends_with(".weight") &&
         (name.find(".attn.") != std::string::npos || name.find(".mlp.") != std::string::npos);
}

using accelerate::detail::concat;

/// The integer field `key` (> 0), or transformers' default when absent.
int64_t positive(const nlohmann::json& c, const std::string& file, const char* key, int64_t fallback) {
  if (!c.contains(key)) return fallback;
  ACCELERATE_CHECK(c[key].is_number_integer() && c[key].get<int64_t>() > 0, ConfigError, file, ": ", key,
                   " must be a whole number > 0, got ", c[key].dump(), ".");
  return c[key].get<int64_t>();
}

/// Refuses a value of `key` this model cannot represent (the field absent: transformers' default, `fine`).
void require(const nlohmann::json& c, const std::string& file, const char* key, const nlohmann::json& fine,
             const char* why) {
  if (!c.contains(key) || c[key] == fine) return;
  throw accelerate::ConfigError(concat(file, ": ", key, " is ", c[key].dump(), ", but this example's GPT-2 ", why,
                                       " (it supports ", fine.dump(), ")."));
}

nlohmann::json parse_config(const std::string& folder) {
  const auto file = folder + "/config.json";
  ACCELERATE_CHECK(std::filesystem::is_directory(folder), ConfigError, "--init_from ", folder,
                   " is not a folder (a transformers GPT-2 folder: config.json and model.safetensors).");
  // A run's --output_dir holds the model one level down.
  const bool run_folder = std::filesystem::exists(folder + "/model/config.json");
  ACCELERATE_CHECK(std::filesystem::exists(file), ConfigError, "--init_from ", folder,
                   ": there is no config.json (a transformers GPT-2 folder holds config.json and model.safetensors, "
                   "as save_pretrained writes them)",
                   run_folder ? concat("; this looks like a run's --output_dir: did you mean ", folder, "/model?")
                              : std::string("."));
  try {
    return nlohmann::json::parse(std::ifstream(file));
  } catch (const nlohmann::json::exception& e) {
    throw accelerate::ConfigError(concat(file, " is not valid JSON: ", e.what()));
  }
}

void check_supported(const nlohmann::json& c, const std::string& file, int64_t n_embd) {
  require(c, file, "model_type", "gpt2", "is a GPT-2");
  const auto activation = c.value("activation_function", std::string("gelu_new"));
  ACCELERATE_CHECK(activation == "gelu_new" || activation == "gelu_pytorch_tanh", ConfigError, file,
                   ": activation_function is \"", activation,
                   "\", but this example's GPT-2 uses the tanh GELU (\"gelu_new\" or \"gelu_pytorch_tanh\").");
  if (c.contains("n_inner") && !c["n_inner"].is_null()) {
    require(c, file, "n_inner", 4 * n_embd, "has an MLP of 4 n_embd");
  }
  require(c, file, "tie_word_embeddings", true, "ties its output projection to wte");
  require(c, file, "add_cross_attention", false, "has no cross-attention");
  require(c, file, "scale_attn_weights", true, "scales attention by 1/sqrt(head size)");
  require(c, file, "scale_attn_by_inverse_layer_idx", false, "does not scale attention by layer");
}

}  // namespace

HfGpt2Config read_hf_gpt2_config(const std::string& folder) {
  const auto c = parse_config(folder);
  const auto file = folder + "/config.json";
  HfGpt2Config out;
  auto& m = out.config;
  m.vocab_size = positive(c, file, "vocab_size", 50257);
  m.n_positions = positive(c, file, "n_positions", 1024);
  m.block_size = m.n_positions;
  m.n_layer = positive(c, file, "n_layer", 12);
  m.n_head = positive(c, file, "n_head", 12);
  m.n_embd = positive(c, file, "n_embd", 768);
  ACCELERATE_CHECK(m.n_embd % m.n_head == 0, ConfigError, file, ": n_embd (", m.n_embd,
                   ") is not a multiple of n_head (", m.n_head, ").");
  if (c.contains("layer_norm_epsilon")) {
    ACCELERATE_CHECK(c["layer_norm_epsilon"].is_number() && c["layer_norm_epsilon"].get<double>() > 0, ConfigError,
                     file, ": layer_norm_epsilon must be a number > 0, got ", c["layer_norm_epsilon"].dump(), ".");
    m.layer_norm_epsilon = c["layer_norm_epsilon"].get<double>();
  }
  check_supported(c, file, m.n_embd);
  for (const char* key : {"resid_pdrop", "embd_pdrop", "attn_pdrop"}) {
    if (c.contains(key) && c[key].is_number() && c[key].get<double>() > 0) {
      out.notes.push_back(
          concat(key, " ", c[key].get<double>(), " is not applied: this example trains without dropout"));
    }
  }
  return out;
}

void load_hf_gpt2(GptImpl& model, const std::string& folder) {
  accelerate::LoadOptions options;
  options.dtype = torch::kFloat;  // the Hub's fp16 / bf16 files into this fp32 model
  options.rename_fn = [](const std::string& key) -> std::optional<std::string> {
    // The output projection is wte itself; old files also hold attention masks, which are not weights.
    if (key == "lm_head.weight" || key.ends_with(".attn.bias") || key.ends_with(".attn.masked_bias")) {
      return std::nullopt;
    }
    return key.starts_with("transformer.") ? key.substr(12) : key;
  };
  options.transform = [](const std::string& name, const at::Tensor& t) { return is_conv1d_weight(name) ? t.t() : t; };
  accelerate::load_checkpoint_in_model(model, folder, options);
}

void save_hf_gpt2(GptImpl& model, const std::string& folder) {
  std::filesystem::create_directories(folder);
  accelerate::safetensors::TensorMap tensors;
  for (const auto& p : model.named_parameters()) {
    auto t = p.value().detach().to(torch::kCPU, torch::kFloat);
    const auto& name = p.key();
    tensors["transformer." + name] = is_conv1d_weight(name) ? t.t().contiguous() : t.contiguous();
  }
  accelerate::safetensors::save_file(tensors, folder + "/model.safetensors", {{"format", "pt"}});
  const auto& c = model.config;
  const nlohmann::json config = {{"architectures", {"GPT2LMHeadModel"}},
                                 {"model_type", "gpt2"},
                                 {"vocab_size", c.vocab_size},
                                 {"n_positions", c.n_positions > 0 ? c.n_positions : c.block_size},
                                 {"n_embd", c.n_embd},
                                 {"n_layer", c.n_layer},
                                 {"n_head", c.n_head},
                                 {"activation_function", "gelu_new"},
                                 {"resid_pdrop", 0.0},
                                 {"embd_pdrop", 0.0},
                                 {"attn_pdrop", 0.0},
                                 {"layer_norm_epsilon", c.layer_norm_epsilon},
                                 {"initializer_range", 0.02},
                                 {"tie_word_embeddings", true},
                                 // Bytes have no special tokens; 0 (NUL) never occurs in the text. Without these,
                                 // transformers assumes GPT-2's 50256, outside this vocabulary.
                                 {"bos_token_id", 0},
                                 {"eos_token_id", 0}};
  std::ofstream(folder + "/config.json") << config.dump(2) << "\n";
}

}  // namespace gpt
