// Flag helpers shared by the subcommands: HF accepts every flag with '_' or '-'.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include <accelerate/error.hpp>
#include <accelerate/mixed_precision.hpp>

#include <CLI/CLI.hpp>

namespace accelerate::cli {

/// "--num_processes,--num-processes" for "num_processes".
inline std::string names(const std::string& flag) {
  std::string dashed = flag;
  for (auto& c : dashed) c = c == '_' ? '-' : c;
  return dashed == flag ? "--" + flag : "--" + flag + ",--" + dashed;
}

/// An option whose absence is visible (so flags can win over a config file only when given).
template <class T>
void optional_option(CLI::App* cmd, const std::string& flag, std::optional<T>& target, const std::string& help) {
  cmd->add_option_function<T>(
      names(flag), [&target](const T& v) { target = v; }, help);
}

/// --mixed_precision, parsed where it is given (no, fp16 or bf16, any case): from here on the value travels typed, so
/// nothing between the flag and the worker's environment parses it again. A bad value is a usage error (rc 2).
inline void optional_option(CLI::App* cmd, const std::string& flag, std::optional<MixedPrecision>& target,
                            const std::string& help) {
  cmd->add_option_function<std::string>(
      names(flag),
      [&target, flag](const std::string& v) {
        try {
          target = parse_mixed_precision(v, "--" + flag);
        } catch (const ConfigError& e) {
          throw CLI::ValidationError(e.what());  // CLI11's error path: the usage line, rc 2
        }
      },
      help);
}

/// The flag of `cmd` nearest to `word` ("--num_procesess" -> "--num_processes"), or "" when none is close.
std::string nearest_flag(const CLI::App& cmd, const std::string& word);

/// The name among `candidates` nearest to `word` by edit distance, or "" when none is close.
std::string nearest(const std::string& word, const std::vector<std::string>& candidates);

}  // namespace accelerate::cli
