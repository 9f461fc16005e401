#include "config/hf_config.hpp"
#include "launcher/launch_plan.hpp"

#include <accelerate/error.hpp>
#include <accelerate/settings.hpp>
#include <accelerate/mixed_precision.hpp>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <algorithm>
#include <variant>
#include <vector>

#include <yaml-cpp/yaml.h>

namespace accelerate::cli {
namespace fs = std::filesystem;
using detail::concat;

namespace {

// Every key HF's ClusterConfig (and its legacy names) may hold. Anything else is an error, as in HF.
const std::set<std::string>& hf_keys() {
  static const std::set<std::string> keys = {"compute_environment",
                                             "distributed_type",
                                             "mixed_precision",
                                             "use_cpu",
                                             "debug",
                                             "num_processes",
                                             "machine_rank",
                                             "num_machines",
                                             "gpu_ids",
                                             "main_process_ip",
                                             "main_process_port",
                                             "rdzv_backend",
                                             "same_network",
                                             "main_training_function",
                                             "enable_cpu_affinity",
                                             "downcast_bf16",
                                             "fp8_config",
                                             "deepspeed_config",
                                             "fsdp_config",
                                             "parallelism_config",
                                             "megatron_lm_config",
                                             "mpirun_config",
                                             "dynamo_config",
                                             "tpu_name",
                                             "tpu_zone",
                                             "tpu_use_cluster",
                                             "tpu_use_sudo",
                                             "command_file",
                                             "commands",
                                             "tpu_vm",
                                             "tpu_env",
                                             "ipex_config",
                                             "mpirun_hostfile",
                                             "dynamo_backend",
                                             "fp16",
                                             "use_mps_device",
                                             "gradient_accumulation_steps"};
  return keys;
}

// HF keys that change what a Python launch does but that accelerate-cpp does not implement: a warning names
// each one that is set to something other than "off".
const std::set<std::string>& unsupported_keys() {
  static const std::set<std::string> keys = {
      "fp8_config", "parallelism_config", "megatron_lm_config", "dynamo_config", "ipex_config",
      "tpu_name",   "tpu_zone",           "command_file",       "commands",      "tpu_vm"};
  return keys;
}

bool is_off(const YAML::Node& n) {
  if (!n || n.IsNull()) return true;
  if (n.IsMap() || n.IsSequence()) return n.size() == 0;
  const auto s = n.as<std::string>();
  return s.empty() || s == "no" || s == "NO" || s == "false" || s == "False";
}

std::string where(const std::string& path, const YAML::Node& n) {
  return concat("config file ", path, ", line ", n.Mark().line + 1);
}

/// Input quoted in a message, cut so that a huge value cannot flood the terminal.
std::string bounded(std::string text) {
  constexpr size_t kMax = 120;
  if (text.size() > kMax) text = text.substr(0, kMax) + "... (" + std::to_string(text.size()) + " characters)";
  for (auto& c : text) {
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) c = ' ';  // no raw control bytes to the terminal
  }
  return text;
}

template <class T>
T as(const YAML::Node& n, const std::string& key, const std::string& path, const char* type) {
  try {
    return n.as<T>();
  } catch (const YAML::Exception&) {
    throw ConfigError(concat(where(path, n), ": '", key, "' must be ", type, ", got '", bounded(YAML::Dump(n)), "'."));
  }
}

/// The top-level mapping with Python's rule for a key given twice: the last value wins (yaml-cpp's look-up would
/// find the first). Each repeated key is named in one warning, with its count (a generated file may repeat one
/// many times).
class Keys {
 public:
  Keys(const YAML::Node& root, const std::string& path, std::ostream& warnings) {
    std::map<std::string, std::pair<int, int>> repeats;  // key -> (times given, first line)
    for (const auto& item : root) {
      ACCELERATE_CHECK(item.first.IsScalar(), ConfigError, where(path, item.first), ": keys must be plain names, got '",
                       bounded(YAML::Dump(item.first)), "'.");
      const auto key = item.first.Scalar();
      if (auto it = values_.find(key); it != values_.end()) {
        ++repeats.try_emplace(key, 1, it->second.first.Mark().line + 1).first->second.first;
        values_.erase(it);
      }
      values_.emplace(key, std::make_pair(item.first, item.second));
    }
    for (const auto& [key, seen] : repeats) {
      warnings << "accelerate-cpp: warning: " << where(path, values_.at(key).first) << ": '" << bounded(key)
               << "' is given " << seen.first << " times (first on line " << seen.second
               << "); the last value is used, as Python's YAML loader does.\n";
    }
  }
  /// The value of `key`, or an undefined node (false in a condition) when it is absent.
  YAML::Node operator[](const std::string& key) const {
    auto it = values_.find(key);
    return it == values_.end() ? YAML::Node(YAML::NodeType::Undefined) : it->second.second;
  }
  const std::map<std::string, std::pair<YAML::Node, YAML::Node>>& all() const { return values_; }

 private:
  std::map<std::string, std::pair<YAML::Node, YAML::Node>> values_;  // key -> (key node, value node)
};

/// Warns that `what` (HYBRID_SHARD) shards within a node and replicates across nodes, which accelerate-cpp does
/// not do, and returns 3: the parameters are sharded over all processes instead.
int hybrid_as_3(const YAML::Node& n, const std::string& what, const std::string& path, std::ostream& warnings) {
  warnings << "accelerate-cpp: warning: " << where(path, n) << ": " << what
           << " shards within each machine and replicates across machines, which accelerate-cpp does not do; "
              "running ZeRO stage 3 over all processes (FULL_SHARD).\n";
  return 3;
}

/// How a section reads the ZeRO stage that one of its used keys asks for.
using StageReader = int (*)(const std::string& key, const YAML::Node& n, const std::string& path,
                            std::ostream& warnings);

/// Section `name`'s stage (-1: not set there), by `read` from the keys in `used`; its other keys get one warning.
int section_stage(const Keys& root, const char* name, std::initializer_list<std::string> used, StageReader read,
                  const std::string& path, std::ostream& warnings) {
  int stage = -1;
  auto n = root[name];
  if (!n || is_off(n)) return stage;
  ACCELERATE_CHECK(n.IsMap(), ConfigError, where(path, n), ": '", name, "' must be a mapping.");
  std::string ignored;
  for (const auto& item : n) {
    const auto key = item.first.as<std::string>();
    if (std::find(used.begin(), used.end(), key) != used.end()) {
      stage = std::max(stage, read(key, item.second, path, warnings));
    } else if (key != "gradient_accumulation_steps" && !is_off(item.second)) {
      ignored += (ignored.empty() ? "" : ", ") + bounded(key);
    }
  }
  if (!ignored.empty()) {
    warnings << "accelerate-cpp: warning: " << where(path, n) << ": " << name << " keys " << ignored
             << " are not supported by accelerate-cpp and are ignored (only the ZeRO stage is used).\n";
  }
  return stage;
}

/// deepspeed_config.zero_stage: 0, 1, 2, or 3.
int deepspeed_stage(const std::string&, const YAML::Node& n, const std::string& path, std::ostream& warnings) {
  const int stage = as<int>(n, "deepspeed_config.zero_stage", path, "0, 1, 2 or 3");
  ACCELERATE_CHECK(stage >= 0 && stage <= 3, ConfigError, where(path, n), ": deepspeed_config.zero_stage must be ",
                   "0, 1, 2 or 3, got ", stage, ".");
  return stage;
}

/// fsdp_config's fsdp_sharding_strategy (HF's names or numbers) or FSDP2's fsdp_reshard_after_forward.
int fsdp_stage(const std::string& key, const YAML::Node& n, const std::string& path, std::ostream& warnings) {
  if (key == "fsdp_reshard_after_forward") {  // FSDP2: false keeps parameters whole, as SHARD_GRAD_OP
    return as<bool>(n, "fsdp_config.fsdp_reshard_after_forward", path, "true or false") ? 3 : 2;
  }
  // HF accepts the names and their 1-based numbers (FSDP's ShardingStrategy enum).
  static const std::vector<std::string> names = {"FULL_SHARD", "SHARD_GRAD_OP", "NO_SHARD", "HYBRID_SHARD",
                                                 "HYBRID_SHARD_ZERO2"};
  auto text = as<std::string>(n, "fsdp_config.fsdp_sharding_strategy", path, "a sharding strategy");
  if (text.size() == 1 && text[0] >= '1' && text[0] <= '5') text = names[text[0] - '1'];
  const auto it = std::find(names.begin(), names.end(), text);
  ACCELERATE_CHECK(it != names.end(), ConfigError, where(path, n), ": fsdp_sharding_strategy '", bounded(text),
                   "' is not one of FULL_SHARD, SHARD_GRAD_OP, NO_SHARD, HYBRID_SHARD, HYBRID_SHARD_ZERO2 ",
                   "(or HF's numbers 1-5).");
  if (text == "NO_SHARD") return 0;
  if (text == "SHARD_GRAD_OP" || text == "HYBRID_SHARD_ZERO2") return 2;
  return text == "FULL_SHARD" ? 3 : hybrid_as_3(n, "fsdp_sharding_strategy " + text, path, warnings);
}

/// The ZeRO stage of deepspeed_config.zero_stage or fsdp_config's sharding (fsdp_sharding_strategy, HF's names or
/// numbers, or FSDP2's fsdp_reshard_after_forward); the sections' other keys are named in one warning each.
void read_sharding(const Keys& root, const std::string& path, HfConfig& c, std::ostream& warnings) {
  const int deepspeed = section_stage(root, "deepspeed_config", {"zero_stage"}, deepspeed_stage, path, warnings);
  const int fsdp = section_stage(root, "fsdp_config", {"fsdp_sharding_strategy", "fsdp_reshard_after_forward"},
                                 fsdp_stage, path, warnings);
  if (deepspeed >= 0 && fsdp >= 0 && deepspeed != fsdp) {
    warnings << "accelerate-cpp: warning: config file " << path << ": deepspeed_config asks for ZeRO stage "
             << deepspeed << " and fsdp_config for stage " << fsdp << "; running stage " << std::max(deepspeed, fsdp)
             << ". Keep one of the two sections.\n";
  }
  c.zero_stage = std::max({0, deepspeed, fsdp});
}

/// The YAML document of `path`, after checks that name the fix for a missing, odd or unreadable file.
YAML::Node load_document(const std::string& path) {
  std::error_code ec;
  ACCELERATE_CHECK(
      fs::exists(path, ec), ConfigError, "config file ", path,
      " does not exist. Create one with `accelerate-cpp config` (or `config default`), or fix --config_file.");
  ACCELERATE_CHECK(fs::is_regular_file(path, ec), ConfigError, "config file ", path, " is not a regular file",
                   fs::is_directory(path, ec) ? " but a folder" : "", ". Point --config_file at the YAML file itself",
                   fs::is_directory(path, ec) ? ", e.g. " + (fs::path(path) / "default_config.yaml").string() : "",
                   ".");
  ACCELERATE_CHECK(std::ifstream(path).good(), ConfigError, "config file ", path,
                   " cannot be read (permissions?). Fix its permissions or choose another with --config_file.");
  try {
    return YAML::LoadFile(path);
  } catch (const YAML::Exception& e) {
    throw ConfigError(concat("config file ", path, " is not valid YAML (line ", e.mark.line + 1, ", column ",
                             e.mark.column + 1, "): ", bounded(e.msg), "."));
  }
}

/// Warns of each set HF key that accelerate-cpp ignores, then fails on the keys HF does not know (named).
void check_keys(const Keys& root, const std::string& path, std::ostream& warnings) {
  std::string unknown;
  for (const auto& [key, item] : root.all()) {
    if (!hf_keys().count(key)) {
      if (unknown.size() < 400)
        unknown += concat(unknown.empty() ? "" : ", ", bounded(key), " (line ", item.first.Mark().line + 1, ")");
    } else if (unsupported_keys().count(key) && !is_off(item.second)) {
      warnings << "accelerate-cpp: warning: " << where(path, item.first) << ": '" << key
               << "' is not supported by accelerate-cpp and is ignored (plain data parallelism is used).\n";
    }
  }
  ACCELERATE_CHECK(unknown.empty(), ConfigError, "config file ", path, " has unknown keys: ", unknown,
                   ". Remove them, or regenerate the file with `accelerate-cpp config`.");
}

/// num_processes, num_machines, machine_rank and gradient_accumulation_steps, each checked against its minimum.
void read_counts(const Keys& root, const std::string& path, HfConfig& c) {
  auto positive = [&](const char* key, int& target, int minimum) {
    if (auto n = root[key]; n && !n.IsNull()) {
      const int v = as<int>(n, key, path, "an integer");
      ACCELERATE_CHECK(v >= minimum, ConfigError, where(path, n), ": '", key, "' must be >= ", minimum, ", got ", v,
                       ".");
      target = v;
    }
  };
  positive("num_processes", c.num_processes, 1);
  positive("num_machines", c.num_machines, 1);
  positive("machine_rank", c.machine_rank, 0);
  positive("gradient_accumulation_steps", c.gradient_accumulation_steps, 1);
}

/// main_process_ip and main_process_port (0..65535), where machine 0 hosts the rendezvous.
void read_main_process(const Keys& root, const std::string& path, HfConfig& c) {
  if (auto n = root["main_process_ip"]; n && !n.IsNull())
    c.main_process_ip = as<std::string>(n, "main_process_ip", path, "an address");
  if (auto n = root["main_process_port"]; n && !n.IsNull()) {
    const int port = as<int>(n, "main_process_port", path, "a port number");
    ACCELERATE_CHECK(port >= 0 && port <= 65535, ConfigError, where(path, n), ": main_process_port ", port,
                     " is not a port (0..65535).");
    c.main_process_port = port;
  }
}

/// mixed_precision (after the legacy fp16, which it overrides), use_cpu and debug.
void read_precision_and_flags(const Keys& root, const std::string& path, HfConfig& c) {
  if (auto n = root["fp16"]; n && as<bool>(n, "fp16", path, "true or false"))
    c.mixed_precision = MixedPrecision::Fp16;  // legacy
  if (auto n = root["mixed_precision"]; n && !n.IsNull()) {
    c.mixed_precision =
        parse_mixed_precision(as<std::string>(n, "mixed_precision", path, "one of no, fp16, bf16"), where(path, n));
  }
  if (auto n = root["use_cpu"]; n && !n.IsNull()) c.use_cpu = as<bool>(n, "use_cpu", path, "true or false");
  if (auto n = root["debug"]; n && !n.IsNull()) c.debug = as<bool>(n, "debug", path, "true or false");
}

/// compute_environment, distributed_type and enable_cpu_affinity, with a note or warning on what runs instead.
void read_environment(const Keys& root, const std::string& path, HfConfig& c, std::ostream& warnings) {
  if (auto n = root["compute_environment"]; n && !n.IsNull()) {
    c.compute_environment = as<std::string>(n, "compute_environment", path, "a name");
    ACCELERATE_CHECK(c.compute_environment == "LOCAL_MACHINE", ConfigError, where(path, n), ": compute_environment ",
                     bounded(c.compute_environment), " is not supported by accelerate-cpp; use LOCAL_MACHINE.");
  }
  if (auto n = root["distributed_type"]; n && !n.IsNull()) {
    c.distributed_type = as<std::string>(n, "distributed_type", path, "a name");
    static const std::set<std::string> data_parallel = {"NO", "MULTI_CPU", "MULTI_GPU"};
    if (c.distributed_type == "DEEPSPEED" || c.distributed_type == "FSDP") {
      warnings << "accelerate-cpp: note: " << where(path, n) << ": distributed_type " << c.distributed_type
               << " runs as accelerate-cpp's data parallelism with ZeRO stage " << c.zero_stage << ".\n";
    } else if (!data_parallel.count(c.distributed_type)) {
      warnings << "accelerate-cpp: warning: " << where(path, n) << ": distributed_type " << bounded(c.distributed_type)
               << " is not supported by accelerate-cpp; running plain data parallelism instead.\n";
    }
  }
  if (auto n = root["enable_cpu_affinity"]; n && !is_off(n)) {
    warnings << "accelerate-cpp: warning: " << where(path, n)
             << ": 'enable_cpu_affinity' is not supported and is ignored.\n";
  }
}

/// gpu_ids: HF writes a string ("all", "0,1"); a YAML list ([0, 1]) is accepted too.
void read_gpu_ids(const Keys& root, const std::string& path, HfConfig& c) {
  if (auto n = root["gpu_ids"]; n && !is_off(n)) {
    std::string ids;
    if (n.IsSequence()) {
      for (const auto& item : n)
        ids += (ids.empty() ? "" : ",") + as<std::string>(item, "gpu_ids", path, "GPU indexes");
    } else {
      ids = as<std::string>(n, "gpu_ids", path, "\"all\" or GPU indexes such as 0,1");
    }
    ids.erase(std::remove(ids.begin(), ids.end(), ' '), ids.end());
    ACCELERATE_CHECK(ids == "all" || launcher::valid_gpu_ids(ids), ConfigError, where(path, n),
                     ": 'gpu_ids' must be \"all\" or GPUs separated by commas (e.g. 0,1, or [0, 1]), got '",
                     bounded(ids), "'.");
    c.gpu_ids = ids;
  }
}

}  // namespace

std::string default_config_path() {
  if (const char* p = std::getenv(env_var::kConfigFile); p && *p) return p;
  std::string base;
  if (const char* x = std::getenv("XDG_CONFIG_HOME"); x && *x)
    base = x;
  else if (const char* h = std::getenv("HOME"); h && *h)
    base = std::string(h) + "/.config";
  else
    base = ".";
  return base + "/accelerate-cpp/default_config.yaml";
}

std::optional<std::string> existing_default_config(std::ostream& notes) {
  const auto path = default_config_path();
  std::error_code ec;
  const bool found = fs::is_regular_file(path, ec);
  if (ec && ec != std::errc::no_such_file_or_directory && ec != std::errc::not_a_directory) {
    notes << "accelerate-cpp: note: the default config file " << path << " cannot be looked at (" << ec.message()
          << "); going on without it. Set " << env_var::kConfigFile
          << " or pass --config_file to use one, or set HOME to a folder this user may read.\n";
  }
  if (!found) return std::nullopt;
  return path;
}

HfConfig read_config(const std::string& path, std::ostream& warnings) {
  const YAML::Node document = load_document(path);
  HfConfig c;
  if (document.IsNull()) {
    warnings << "accelerate-cpp: warning: config file " << path
             << " is empty; the defaults are used. Fill it with `accelerate-cpp config`, or remove it.\n";
    return c;
  }
  ACCELERATE_CHECK(document.IsMap(), ConfigError, "config file ", path, " must hold a mapping of keys to values.");
  const Keys root(document, path, warnings);
  check_keys(root, path, warnings);
  read_counts(root, path, c);
  read_sharding(root, path, c, warnings);
  ACCELERATE_CHECK(c.machine_rank < c.num_machines, ConfigError, where(path, root["machine_rank"]), ": machine_rank ",
                   c.machine_rank, " is not below num_machines ", c.num_machines, ".");
  read_main_process(root, path, c);
  read_precision_and_flags(root, path, c);
  read_environment(root, path, c, warnings);  // after read_sharding: its note names the ZeRO stage
  read_gpu_ids(root, path, c);
  return c;
}

void write_config(const HfConfig& c, const std::string& path) {
  // Strings are quoted: YAML 1.1 readers (PyYAML, so Python's accelerate) take a bare `no` for false.
  using Value = std::variant<std::string, int, bool, std::vector<std::string>, std::map<std::string, int>>;
  std::map<std::string, Value> keys;  // sorted, as HF's yaml.safe_dump writes them
  keys["compute_environment"] = c.compute_environment;
  keys["debug"] = c.debug;
  if (c.zero_stage != 0) keys["deepspeed_config"] = std::map<std::string, int>{{"zero_stage", c.zero_stage}};
  keys["distributed_type"] = c.distributed_type;
  keys["downcast_bf16"] = std::string("no");
  keys["enable_cpu_affinity"] = false;
  if (c.distributed_type == "MULTI_GPU") keys["gpu_ids"] = c.gpu_ids.value_or("all");
  keys["machine_rank"] = c.machine_rank;
  if (c.main_process_ip) keys["main_process_ip"] = *c.main_process_ip;
  if (c.main_process_port) keys["main_process_port"] = *c.main_process_port;
  keys["main_training_function"] = std::string("main");
  keys["mixed_precision"] = to_string(c.mixed_precision);
  keys["num_machines"] = c.num_machines;
  keys["num_processes"] = c.num_processes;
  keys["rdzv_backend"] = std::string("static");
  keys["same_network"] = true;
  keys["tpu_env"] = std::vector<std::string>{};
  keys["tpu_use_cluster"] = false;
  keys["tpu_use_sudo"] = false;
  keys["use_cpu"] = c.use_cpu;
  if (c.gradient_accumulation_steps != 1) keys["gradient_accumulation_steps"] = c.gradient_accumulation_steps;
  YAML::Emitter out;
  out << YAML::BeginMap;
  for (const auto& [k, v] : keys) {
    out << YAML::Key << k << YAML::Value;
    std::visit(
        [&](const auto& x) {
          using T = std::decay_t<decltype(x)>;
          if constexpr (std::is_same_v<T, std::string>)
            out << YAML::SingleQuoted << x;
          else if constexpr (std::is_same_v<T, std::vector<std::string>>)
            out << YAML::Flow << x;
          else if constexpr (std::is_same_v<T, std::map<std::string, int>>)
            out << YAML::Block << x;
          else
            out << x;
        },
        v);
  }
  out << YAML::EndMap;
  const fs::path target(path);
  std::error_code ec;
  if (target.has_parent_path()) fs::create_directories(target.parent_path(), ec);
  ACCELERATE_CHECK(!ec, ConfigError, "cannot create the folder ", target.parent_path().string(), ": ", ec.message(),
                   ". Choose another place with --config_file.");
  std::ofstream file(target);
  file << out.c_str() << "\n";
  file.flush();
  ACCELERATE_CHECK(file.good(), ConfigError, "cannot write ", path, ". Choose another place with --config_file.");
}

std::string describe(const HfConfig& c) {
  return concat("compute_environment: ", c.compute_environment, "\ndistributed_type: ", c.distributed_type,
                "\nmixed_precision: ", to_string(c.mixed_precision), "\nuse_cpu: ", c.use_cpu ? "true" : "false",
                "\ndebug: ", c.debug ? "true" : "false", "\nnum_processes: ", c.num_processes,
                "\nnum_machines: ", c.num_machines, "\nmachine_rank: ", c.machine_rank,
                "\nmain_process_ip: ", c.main_process_ip.value_or("(unset)"),
                "\nmain_process_port: ", c.main_process_port ? std::to_string(*c.main_process_port) : "(unset)",
                "\ngradient_accumulation_steps: ", c.gradient_accumulation_steps, "\nzero_stage: ", c.zero_stage, "\n");
}

int visible_gpu_count(int driver_gpus, const char* cuda_visible_devices) {
  if (!cuda_visible_devices) return driver_gpus;
  // CUDA takes the listed devices up to the first invalid entry; "" or "-1" hides them all.
  int listed = 0;
  std::string entry;
  std::istringstream in(cuda_visible_devices);
  while (std::getline(in, entry, ',')) {
    if (entry.empty() || entry.size() > 4 || entry.find_first_not_of("0123456789") != std::string::npos ||
        std::stoi(entry) >= driver_gpus) {
      break;
    }
    ++listed;
  }
  return listed;
}

int visible_gpu_count() {
  std::error_code ec;
  int n = 0;
  for (fs::directory_iterator it("/proc/driver/nvidia/gpus", ec), end; !ec && it != end; it.increment(ec)) ++n;
  return visible_gpu_count(n, std::getenv(env_var::kCudaVisibleDevices));
}

}  // namespace accelerate::cli
