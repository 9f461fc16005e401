// `accelerate-cpp estimate-memory`: HF's `accelerate estimate-memory` for training, with ZeRO stages.
#include <accelerate/error.hpp>

#include <charconv>
#include <iostream>
#include <limits>
#include <optional>

#include "commands/commands.hpp"
#include "commands/flags.hpp"
#include "estimate/memory_estimate.hpp"

namespace accelerate::cli {
namespace {

struct EstimateOptions {
  std::string model;
  std::optional<std::string> num_parameters;  // parsed here: CLI11 clamps a count past int64 silently
  int num_processes = 1;
  std::vector<std::string> dtypes = {"float32", "bfloat16", "float16"};
};

std::string with_commas(int64_t n) {
  std::string digits = std::to_string(n), out;
  for (size_t i = 0; i < digits.size(); ++i) {
    if (i > 0 && (digits.size() - i) % 3 == 0) out += ',';
    out += digits[i];
  }
  return out;
}

/// --num_parameters as a whole number that int64 holds: beyond it, a clear error instead of a clamped value.
int64_t parse_count(const std::string& text) {
  int64_t n = 0;
  const auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), n);
  ACCELERATE_CHECK(error != std::errc::result_out_of_range, ConfigError, "estimate-memory: --num_parameters ", text,
                   " is larger than this tool counts (", std::numeric_limits<int64_t>::max(), ").");
  ACCELERATE_CHECK(error == std::errc() && end == text.data() + text.size(), ConfigError,
                   "estimate-memory: --num_parameters must be a whole number, got '", text, "'.");
  return n;
}

int run_estimate(const EstimateOptions& o) {
  ACCELERATE_CHECK(o.model.empty() != !o.num_parameters, ConfigError,
                   "estimate-memory: give a model (a .safetensors file, an index or a folder) or --num_parameters, "
                   "one of them.");
  ModelSize size;
  if (o.num_parameters) {
    size.parameters = parse_count(*o.num_parameters);
  } else {
    size = count_parameters(o.model);
  }
  const auto rows = estimate_training_memory(size.parameters, o.dtypes, o.num_processes);
  std::cout << (o.model.empty() ? std::string("model") : o.model) << ": " << with_commas(size.parameters)
            << " parameters";
  if (!size.largest_name.empty()) {
    std::cout << " (largest tensor: " << size.largest_name << ", " << with_commas(size.largest) << ")";
  }
  std::cout << "\nTraining with AdamW on " << o.num_processes
            << " process(es): memory per process, without activations or the framework's own\n\n"
            << "| dtype | ZeRO stage | weights | gradients | AdamW state | total |\n|---|---|---|---|---|---|\n";
  for (const auto& r : rows) {
    std::cout << "| " << r.dtype << " | " << r.zero_stage << " | " << human_bytes(r.weights) << " | "
              << human_bytes(r.gradients) << " | " << human_bytes(r.optimizer) << " | " << human_bytes(r.total())
              << " |\n";
  }
  std::cout << "\nMixed precision (--mixed_precision bf16/fp16) autocasts float32 parameters: use the float32 rows.\n"
               "Stage 3 adds the parameters outside ShardingUnits (whole on every process) and two gathered units.\n";
  return 0;
}

}  // namespace

Action register_estimate(CLI::App& app) {
  auto options = std::make_shared<EstimateOptions>();
  auto* cmd =
      app.add_subcommand("estimate-memory", "memory to train a model with AdamW per process, by dtype and ZeRO stage");
  cmd->add_option("model", options->model, "a .safetensors file, a model.safetensors.index.json, or a folder");
  optional_option(cmd, "num_parameters", options->num_parameters, "a parameter count instead of a model file");
  cmd->add_option(names("num_processes"), options->num_processes, "processes the states are sharded over")
      ->capture_default_str();
  cmd->add_option(names("dtypes"), options->dtypes, "parameter dtypes: float32 bfloat16 float16")
      ->capture_default_str();
  return [options] { return run_estimate(*options); };
}

}  // namespace accelerate::cli
