// The table of environment variables, the parsers by kind, and reading the settings once.
#include <accelerate/settings.hpp>

#include <accelerate/error.hpp>

#include <algorithm>
#include <array>
#include <cctype>
#include <charconv>
#include <cstring>

namespace accelerate {
namespace {

using enum VariableKind;
using enum VariableReader;
namespace v = env_var;

constexpr std::array kVariables = {
    EnvironmentVariable{v::kRank, Int, Library, "global rank of this process"},
    EnvironmentVariable{v::kWorldSize, Int, Library, "number of processes in the job"},
    EnvironmentVariable{v::kLocalRank, Int, Library, "rank on this machine (picks the GPU)"},
    EnvironmentVariable{v::kLocalWorldSize, Int, Library, "processes on this machine"},
    EnvironmentVariable{v::kGroupRank, Int, Library, "rank of this machine"},
    EnvironmentVariable{v::kGroupWorldSize, Int, Library, "number of machines"},
    EnvironmentVariable{v::kRoleName, Text, Runtime, "torchrun's worker role"},
    EnvironmentVariable{v::kRoleRank, Int, Runtime, "rank within the role"},
    EnvironmentVariable{v::kRoleWorldSize, Int, Runtime, "processes of the role"},
    EnvironmentVariable{v::kMasterAddr, Text, Library, "host of rank 0's TCPStore"},
    EnvironmentVariable{v::kMasterPort, Int, Library, "port of rank 0's TCPStore"},
    EnvironmentVariable{v::kRestartCount, Int, Runtime, "restarts so far"},
    EnvironmentVariable{v::kMaxRestarts, Int, Runtime, "restarts allowed"},
    EnvironmentVariable{v::kRunId, Text, Runtime, "the job's id"},
    EnvironmentVariable{v::kUseAgentStore, Bool, Library, "torchelastic's agent hosts the TCPStore"},
    EnvironmentVariable{v::kUseCpu, Bool, Library, "train on the CPU even when CUDA is there"},
    EnvironmentVariable{v::kMixedPrecision, Choice, Library, "no, fp16 or bf16"},
    EnvironmentVariable{v::kGradientAccumulationSteps, Int, Library, "micro-batches per optimizer step"},
    EnvironmentVariable{v::kDebugMode, Bool, Library, "ranks compare each collective before running it"},
    EnvironmentVariable{v::kLogLevel, Choice, Library, "get_logger's level: debug, info, warning, error"},
    EnvironmentVariable{v::kLaunched, Bool, Library, "started by accelerate-cpp launch"},
    EnvironmentVariable{v::kTimeout, Seconds, Library, "rendezvous and collective timeout"},
    EnvironmentVariable{v::kStallWarning, Seconds, Library, "hang report after this long in a collective (0: off)"},
    EnvironmentVariable{v::kHangReport, Bool, Library, "report stalled collectives"},
    EnvironmentVariable{v::kForceProcessGroup, Bool, Library, "a process group even for a world of one"},
    EnvironmentVariable{v::kErrorFile, Text, Library, "where a failed collective records whom it waited for"},
    EnvironmentVariable{v::kConfigFile, Text, Cli, "the default config file's path"},
    EnvironmentVariable{v::kZeroStage, Int, Library, "ZeRO stage: 0 replicated, 1 optimizer state, 2 + gradients"},
    EnvironmentVariable{v::kTestBreak, Text, Cli, "accelerate-cpp test breaks this check (proof it can fail)"},
    EnvironmentVariable{v::kGlooSocketIfname, Text, Library, "network interface for Gloo"},
    EnvironmentVariable{v::kShowCppStacktraces, Bool, Library, "keep c10's stack traces in error messages"},
    EnvironmentVariable{v::kOmpNumThreads, Int, Runtime, "intra-op threads per process"},
    EnvironmentVariable{v::kCudaVisibleDevices, Text, Runtime, "GPUs this job may use"},
    EnvironmentVariable{v::kMallocMmapThreshold, Int, Runtime, "glibc: bytes from which malloc maps memory"},
    EnvironmentVariable{v::kMallocTrimThreshold, Int, Runtime, "glibc: free bytes at the heap's top it keeps"},
};

std::optional<std::string> lookup(const EnvironmentVariables& env, const char* key) {
  auto it = env.find(key);
  if (it == env.end() || it->second.empty()) return std::nullopt;
  return it->second;
}

std::string lowercase(std::string text) {
  std::transform(text.begin(), text.end(), text.begin(), [](unsigned char c) { return std::tolower(c); });
  return text;
}

}  // namespace

std::span<const EnvironmentVariable> environment_variables() { return kVariables; }

const EnvironmentVariable* find_environment_variable(std::string_view name) {
  for (const auto& variable : kVariables) {
    if (name == variable.name) return &variable;
  }
  return nullptr;
}

int parse_int_variable(const std::string& name, const std::string& value, const std::string& fix) {
  int out = 0;
  const char* end = value.data() + value.size();
  auto [ptr, ec] = std::from_chars(value.data(), end, out);
  ACCELERATE_CHECK(ec == std::errc() && ptr == end, ConfigError, "Environment variable ", name, "='", value,
                   "' is not an integer. ", fix);
  return out;
}

std::chrono::milliseconds parse_seconds_variable(const std::string& name, const std::string& value, bool positive) {
  double seconds = -1;
  try {
    size_t used = 0;
    seconds = std::stod(value, &used);
    if (used != value.size()) seconds = -1;
  } catch (const std::exception&) {
  }
  // At most a year: beyond, c10d's millisecond counts overflow (1e30 s became a negative timeout).
  ACCELERATE_CHECK((positive ? seconds >= 0.001 : seconds >= 0) && seconds <= 31536000, ConfigError, name, "='", value,
                   "' is not a ", positive ? "positive" : "non-negative",
                   " number of seconds up to 31536000 (a year), e.g. ", name, "=600.");
  return std::chrono::milliseconds(static_cast<int64_t>(seconds * 1000));
}

bool parse_bool(const std::string& value, const std::string& what) {
  const std::string v = lowercase(value);
  if (v == "y" || v == "yes" || v == "t" || v == "true" || v == "on" || v == "1") return true;
  if (v == "n" || v == "no" || v == "f" || v == "false" || v == "off" || v == "0") return false;
  throw ConfigError(
      detail::concat(what, "='", value, "' is not a boolean; use one of true/false, yes/no, on/off, 1/0."));
}

size_t parse_choice_variable(const std::string& name, const std::string& value,
                             std::initializer_list<const char*> choices) {
  const std::string v = lowercase(value);
  std::string listed;
  size_t index = 0;
  for (const char* choice : choices) {
    if (v == choice) return index;
    listed.append(index++ == 0 ? "" : ", ").append(choice);
  }
  throw ConfigError(detail::concat(name, "='", value, "' is not one of ", listed, "."));
}

int check_zero_stage(int stage, const std::string& where) {
  ACCELERATE_CHECK(stage >= 0 && stage <= 3, ConfigError, where, ": ZeRO stage must be 0 (replicated), 1 (optimizer ",
                   "state sharded), 2 (optimizer state and gradients sharded) or 3 (parameters too), got ", stage, ".");
  return stage;
}

LogLevel parse_log_level(const std::string& text) {
  constexpr LogLevel levels[] = {LogLevel::Debug,   LogLevel::Info,  LogLevel::Warning,
                                 LogLevel::Warning, LogLevel::Error, LogLevel::Error};
  return levels[parse_choice_variable(env_var::kLogLevel, text,
                                      {"debug", "info", "warning", "warn", "error", "critical"})];
}

EnvironmentSettings read_environment_settings(const EnvironmentVariables& env) {
  EnvironmentSettings s;
  s.launch = detect_launch_environment(env);
  s.platform = detect_platform(env);
  auto flag = [&](const char* key) -> std::optional<bool> {
    if (auto value = lookup(env, key)) return parse_bool(*value, key);
    return std::nullopt;
  };
  auto seconds = [&](const char* key, bool positive) -> std::optional<std::chrono::milliseconds> {
    if (auto value = lookup(env, key)) return parse_seconds_variable(key, *value, positive);
    return std::nullopt;
  };
  s.use_cpu = flag(env_var::kUseCpu).value_or(false);
  if (auto value = lookup(env, env_var::kMixedPrecision)) {
    s.mixed_precision = parse_mixed_precision(*value, env_var::kMixedPrecision);
  }
  if (auto value = lookup(env, env_var::kGradientAccumulationSteps)) {
    const char* fix = "Use an integer >= 1 (launch: --gradient_accumulation_steps).";
    const int steps = parse_int_variable(env_var::kGradientAccumulationSteps, *value, fix);
    ACCELERATE_CHECK(steps >= 1, ConfigError, env_var::kGradientAccumulationSteps, "='", *value,
                     "' must be an integer >= 1 (launch: --gradient_accumulation_steps).");
    s.gradient_accumulation_steps = steps;
  }
  if (auto value = lookup(env, env_var::kZeroStage)) {
    const auto where = detail::concat(env_var::kZeroStage, "='", *value, "' (launch: --zero_stage)");
    s.zero_stage = check_zero_stage(parse_int_variable(env_var::kZeroStage, *value, "Use 0, 1, 2 or 3."), where);
  }
  s.debug_mode = flag(env_var::kDebugMode);
  if (auto value = lookup(env, env_var::kLogLevel)) s.log_level = parse_log_level(*value);
  s.timeout = seconds(env_var::kTimeout, /*positive=*/true);
  s.stall_warning = seconds(env_var::kStallWarning, /*positive=*/false);
  s.hang_report = flag(env_var::kHangReport).value_or(true);
  s.force_process_group = flag(env_var::kForceProcessGroup).value_or(false);
  // As torch: any value but "0" turns the traces on.
  s.show_cpp_stacktraces = lookup(env, env_var::kShowCppStacktraces).value_or("0") != "0";
  return s;
}

}  // namespace accelerate
