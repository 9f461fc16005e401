// The HF config file (read with line-numbered errors and named warnings, written with HF's keys) and platform
// detection: pure functions, no processes.
#include <accelerate/error.hpp>
#include <accelerate/platform.hpp>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <gtest/gtest.h>
#include <sstream>
#include <sys/wait.h>
#include <unistd.h>

#include "config/hf_config.hpp"

using namespace accelerate;
using namespace accelerate::cli;
namespace fs = std::filesystem;

namespace {

std::string write_temp(const std::string& name, const std::string& text) {
  const auto path = fs::temp_directory_path() / ("accelerate_cfg_" + std::to_string(::getpid()) + "_" + name);
  std::ofstream(path) << text;
  return path.string();
}

std::string error_of(const std::string& yaml) {
  const auto path = write_temp("err.yaml", yaml);
  std::ostringstream warnings;
  try {
    read_config(path, warnings);
  } catch (const ConfigError& e) {
    fs::remove(path);
    return e.what();
  }
  fs::remove(path);
  return "no error";
}

}  // namespace

TEST(HfConfig, WrongValuesNameTheLine) {
  EXPECT_NE(error_of("debug: false\nnum_processes: -1\n").find("line 2: 'num_processes' must be >= 1, got -1"),
            std::string::npos)
      << error_of("debug: false\nnum_processes: -1\n");
  EXPECT_NE(error_of("num_processes: 2\n\nmixed_precision: fp8\n").find("line 3: mixed_precision fp8 is not supported"),
            std::string::npos);
  EXPECT_NE(error_of("mixed_precision: fp32\n").find("line 1: mixed_precision 'fp32' is not one of no, fp16, bf16"),
            std::string::npos);
  EXPECT_NE(error_of("use_cpu: maybe\n").find("line 1: 'use_cpu' must be true or false"), std::string::npos);
  EXPECT_NE(error_of("num_processes: 2\n  bad: [\n").find("is not valid YAML (line"), std::string::npos);
  EXPECT_NE(error_of("machine_rank: 2\nnum_machines: 2\n").find("machine_rank 2 is not below num_machines 2"),
            std::string::npos);
  EXPECT_NE(error_of("main_process_port: 70000\n").find("is not a port"), std::string::npos);
}

// Issue 10, case 3: inputs that crashed the CLI; each is a ConfigError naming the file, or a warning.
TEST(HfConfig, NoInputCrashesTheReader) {
  // A folder instead of a file.
  const auto folder = fs::temp_directory_path() / ("accelerate_cfg_dir_" + std::to_string(::getpid()));
  fs::create_directories(folder);
  std::ostringstream warnings;
  try {
    read_config(folder.string(), warnings);
    ADD_FAILURE() << "a folder was read as a config file";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("is not a regular file but a folder"), std::string::npos) << e.what();
  }
  fs::remove_all(folder);
  // HF's gpu_ids as a YAML list: accepted, as "0,1" (issue 11: it becomes CUDA_VISIBLE_DEVICES).
  const auto path = write_temp("gpus.yaml", "gpu_ids: [0, 1]\nnum_processes: 2\n");
  const auto c = read_config(path, warnings);
  EXPECT_EQ(c.num_processes, 2);
  EXPECT_EQ(c.gpu_ids, "0,1");
  fs::remove(path);
  // A key that is not a name, and a huge value: errors of bounded size.
  EXPECT_NE(error_of("? [a, b]\n: 1\n").find("keys must be plain names"), std::string::npos);
  const auto huge = error_of("num_processes: " + std::string(100000, 'x') + "\n");
  EXPECT_NE(huge.find("'num_processes' must be an integer"), std::string::npos) << huge.substr(0, 300);
  EXPECT_LT(huge.size(), 600u);
  EXPECT_LT(error_of("mixed_precision: " + std::string(100000, 'y') + "\n").size(), 600u);
  const auto many_unknown = [] {
    std::string yaml;
    for (int i = 0; i < 5000; ++i) yaml += "key" + std::to_string(i) + ": 1\n";
    return error_of(yaml);
  }();
  EXPECT_LT(many_unknown.size(), 1000u);
}

// Issue 11, item 9: `config` counts the GPUs CUDA_VISIBLE_DEVICES leaves, as CUDA does.
TEST(HfConfig, GpuCountFollowsCudaVisibleDevices) {
  EXPECT_EQ(visible_gpu_count(4, nullptr), 4);
  EXPECT_EQ(visible_gpu_count(4, "2,3"), 2);
  EXPECT_EQ(visible_gpu_count(4, ""), 0);
  EXPECT_EQ(visible_gpu_count(4, "-1"), 0);
  EXPECT_EQ(visible_gpu_count(4, "1,7,2"), 1);  // CUDA stops at the first device that does not exist
  EXPECT_EQ(visible_gpu_count(0, "0"), 0);
}

// Issue 10, case 3: a key given twice takes the last value, as Python's YAML loader does.
TEST(HfConfig, ARepeatedKeyTakesTheLastValue) {
  const auto path = write_temp("twice.yaml", "num_processes: 2\nmixed_precision: bf16\nnum_processes: 3\n");
  std::ostringstream warnings;
  const auto c = read_config(path, warnings);
  EXPECT_EQ(c.num_processes, 3);
  EXPECT_EQ(c.mixed_precision, MixedPrecision::Bf16);
  EXPECT_NE(warnings.str().find("line 3: 'num_processes' is given 2 times (first on line 1)"), std::string::npos)
      << warnings.str();
  fs::remove(path);
}

// Issue 23, item 11: a key repeated 100,000 times is one warning with the count, not 100,000 lines.
TEST(HfConfig, AKeyRepeatedManyTimesIsOneWarning) {
  std::string text;
  for (int i = 0; i < 100000; ++i) text += "num_processes: " + std::to_string(i % 7 + 1) + "\n";
  text += "mixed_precision: bf16\nmixed_precision: fp16\n";
  const auto path = write_temp("many.yaml", text);
  std::ostringstream warnings;
  const auto c = read_config(path, warnings);
  EXPECT_EQ(c.num_processes, 99999 % 7 + 1);
  EXPECT_EQ(c.mixed_precision, MixedPrecision::Fp16);
  const auto w = warnings.str();
  EXPECT_EQ(std::count(w.begin(), w.end(), '\n'), 2) << w.substr(0, 500);
  EXPECT_NE(w.find("line 100000: 'num_processes' is given 100000 times (first on line 1)"), std::string::npos) << w;
  EXPECT_NE(w.find("'mixed_precision' is given 2 times (first on line 100001)"), std::string::npos) << w;
  fs::remove(path);
}

// Issue 23, item 13: an empty config file is a warning (the defaults apply), not silence.
TEST(HfConfig, AnEmptyFileIsAWarning) {
  const auto path = write_temp("empty.yaml", "");
  std::ostringstream warnings;
  const auto c = read_config(path, warnings);
  EXPECT_EQ(c.num_processes, 1);
  EXPECT_NE(warnings.str().find("is empty; the defaults are used"), std::string::npos) << warnings.str();
  fs::remove(path);
}

TEST(HfConfig, UnsupportedKeysAreNamedInAWarning) {
  const auto path = write_temp("ds.yaml",
                               "distributed_type: DEEPSPEED\ndeepspeed_config:\n  zero_stage: 2\n"
                               "  offload_param_device: nvme\nfsdp_config: {}\nfp8_config:\n  backend: TE\n"
                               "num_processes: 2\n");
  std::ostringstream warnings;
  const auto c = read_config(path, warnings);
  EXPECT_EQ(c.num_processes, 2);
  EXPECT_EQ(c.zero_stage, 2);  // the one DeepSpeed key that maps
  const auto w = warnings.str();
  EXPECT_NE(w.find("line 3: deepspeed_config keys offload_param_device are not supported"), std::string::npos) << w;
  EXPECT_NE(w.find("distributed_type DEEPSPEED runs as accelerate-cpp's data parallelism with ZeRO stage 2"),
            std::string::npos)
      << w;
  EXPECT_NE(w.find("line 6: 'fp8_config' is not supported"), std::string::npos) << w;
  EXPECT_EQ(w.find("fsdp_config"), std::string::npos) << "an empty section is not a setting: " << w;
  fs::remove(path);
}

TEST(HfConfig, ShardingStrategiesMapToZeroStages) {
  auto stage = [](const std::string& section) {
    const auto path = write_temp("sharding.yaml", section);
    std::ostringstream warnings;
    const int s = read_config(path, warnings).zero_stage;
    fs::remove(path);
    return s;
  };
  EXPECT_EQ(stage("fsdp_config:\n  fsdp_sharding_strategy: SHARD_GRAD_OP\n"), 2);
  EXPECT_EQ(stage("fsdp_config:\n  fsdp_sharding_strategy: 2\n"), 2);  // HF's number for SHARD_GRAD_OP
  EXPECT_EQ(stage("fsdp_config:\n  fsdp_sharding_strategy: NO_SHARD\n"), 0);
  EXPECT_EQ(stage("fsdp_config:\n  fsdp_sharding_strategy: FULL_SHARD\n"), 3);
  EXPECT_EQ(stage("fsdp_config:\n  fsdp_sharding_strategy: 4\n"), 3);  // HYBRID_SHARD: all processes, warned
  EXPECT_EQ(stage("deepspeed_config:\n  zero_stage: 3\n"), 3);
  EXPECT_EQ(stage("deepspeed_config:\n  zero_stage: 1\n"), 1);
  EXPECT_EQ(stage("fsdp_config:\n  fsdp_version: 2\n  fsdp_reshard_after_forward: false\n"), 2);  // FSDP2
  EXPECT_EQ(stage("fsdp_config:\n  fsdp_reshard_after_forward: true\n"), 3);
  EXPECT_EQ(stage("deepspeed_config:\n  zero_stage: 1\nfsdp_config:\n  fsdp_sharding_strategy: SHARD_GRAD_OP\n"),
            2);  // both: the larger, with a warning
  EXPECT_THROW(stage("deepspeed_config:\n  zero_stage: 7\n"), ConfigError);
  EXPECT_THROW(stage("fsdp_config:\n  fsdp_sharding_strategy: HALF_SHARD\n"), ConfigError);
}

TEST(HfConfig, WriteThenReadRoundTrips) {
  HfConfig c;
  c.distributed_type = "MULTI_CPU";
  c.use_cpu = true;
  c.num_processes = 4;
  c.num_machines = 2;
  c.machine_rank = 1;
  c.main_process_ip = "10.0.0.1";
  c.main_process_port = 29500;
  c.mixed_precision = MixedPrecision::Bf16;
  c.gradient_accumulation_steps = 3;
  c.zero_stage = 2;
  c.debug = true;
  const auto path =
      (fs::temp_directory_path() / ("accelerate_cfg_rt_" + std::to_string(::getpid())) / "c.yaml").string();
  write_config(c, path);
  std::ostringstream warnings;
  const auto back = read_config(path, warnings);
  EXPECT_EQ(warnings.str(), "");
  EXPECT_EQ(back.distributed_type, "MULTI_CPU");
  EXPECT_TRUE(back.use_cpu);
  EXPECT_TRUE(back.debug);
  EXPECT_EQ(back.num_processes, 4);
  EXPECT_EQ(back.num_machines, 2);
  EXPECT_EQ(back.machine_rank, 1);
  EXPECT_EQ(back.main_process_ip, "10.0.0.1");
  EXPECT_EQ(back.main_process_port, 29500);
  EXPECT_EQ(back.mixed_precision, MixedPrecision::Bf16);
  EXPECT_EQ(back.gradient_accumulation_steps, 3);
  EXPECT_EQ(back.zero_stage, 2);
  fs::remove_all(fs::path(path).parent_path());
}

TEST(HfConfig, DefaultPathFollowsTheEnvironment) {
  ::setenv("ACCELERATE_CPP_CONFIG_FILE", "/tmp/x/custom.yaml", 1);
  EXPECT_EQ(default_config_path(), "/tmp/x/custom.yaml");
  ::unsetenv("ACCELERATE_CPP_CONFIG_FILE");
  ::setenv("XDG_CONFIG_HOME", "/tmp/xdg", 1);
  EXPECT_EQ(default_config_path(), "/tmp/xdg/accelerate-cpp/default_config.yaml");
  ::unsetenv("XDG_CONFIG_HOME");
}

TEST(Platform, EachPlatformFromItsEnvironment) {
  auto none = [](const std::string&) { return false; };
  const auto cwd = fs::current_path().string();
  auto detect = [&](EnvironmentVariables env, std::function<bool(const std::string&)> exists = {}) {
    return detect_platform(env, exists ? exists : none);
  };
  auto kaggle = detect({{"KAGGLE_KERNEL_RUN_TYPE", "Interactive"}});
  EXPECT_EQ(kaggle.platform, Platform::Kaggle);
  EXPECT_EQ(kaggle.output_dir, "/kaggle/working");
  auto colab = detect({{"COLAB_RELEASE_TAG", "release-colab_20250101"}});
  EXPECT_EQ(colab.platform, Platform::Colab);
  EXPECT_EQ(colab.output_dir, cwd);  // Drive not mounted
  auto colab_drive = detect({{"COLAB_GPU", "1"}}, [](const std::string& p) { return p == "/content/drive/MyDrive"; });
  EXPECT_EQ(colab_drive.output_dir, "/content/drive/MyDrive");
  EXPECT_EQ(detect({{"SLURM_JOB_ID", "12"}, {"SLURM_PROCID", "0"}}).platform, Platform::Slurm);
  EXPECT_EQ(detect({{"KUBERNETES_SERVICE_HOST", "10.0.0.1"}}).platform, Platform::Kubernetes);
  EXPECT_EQ(detect({{"TORCHELASTIC_RUN_ID", "x"}, {"LOCAL_RANK", "0"}, {"WORLD_SIZE", "2"}}).platform,
            Platform::Torchrun);
  EXPECT_EQ(detect({{"OMPI_COMM_WORLD_SIZE", "2"}}).platform, Platform::Mpi);
  EXPECT_EQ(detect({}, [](const std::string& p) { return p == "/.dockerenv"; }).platform, Platform::Container);
  auto local = detect({{"LOCAL_RANK", "0"}, {"WORLD_SIZE", "2"}, {"ACCELERATE_CPP_LAUNCHED", "1"}});
  EXPECT_EQ(local.platform, Platform::Local);
  EXPECT_EQ(local.output_dir, cwd);
  EXPECT_EQ(to_string(Platform::Colab), "Google Colab");
}

// Issue 23, item 13: a HOME this user may not enter (uid 65534 with HOME=/root) is a note, and the run goes on
// without a config file, as HF's isfile check does; it used to fail every command. Root enters any folder, so
// as root the check runs in a child that drops to uid 65534.
TEST(HfConfig, AnUnreadableHomeIsANoteNotAnError) {
  const auto home = fs::temp_directory_path() / ("accelerate_home_" + std::to_string(::getpid()));
  fs::create_directories(home / ".config" / "accelerate-cpp");
  std::ofstream(home / ".config" / "accelerate-cpp" / "default_config.yaml") << "num_processes: 2\n";
  fs::permissions(home, fs::perms::owner_all);  // 0700: only its owner enters
  if (::getuid() != 0) fs::permissions(home, fs::perms::none);
  int out[2];
  ASSERT_EQ(::pipe(out), 0);
  const pid_t child = ::fork();
  if (child == 0) {
    ::close(out[0]);
    ::setenv("HOME", home.c_str(), 1);
    ::unsetenv("XDG_CONFIG_HOME");
    ::unsetenv("ACCELERATE_CPP_CONFIG_FILE");
    if (::getuid() == 0 && (::setgid(65534) != 0 || ::setuid(65534) != 0)) ::_exit(3);
    std::ostringstream notes;
    const auto found = existing_default_config(notes);
    const auto text = notes.str();
    if (::write(out[1], text.data(), text.size()) < 0) ::_exit(4);
    ::_exit(found ? 1 : 0);
  }
  ::close(out[1]);
  std::string notes;
  char buffer[512];
  for (ssize_t n; (n = ::read(out[0], buffer, sizeof buffer)) > 0;) notes.append(buffer, static_cast<size_t>(n));
  ::close(out[0]);
  int status = 0;
  ::waitpid(child, &status, 0);
  fs::permissions(home, fs::perms::owner_all);
  fs::remove_all(home);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0) << "1: a file was reported found; 3: could not drop to uid 65534";
  EXPECT_NE(notes.find("cannot be looked at (Permission denied); going on without it"), std::string::npos) << notes;
}
