// Reads the launch-relevant keys of an HF Accelerate config file (YAML, or JSON, which is YAML too).
// Flags given on the command line win, as in HF; keys HF knows but a C++ launch has no use for are accepted
// and ignored; unknown keys are an error, as in HF.
#include "launcher/launch_plan.hpp"

#include <accelerate/error.hpp>

#include <filesystem>
#include <set>

#include <yaml-cpp/yaml.h>

namespace accelerate::launcher {
namespace {

const std::set<std::string>& known_keys() {
  static const std::set<std::string> keys = {
      "compute_environment", "distributed_type", "mixed_precision", "use_cpu", "debug", "num_processes",
      "machine_rank", "num_machines", "gpu_ids", "main_process_ip", "main_process_port", "rdzv_backend",
      "same_network", "main_training_function", "enable_cpu_affinity", "downcast_bf16", "fp8_config",
      "deepspeed_config", "fsdp_config", "parallelism_config", "megatron_lm_config", "mpirun_config",
      "dynamo_config", "tpu_name", "tpu_zone", "tpu_use_cluster", "tpu_use_sudo", "command_file", "commands",
      "tpu_vm", "tpu_env", "ipex_config", "mpirun_hostfile", "dynamo_backend", "fp16", "use_mps_device"};
  return keys;
}

template <class T>
T as(const YAML::Node& node, const std::string& key, const std::string& path, const char* type) {
  try {
    return node.as<T>();
  } catch (const YAML::Exception&) {
    throw ConfigError(detail::concat("Config file ", path, ": key '", key, "' must be ", type, ", got '",
                                     YAML::Dump(node), "'."));
  }
}

}  // namespace

void merge_config_file(LaunchOptions& o, const std::string& path) {
  ACCELERATE_CHECK(std::filesystem::exists(path), ConfigError, "Config file ", path,
                   " does not exist. Create one with `accelerate-cpp config` or fix --config_file.");
  YAML::Node root;
  try {
    root = YAML::LoadFile(path);
  } catch (const YAML::Exception& e) {
    throw ConfigError(detail::concat("Config file ", path, " is not valid YAML (line ", e.mark.line + 1, ", column ",
                                     e.mark.column + 1, "): ", e.msg, "."));
  }
  if (root.IsNull()) return;
  ACCELERATE_CHECK(root.IsMap(), ConfigError, "Config file ", path, " must hold a mapping of keys to values.");
  std::string unknown;
  for (const auto& item : root) {
    const auto key = item.first.as<std::string>();
    if (!known_keys().count(key)) unknown += (unknown.empty() ? "" : ", ") + key;
  }
  ACCELERATE_CHECK(unknown.empty(), ConfigError, "Config file ", path, " has unknown keys (", unknown,
                   "). Remove them, or regenerate the file with `accelerate-cpp config`.");

  auto get = [&](const char* key) { return root[key]; };
  if (auto n = get("num_processes"); n && !o.num_processes) {
    const int v = as<int>(n, "num_processes", path, "an integer");
    if (v >= 0) o.num_processes = v;  // HF writes -1 for "not set"
  }
  if (auto n = get("num_machines"); n && !o.num_machines) o.num_machines = as<int>(n, "num_machines", path, "an integer");
  if (auto n = get("machine_rank"); n && !o.machine_rank) o.machine_rank = as<int>(n, "machine_rank", path, "an integer");
  if (auto n = get("main_process_ip"); n && !n.IsNull() && !o.main_process_ip) {
    o.main_process_ip = as<std::string>(n, "main_process_ip", path, "a host name or address");
  }
  if (auto n = get("main_process_port"); n && !n.IsNull() && !o.main_process_port) {
    o.main_process_port = as<int>(n, "main_process_port", path, "an integer");
  }
  if (auto n = get("mixed_precision"); n && !o.mixed_precision) {
    o.mixed_precision = as<std::string>(n, "mixed_precision", path, "one of no, fp16, bf16, fp8");
  }
  if (auto n = get("use_cpu"); n && as<bool>(n, "use_cpu", path, "true or false")) o.cpu = true;
  if (auto n = get("debug"); n && as<bool>(n, "debug", path, "true or false")) o.debug = true;
}

}  // namespace accelerate::launcher
