// The environment variables accelerate-cpp reads and writes, in one table that the library and the launcher
// share; one parser per kind of value (int, seconds, bool, choice); and the step that reads them once into typed
// settings. Torch-free: part of the core that the CLI links too.
//
// Precedence, as in HF Accelerate: an explicit option wins over the environment, the environment over the default.
// Unset (or empty) variables therefore stay unset here, and the owner of the option (ProcessState, Accelerator,
// Logger) applies its default.
#pragma once

#include <chrono>
#include <initializer_list>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include <accelerate/environment.hpp>
#include <accelerate/mixed_precision.hpp>
#include <accelerate/platform.hpp>

namespace accelerate {

/// The variable names. The launcher writes them with these constants and the library reads them with the same,
/// so a typo on one side cannot silently disconnect the two.
namespace env_var {
// torchrun's contract (accelerate-cpp launch writes all of it)
inline constexpr const char* kRank = "RANK";
inline constexpr const char* kWorldSize = "WORLD_SIZE";
inline constexpr const char* kLocalRank = "LOCAL_RANK";
inline constexpr const char* kLocalWorldSize = "LOCAL_WORLD_SIZE";
inline constexpr const char* kGroupRank = "GROUP_RANK";
inline constexpr const char* kGroupWorldSize = "GROUP_WORLD_SIZE";
inline constexpr const char* kRoleName = "ROLE_NAME";
inline constexpr const char* kRoleRank = "ROLE_RANK";
inline constexpr const char* kRoleWorldSize = "ROLE_WORLD_SIZE";
inline constexpr const char* kMasterAddr = "MASTER_ADDR";
inline constexpr const char* kMasterPort = "MASTER_PORT";
inline constexpr const char* kRestartCount = "TORCHELASTIC_RESTART_COUNT";
inline constexpr const char* kMaxRestarts = "TORCHELASTIC_MAX_RESTARTS";
inline constexpr const char* kRunId = "TORCHELASTIC_RUN_ID";
inline constexpr const char* kUseAgentStore = "TORCHELASTIC_USE_AGENT_STORE";
// HF Accelerate's names, as its launcher sets them
inline constexpr const char* kUseCpu = "ACCELERATE_USE_CPU";
inline constexpr const char* kMixedPrecision = "ACCELERATE_MIXED_PRECISION";
inline constexpr const char* kGradientAccumulationSteps = "ACCELERATE_GRADIENT_ACCUMULATION_STEPS";
inline constexpr const char* kDebugMode = "ACCELERATE_DEBUG_MODE";
inline constexpr const char* kLogLevel = "ACCELERATE_LOG_LEVEL";
// accelerate-cpp's own
inline constexpr const char* kLaunched = "ACCELERATE_CPP_LAUNCHED";
inline constexpr const char* kTimeout = "ACCELERATE_CPP_TIMEOUT";
inline constexpr const char* kStallWarning = "ACCELERATE_CPP_STALL_WARNING";
inline constexpr const char* kHangReport = "ACCELERATE_CPP_HANG_REPORT";
inline constexpr const char* kForceProcessGroup = "ACCELERATE_CPP_FORCE_PROCESS_GROUP";
inline constexpr const char* kErrorFile = "ACCELERATE_CPP_ERROR_FILE";
inline constexpr const char* kConfigFile = "ACCELERATE_CPP_CONFIG_FILE";
inline constexpr const char* kTestBreak = "ACCELERATE_CPP_TEST_BREAK";
inline constexpr const char* kZeroStage = "ACCELERATE_CPP_ZERO_STAGE";
// read by LibTorch, Gloo, OpenMP or CUDA
inline constexpr const char* kGlooSocketIfname = "GLOO_SOCKET_IFNAME";
inline constexpr const char* kShowCppStacktraces = "TORCH_SHOW_CPP_STACKTRACES";
inline constexpr const char* kOmpNumThreads = "OMP_NUM_THREADS";
inline constexpr const char* kCudaVisibleDevices = "CUDA_VISIBLE_DEVICES";
inline constexpr const char* kMallocMmapThreshold = "MALLOC_MMAP_THRESHOLD_";
inline constexpr const char* kMallocTrimThreshold = "MALLOC_TRIM_THRESHOLD_";
}  // namespace env_var

/// What a variable holds; each kind has one parser below (Text needs none).
enum class VariableKind { Int, Seconds, Bool, Choice, Text };

/// Who acts on a variable: this library (ProcessState, Accelerator, Logger), the CLI, or the runtime underneath
/// (LibTorch, OpenMP, CUDA, programs written for torchrun); the launcher sets the last kind for them.
enum class VariableReader { Library, Cli, Runtime };

struct EnvironmentVariable {
  const char* name;
  VariableKind kind;
  VariableReader reader;
  const char* meaning;
};

/// Every variable of the launch contract and of the settings (the other launchers' variables, OMPI_COMM_WORLD_* and
/// SLURM_*, are read by detect_launch_environment and not listed).
std::span<const EnvironmentVariable> environment_variables();

/// The table's entry for `name`; null when accelerate-cpp does not know it.
const EnvironmentVariable* find_environment_variable(std::string_view name);

/// An integer. ConfigError "Environment variable NAME='v' is not an integer. <fix>" otherwise.
int parse_int_variable(const std::string& name, const std::string& value, const std::string& fix = "");

/// A number of seconds (fractions allowed), at most a year (beyond, c10d's millisecond counts overflow); above 0
/// when `positive` (a timeout), else at least 0 (0 meaning "off"). ConfigError naming the variable otherwise.
std::chrono::milliseconds parse_seconds_variable(const std::string& name, const std::string& value, bool positive);

/// Strict boolean parsing as HF's str_to_bool: y/yes/t/true/on/1 and n/no/f/false/off/0 (any case).
/// Throws ConfigError naming `what` otherwise.
bool parse_bool(const std::string& value, const std::string& what);

/// The index in `choices` of `value` (any case). ConfigError "NAME='v' is not one of a, b, c." otherwise.
size_t parse_choice_variable(const std::string& name, const std::string& value,
                             std::initializer_list<const char*> choices);

enum class LogLevel { Debug = 10, Info = 20, Warning = 30, Error = 40 };

/// A ZeRO stage: 0 (replicated, DDP), 1 (optimizer state sharded) or 2 (gradients too). ConfigError naming `where`
/// otherwise; stage 3 (parameters sharded, FSDP's FULL_SHARD) is named as not available yet.
int check_zero_stage(int stage, const std::string& where);

/// "debug", "info", "warning"/"warn", "error"/"critical" (any case); ConfigError otherwise.
LogLevel parse_log_level(const std::string& text);

/// The library's settings as this process's environment gives them, each parsed and validated once, at
/// ProcessState's construction. Unset variables stay unset (std::nullopt) so options can take precedence.
struct EnvironmentSettings {
  LaunchEnvironment launch;                                ///< ranks and rendezvous (detect_launch_environment)
  PlatformInfo platform;                                   ///< Kaggle, Colab, ... and its output folder
  bool use_cpu = false;                                    ///< ACCELERATE_USE_CPU
  std::optional<MixedPrecision> mixed_precision;           ///< ACCELERATE_MIXED_PRECISION
  std::optional<int> gradient_accumulation_steps;          ///< ACCELERATE_GRADIENT_ACCUMULATION_STEPS, >= 1
  std::optional<int> zero_stage;                           ///< ACCELERATE_CPP_ZERO_STAGE, 0..2
  std::optional<bool> debug_mode;                          ///< ACCELERATE_DEBUG_MODE
  std::optional<LogLevel> log_level;                       ///< ACCELERATE_LOG_LEVEL
  std::optional<std::chrono::milliseconds> timeout;        ///< ACCELERATE_CPP_TIMEOUT (seconds, > 0)
  std::optional<std::chrono::milliseconds> stall_warning;  ///< ACCELERATE_CPP_STALL_WARNING (seconds, 0: off)
  bool hang_report = true;                                 ///< ACCELERATE_CPP_HANG_REPORT
  bool force_process_group = false;                        ///< ACCELERATE_CPP_FORCE_PROCESS_GROUP
  bool show_cpp_stacktraces = false;                       ///< TORCH_SHOW_CPP_STACKTRACES (set and not "0")
};

/// Reads and validates every setting of `env`. Throws ConfigError naming the variable, the value and the fix.
EnvironmentSettings read_environment_settings(const EnvironmentVariables& env);

}  // namespace accelerate
