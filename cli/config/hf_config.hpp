// The HF Accelerate config file (`default_config.yaml`): read with line-numbered errors and warnings for what a
// C++ launch does not support, written with HF's keys so Python's `accelerate` loads it too.
#pragma once

#include <accelerate/mixed_precision.hpp>

#include <optional>
#include <ostream>
#include <string>

namespace accelerate::cli {

struct HfConfig {
  std::string compute_environment = "LOCAL_MACHINE";
  std::string distributed_type = "NO";  ///< NO, MULTI_CPU, MULTI_GPU
  MixedPrecision mixed_precision = MixedPrecision::No;
  bool use_cpu = false;
  bool debug = false;
  int num_processes = 1;  ///< total over all machines
  int num_machines = 1;
  int machine_rank = 0;
  std::optional<std::string> main_process_ip;
  std::optional<int> main_process_port;
  /// HF's gpu_ids: "all", or indexes "0,1" (a YAML list [0, 1] is read as "0,1"). Unset: all.
  std::optional<std::string> gpu_ids;
  /// Not an HF key (HF keeps it inside deepspeed_config); written only when it is not 1.
  int gradient_accumulation_steps = 1;
  /// ZeRO stage 0..3: read from deepspeed_config.zero_stage or fsdp_config.fsdp_sharding_strategy (SHARD_GRAD_OP
  /// is 2, FULL_SHARD 3; HYBRID_SHARD runs as 3 over all processes, with a warning); written as
  /// deepspeed_config.zero_stage when it is not 0 (Python's accelerate loads that and ignores it outside DeepSpeed).
  int zero_stage = 0;
};

/// $ACCELERATE_CPP_CONFIG_FILE, else ${XDG_CONFIG_HOME:-$HOME/.config}/accelerate-cpp/default_config.yaml.
std::string default_config_path();

/// default_config_path() when a file is there, else nullopt: also when it cannot be looked at (a HOME this user
/// may not enter), which a note on `notes` says, as HF's isfile check goes on without it. No command needs the file.
std::optional<std::string> existing_default_config(std::ostream& notes);

/// Reads and validates `path`. Unknown keys, wrong types and unsupported values are ConfigErrors naming the line;
/// HF keys that accelerate-cpp ignores (deepspeed_config, fsdp_config, ...) are written to `warnings`, by name.
HfConfig read_config(const std::string& path, std::ostream& warnings);

/// Writes `config` as YAML with HF's keys (sorted, as `accelerate config` writes them), creating the folder.
void write_config(const HfConfig& config, const std::string& path);

/// The config as "key: value" lines, for `env`.
std::string describe(const HfConfig& config);

/// GPUs this process may use, seen without CUDA: the NVIDIA driver's /proc entries, narrowed by
/// CUDA_VISIBLE_DEVICES when it is set (as CUDA counts them); 0 when none.
int visible_gpu_count();
/// The same from the driver's count and CUDA_VISIBLE_DEVICES (nullptr: unset).
int visible_gpu_count(int driver_gpus, const char* cuda_visible_devices);

}  // namespace accelerate::cli
