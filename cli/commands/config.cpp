// `accelerate-cpp config`: the questionnaire (numbered choices: works in a terminal and from piped answers),
// the same answers as flags (non-interactive), and `config default` (no questions, as HF's write_basic_config).
#include <accelerate/environment.hpp>
#include <accelerate/error.hpp>
#include <accelerate/mixed_precision.hpp>
#include <accelerate/settings.hpp>

#include <filesystem>
#include <iostream>
#include <memory>
#include <optional>
#include <vector>

#include "commands/commands.hpp"
#include "commands/flags.hpp"
#include "config/hf_config.hpp"

namespace accelerate::cli {
namespace {

/// The answers that can come as flags; any one given makes `config` non-interactive.
struct ConfigFlags {
  std::optional<std::string> config_file;
  std::optional<int> num_processes, num_machines, machine_rank, main_process_port, gradient_accumulation_steps,
      zero_stage;
  std::optional<std::string> main_process_ip;
  std::optional<MixedPrecision> mixed_precision;
  bool cpu = false, debug = false;
  bool any_answer() const {
    return num_processes || num_machines || machine_rank || main_process_port || gradient_accumulation_steps ||
           zero_stage || main_process_ip || mixed_precision || cpu || debug;
  }
};

/// Reads one answer per line; re-asks on a bad one; a closed input is an error naming the question.
class Questionnaire {
 public:
  Questionnaire(std::istream& in, std::ostream& out) : in_(in), out_(out) {}

  int choice(const std::string& question, const std::vector<std::string>& options, int fallback = 0) {
    out_ << question << "\n";
    for (size_t i = 0; i < options.size(); ++i) out_ << "  [" << i << "] " << options[i] << "\n";
    while (true) {
      const auto line = ask(concat_prompt("Enter a number", std::to_string(fallback)), question);
      if (line.empty()) return fallback;
      try {
        size_t used = 0;
        const int v = std::stoi(line, &used);
        if (used == line.size() && v >= 0 && v < static_cast<int>(options.size())) return v;
      } catch (const std::exception&) {
      }
      out_ << "Please enter a number between 0 and " << options.size() - 1 << ".\n";
    }
  }

  int integer(const std::string& question, int fallback, int minimum) {
    while (true) {
      const auto line = ask(concat_prompt(question, std::to_string(fallback)), question);
      if (line.empty()) return fallback;
      try {
        size_t used = 0;
        const int v = std::stoi(line, &used);
        if (used == line.size() && v >= minimum) return v;
      } catch (const std::exception&) {
      }
      out_ << "Please enter an integer >= " << minimum << ".\n";
    }
  }

  bool yes_no(const std::string& question, bool fallback) {
    while (true) {
      const auto line = ask(concat_prompt(question, fallback ? "yes" : "no"), question);
      if (line.empty()) return fallback;
      try {
        return parse_bool(line, "answer");
      } catch (const ConfigError&) {
        out_ << "Please answer yes or no.\n";
      }
    }
  }

  std::string text(const std::string& question, const std::string& fallback) {
    while (true) {
      const auto line = ask(fallback.empty() ? question + ": " : concat_prompt(question, fallback), question);
      if (!line.empty()) return line;
      if (!fallback.empty()) return fallback;
      out_ << "An answer is required.\n";
    }
  }

 private:
  static std::string concat_prompt(const std::string& q, const std::string& fallback) {
    return q + " [" + fallback + "]: ";
  }
  std::string ask(const std::string& prompt, const std::string& question) {
    out_ << prompt << std::flush;
    std::string line;
    ACCELERATE_CHECK(static_cast<bool>(std::getline(in_, line)), ConfigError, "config: the input ended before \"",
                     question,
                     "\" was answered; nothing was written. Answer every question, or pass the answers "
                     "as flags (accelerate-cpp config --help).");
    while (!line.empty() && (line.back() == '\r' || line.back() == ' ')) line.pop_back();
    while (!line.empty() && line.front() == ' ') line.erase(line.begin());
    return line;
  }
  std::istream& in_;
  std::ostream& out_;
};

HfConfig ask_all(Questionnaire& q) {
  HfConfig c;
  const int gpus = visible_gpu_count();
  const int kind =
      q.choice("Which type of machine are you using?", {"No distributed training", "multi-CPU", "multi-GPU"});
  c.distributed_type = kind == 0 ? "NO" : kind == 1 ? "MULTI_CPU" : "MULTI_GPU";
  if (kind != 0) {
    c.num_machines = q.integer("How many different machines will you use (more than 1 for multi-node training)?", 1, 1);
    if (c.num_machines > 1) {
      c.machine_rank = q.integer("What is the rank of this machine?", 0, 0);
      while (c.machine_rank >= c.num_machines) {
        std::cout << "The rank must be below " << c.num_machines << ".\n";
        c.machine_rank = q.integer("What is the rank of this machine?", 0, 0);
      }
      c.main_process_ip = q.text("What is the IP address of the machine that will host the main process?", "");
      c.main_process_port = q.integer("What is the port you will use to communicate with the main process?", 29500, 1);
    }
    const int suggested = kind == 2 ? std::max(1, gpus) * c.num_machines : 2 * c.num_machines;
    c.num_processes = q.integer("How many processes in total will you use (over all machines)?", suggested, 1);
    c.use_cpu = kind == 1;
  } else {
    c.use_cpu = q.yes_no("Do you want to run your training on CPU only (even if a GPU is available)?", gpus == 0);
  }
  c.debug = q.yes_no("Should distributed operations be checked while running for errors (debug mode)?", false);
  c.gradient_accumulation_steps = q.integer("How many gradient accumulation steps?", 1, 1);
  if (c.num_processes > 1) {
    c.zero_stage = q.choice("Shard memory over the processes (ZeRO)?",
                            {"no (stage 0)", "optimizer state (stage 1)", "optimizer state and gradients (stage 2)",
                             "parameters too (stage 3; the model marks its blocks, docs/training.md)"});
  }
  constexpr MixedPrecision kAnswers[] = {MixedPrecision::No, MixedPrecision::Fp16, MixedPrecision::Bf16};
  c.mixed_precision = kAnswers[q.choice("Do you wish to use mixed precision?", {"no", "fp16", "bf16"})];
  return c;
}

HfConfig from_flags(const ConfigFlags& f) {
  HfConfig c;
  c.use_cpu = f.cpu || visible_gpu_count() == 0;
  c.num_processes = f.num_processes.value_or(1);
  c.num_machines = f.num_machines.value_or(1);
  c.machine_rank = f.machine_rank.value_or(0);
  c.main_process_ip = f.main_process_ip;
  c.main_process_port = f.main_process_port;
  c.mixed_precision = f.mixed_precision.value_or(MixedPrecision::No);
  c.gradient_accumulation_steps = f.gradient_accumulation_steps.value_or(1);
  c.zero_stage = check_zero_stage(f.zero_stage.value_or(0), "config --zero_stage");
  c.debug = f.debug;
  c.distributed_type = c.num_processes > 1 || c.num_machines > 1 ? (c.use_cpu ? "MULTI_CPU" : "MULTI_GPU") : "NO";
  ACCELERATE_CHECK(c.num_processes >= 1, ConfigError, "config: --num_processes must be >= 1, got ", c.num_processes,
                   ".");
  ACCELERATE_CHECK(c.num_machines >= 1, ConfigError, "config: --num_machines must be >= 1, got ", c.num_machines, ".");
  ACCELERATE_CHECK(c.machine_rank >= 0 && c.machine_rank < c.num_machines, ConfigError, "config: --machine_rank ",
                   c.machine_rank, " must be in 0..", c.num_machines - 1, ".");
  ACCELERATE_CHECK(c.num_machines == 1 || c.main_process_ip, ConfigError,
                   "config: several machines need --main_process_ip (the address of machine 0).");
  ACCELERATE_CHECK(c.gradient_accumulation_steps >= 1, ConfigError,
                   "config: --gradient_accumulation_steps must be >= 1.");
  return c;
}

void save(const HfConfig& c, const std::string& path) {
  write_config(c, path);
  std::cout << "accelerate-cpp configuration saved at " << path << std::endl;
}

}  // namespace

Action register_config(CLI::App& app) {
  auto flags = std::make_shared<ConfigFlags>();
  auto* cmd = app.add_subcommand("config", "Write the launch configuration (questions, or the answers as flags).");
  auto& f = *flags;
  optional_option(cmd, "config_file", f.config_file, "Where to write it (default: " + default_config_path() + ")");
  optional_option(cmd, "num_processes", f.num_processes, "Total number of processes over all machines (default 1)");
  optional_option(cmd, "num_machines", f.num_machines, "Number of machines (default 1)");
  optional_option(cmd, "machine_rank", f.machine_rank, "Rank of this machine (default 0)");
  optional_option(cmd, "main_process_ip", f.main_process_ip,
                  "Address of machine 0 (default: unset; required with several machines)");
  optional_option(cmd, "main_process_port", f.main_process_port,
                  "Rendezvous port on machine 0 (default: unset: a free port, 29500 multi-node)");
  optional_option(cmd, "mixed_precision", f.mixed_precision, "no, fp16 or bf16 (default no)");
  optional_option(cmd, "gradient_accumulation_steps", f.gradient_accumulation_steps, "(default 1)");
  optional_option(cmd, "zero_stage", f.zero_stage, "0, 1, 2 or 3: what ZeRO shards over the processes (default 0)");
  cmd->add_flag(names("cpu") + ",--use_cpu,--use-cpu", f.cpu, "CPU only, even when a GPU is there (default false)");
  cmd->add_flag(names("debug"), f.debug, "Check collectives across ranks while running (default false)");

  auto default_flags = std::make_shared<ConfigFlags>();
  auto* def = cmd->add_subcommand("default", "Write a default configuration without questions (refuses to overwrite).");
  optional_option(def, "config_file", default_flags->config_file,
                  "Where to write it (default: " + default_config_path() + ")");
  optional_option(def, "mixed_precision", default_flags->mixed_precision, "no, fp16 or bf16 (default no)");

  return [flags, default_flags, def]() -> int {
    if (def->parsed()) {
      const auto path = default_flags->config_file.value_or(default_config_path());
      ACCELERATE_CHECK(!std::filesystem::exists(path), ConfigError, "config default: ", path,
                       " already exists; nothing was written. Delete it, or choose another --config_file.");
      // As HF: one process per GPU when there are several, else a single process (on the CPU without a GPU).
      ConfigFlags d = *default_flags;
      const int gpus = visible_gpu_count();
      if (gpus > 1) d.num_processes = gpus;
      save(from_flags(d), path);
      return 0;
    }
    const auto path = flags->config_file.value_or(default_config_path());
    if (flags->any_answer()) {
      save(from_flags(*flags), path);
      return 0;
    }
    Questionnaire q(std::cin, std::cout);
    const auto config = ask_all(q);
    save(config, path);
    return 0;
  };
}

}  // namespace accelerate::cli
