// The launcher's plan: flag validation, ports, rank layout over machines, and the env contract.
#include "launcher/launch_plan.hpp"

#include <accelerate/error.hpp>
#include <accelerate/settings.hpp>

#include <filesystem>
#include <fstream>
#include <gtest/gtest.h>

using namespace accelerate;
using namespace accelerate::launcher;

namespace {
int fake_free_port() { return 40123; }

LaunchPlan plan_for(LaunchOptions o, std::map<std::string, std::string> env = {}) {
  return make_plan(o, "/bin/true", &fake_free_port, 8, env);
}

std::string temp_file(const std::string& name, const std::string& text) {
  auto path = std::filesystem::temp_directory_path() / ("accelerate_test_" + std::to_string(::getpid()) + name);
  std::ofstream(path) << text;
  return path.string();
}
}  // namespace

TEST(LaunchPlan, SingleMachineTorchrunContract) {
  LaunchOptions o;
  o.num_processes = 4;
  o.mixed_precision = MixedPrecision::Bf16;
  o.gradient_accumulation_steps = 3;
  o.cpu = true;
  auto plan = plan_for(o);
  ASSERT_EQ(plan.workers.size(), 4u);
  EXPECT_EQ(plan.master_port, 40123);
  EXPECT_TRUE(plan.hosts_rendezvous);
  const auto& e = plan.workers[2].env;
  EXPECT_EQ(e.at("RANK"), "2");
  EXPECT_EQ(e.at("LOCAL_RANK"), "2");
  EXPECT_EQ(e.at("WORLD_SIZE"), "4");
  EXPECT_EQ(e.at("LOCAL_WORLD_SIZE"), "4");
  EXPECT_EQ(e.at("GROUP_RANK"), "0");
  EXPECT_EQ(e.at("MASTER_ADDR"), "127.0.0.1");
  EXPECT_EQ(e.at("MASTER_PORT"), "40123");
  EXPECT_EQ(e.at("TORCHELASTIC_USE_AGENT_STORE"), "False");
  EXPECT_EQ(e.at("ACCELERATE_MIXED_PRECISION"), "bf16");
  EXPECT_EQ(e.at("ACCELERATE_GRADIENT_ACCUMULATION_STEPS"), "3");
  EXPECT_EQ(e.at("ACCELERATE_USE_CPU"), "True");
  EXPECT_EQ(e.at("OMP_NUM_THREADS"), "2");  // 8 cores / 4 local processes
  EXPECT_EQ(plan.workers[0].env.at("TORCHELASTIC_RUN_ID"), e.at("TORCHELASTIC_RUN_ID"));
}

TEST(LaunchPlan, OmpNumThreadsFromParentIsKept) {
  LaunchOptions o;
  o.num_processes = 2;
  auto plan = plan_for(o, {{"OMP_NUM_THREADS", "3"}});
  EXPECT_EQ(plan.workers[0].env.count("OMP_NUM_THREADS"), 0u);  // inherited unchanged
}

// glibc's heap is kept between steps (no trim, no per-step mmap of activations) unless the parent chose otherwise.
TEST(LaunchPlan, MallocKeepsTheHeapUnlessTheParentSetsIt) {
  LaunchOptions o;
  o.num_processes = 2;
  auto plan = plan_for(o, {});
  EXPECT_EQ(plan.workers[1].env.at("MALLOC_TRIM_THRESHOLD_"), "1073741824");
  EXPECT_EQ(plan.workers[1].env.at("MALLOC_MMAP_THRESHOLD_"), "33554432");
  plan = plan_for(o, {{"MALLOC_TRIM_THRESHOLD_", "0"}});
  EXPECT_EQ(plan.workers[0].env.count("MALLOC_TRIM_THRESHOLD_"), 0u);  // inherited unchanged
}

TEST(LaunchPlan, MultiNodeRanks) {
  LaunchOptions o;
  o.num_processes = 6;
  o.num_machines = 3;
  o.machine_rank = 2;
  o.main_process_ip = "10.0.0.1";
  auto plan = plan_for(o);
  ASSERT_EQ(plan.workers.size(), 2u);
  EXPECT_FALSE(plan.hosts_rendezvous);
  EXPECT_EQ(plan.master_port, 29500);
  EXPECT_EQ(plan.workers[1].rank, 5);
  EXPECT_EQ(plan.workers[1].env.at("GROUP_RANK"), "2");
  EXPECT_EQ(plan.workers[1].env.at("GROUP_WORLD_SIZE"), "3");
  EXPECT_EQ(plan.workers[1].env.at("MASTER_ADDR"), "10.0.0.1");
}

// Issue 11, item 9: gpu_ids (flag or config) becomes the workers' CUDA_VISIBLE_DEVICES, as HF's launch does.
TEST(LaunchPlan, GpuIdsBecomeCudaVisibleDevices) {
  LaunchOptions o;
  o.num_processes = 2;
  o.gpu_ids = "2,3";
  auto p = plan_for(o);
  for (const auto& w : p.workers) EXPECT_EQ(w.env.at("CUDA_VISIBLE_DEVICES"), "2,3");
  o.gpu_ids = "all";
  EXPECT_EQ(plan_for(o).workers[0].env.count("CUDA_VISIBLE_DEVICES"), 0u);
  o.gpu_ids = "GPU-8f0d3c2e,MIG-1";  // UUIDs, as CUDA takes them
  EXPECT_EQ(plan_for(o).workers[0].env.at("CUDA_VISIBLE_DEVICES"), "GPU-8f0d3c2e,MIG-1");
  for (const char* bad : {"0;1", ",", "1,,2", "0,", ""}) {
    o.gpu_ids = bad;
    EXPECT_THROW(plan_for(o), ConfigError) << bad;
  }
}

TEST(LaunchPlan, BadFlags) {
  auto expect_error = [](LaunchOptions o, const std::string& needle) {
    try {
      plan_for(o);
      FAIL() << "expected an error with " << needle;
    } catch (const ConfigError& e) {
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    }
  };
  LaunchOptions o;
  o.num_processes = 0;
  expect_error(o, "--num_processes must be >= 1");
  o = {};
  o.num_processes = 3;
  o.num_machines = 2;
  o.main_process_ip = "h";
  expect_error(o, "not a multiple of --num_machines");
  o = {};
  o.num_machines = 2;
  o.num_processes = 2;
  expect_error(o, "--main_process_ip is required");
  o = {};
  o.machine_rank = 1;
  expect_error(o, "--machine_rank 1 is out of range");
  o = {};
  o.main_process_port = 70000;
  expect_error(o, "not a TCP port");
  o = {};
  o.gradient_accumulation_steps = 0;
  expect_error(o, "--gradient_accumulation_steps must be >= 1");
  o = {};
  o.timeout_s = -1;
  expect_error(o, "--timeout must be a number of seconds between 0.001 and 31536000");
  o.timeout_s = 1e30;  // c10d's millisecond count would overflow into a negative timeout
  expect_error(o, "--timeout must be a number of seconds between 0.001 and 31536000");
  o = {};
  o.zero_stage = 4;
  expect_error(o,
               "ZeRO stage must be 0 (replicated), 1 (optimizer state sharded), 2 (optimizer state and gradients "
               "sharded) or 3 (parameters too), got 4");
  o = {};
  o.max_restarts = -1;
  expect_error(o, "--max_restarts must be >= 0");
  o = {};
  o.max_restarts = 1;
  o.num_machines = 2;
  o.num_processes = 2;
  o.main_process_ip = "h";
  expect_error(o, "--max_restarts works on one machine for now");
}

TEST(LaunchPlan, RestartsAreAnnouncedToTheWorkers) {
  LaunchOptions o;
  o.num_processes = 2;
  o.max_restarts = 3;
  o.zero_stage = 2;
  const auto plan = plan_for(o);
  EXPECT_EQ(plan.workers[1].env.at("TORCHELASTIC_MAX_RESTARTS"), "3");
  EXPECT_EQ(plan.workers[1].env.at("TORCHELASTIC_RESTART_COUNT"), "0");  // launch counts the restarts
  EXPECT_EQ(plan.workers[1].env.at("ACCELERATE_CPP_ZERO_STAGE"), "2");
}

TEST(ResolveProgram, MissingAndNotExecutable) {
  EXPECT_THROW(resolve_program("./definitely/not/here", "/usr/bin"), LaunchError);
  EXPECT_THROW(resolve_program("no-such-program-xyz", "/usr/bin:/bin"), LaunchError);
  auto plain = temp_file("plain", "data");
  try {
    resolve_program(plain, "");
    FAIL();
  } catch (const LaunchError& e) {
    EXPECT_NE(std::string(e.what()).find("not executable"), std::string::npos);
  }
  EXPECT_EQ(resolve_program("sh", "/nonexistent:/bin"), "/bin/sh");
  std::filesystem::remove(plain);
}

TEST(ConfigFile, HfYamlFillsUnsetOptions) {
  auto path = temp_file("cfg.yaml",
                        "compute_environment: LOCAL_MACHINE\ndebug: false\ndistributed_type: MULTI_CPU\n"
                        "downcast_bf16: 'no'\nenable_cpu_affinity: false\ngpu_ids: all\nmachine_rank: 0\n"
                        "main_training_function: main\nmixed_precision: bf16\nnum_machines: 1\nnum_processes: 4\n"
                        "rdzv_backend: static\nsame_network: true\ntpu_env: []\ntpu_use_cluster: false\n"
                        "tpu_use_sudo: false\nuse_cpu: true\n");
  LaunchOptions o;
  o.num_processes = 2;  // a flag wins over the file
  merge_config_file(o, path);
  EXPECT_EQ(*o.num_processes, 2);
  EXPECT_EQ(*o.mixed_precision, MixedPrecision::Bf16);
  EXPECT_TRUE(o.cpu);
  EXPECT_EQ(*o.num_machines, 1);
  std::filesystem::remove(path);
}

TEST(ConfigFile, Errors) {
  LaunchOptions o;
  EXPECT_THROW(merge_config_file(o, "/nonexistent/config.yaml"), ConfigError);
  auto bad = temp_file("bad.yaml", "num_processes: [1, 2\n");
  EXPECT_THROW(merge_config_file(o, bad), ConfigError);
  auto unknown = temp_file("unknown.yaml", "num_processes: 2\nnum_gpus: 8\n");
  try {
    merge_config_file(o, unknown);
    FAIL();
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("unknown keys: num_gpus (line 2)"), std::string::npos) << e.what();
  }
  auto wrong_type = temp_file("type.yaml", "num_processes: many\n");
  EXPECT_THROW(merge_config_file(o, wrong_type), ConfigError);
  for (const auto& p : {bad, unknown, wrong_type}) std::filesystem::remove(p);
}

// The launch contract has one list of names: every variable the launcher writes is in the library's table, and
// what the library reads back from a worker's environment is what the launcher was asked for.
TEST(LaunchPlan, SharesTheLibrarysVariableTable) {
  LaunchOptions o;
  o.num_processes = 2;
  o.mixed_precision = MixedPrecision::Bf16;
  o.gradient_accumulation_steps = 3;
  o.cpu = true;
  o.debug = true;
  o.timeout_s = 42.5;
  o.gpu_ids = "0,1";
  const auto plan = plan_for(o);
  for (const auto& worker : plan.workers) {
    for (const auto& [name, value] : worker.env) {
      EXPECT_NE(find_environment_variable(name), nullptr) << name << " is written by the launcher but unknown";
    }
  }
  const auto settings = read_environment_settings(plan.workers[1].env);
  EXPECT_EQ(settings.launch.launcher, Launcher::Accelerate);
  EXPECT_EQ(settings.launch.rank, 1);
  EXPECT_EQ(settings.launch.world_size, 2);
  EXPECT_EQ(settings.launch.master_port, 40123);
  EXPECT_EQ(settings.mixed_precision, MixedPrecision::Bf16);
  EXPECT_EQ(settings.gradient_accumulation_steps, 3);
  EXPECT_TRUE(settings.use_cpu);
  EXPECT_EQ(settings.debug_mode, true);
  EXPECT_EQ(settings.timeout, std::chrono::milliseconds(42500));
  EXPECT_EQ(find_environment_variable("ACCELERATE_NO_SUCH_THING"), nullptr);
}
