// The CLI's config/env/test commands, as a user runs them: the questionnaire through a pseudo-terminal and from
// piped answers, answers as flags, files written by Python's `accelerate` loaded and launched (and ours loaded by
// Python), `env`'s report, `test` passing and failing, and suggestions for mistyped commands and flags.
#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <poll.h>
#include <pty.h>
#include <sys/wait.h>
#include <unistd.h>

#include "subprocess.hpp"
#include "temp_dir.hpp"

namespace fs = std::filesystem;
using accelerate::testing::run;

using accelerate::testing::TempDir;

namespace {

const std::string kCli = ACCELERATE_TEST_BIN_DIR "/accelerate-cpp";
const std::string kPython = ACCELERATE_TEST_PYTHON;

std::string read(const std::string& path) {
  std::ifstream in(path);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

/// Runs argv in a pseudo-terminal, answering each prompt (a line ending in ": ") with the next answer, as a person
/// at a terminal would. Returns everything the terminal showed.
std::string run_in_terminal(const std::vector<std::string>& argv, const std::vector<std::string>& answers,
                            std::chrono::seconds deadline = std::chrono::seconds(30)) {
  int master = -1;
  const pid_t pid = ::forkpty(&master, nullptr, nullptr, nullptr);
  if (pid == 0) accelerate::testing::exec_or_exit(argv);
  std::string screen;
  size_t answered = 0, prompts_seen = 0;
  const auto end = std::chrono::steady_clock::now() + deadline;
  while (std::chrono::steady_clock::now() < end) {
    pollfd p{master, POLLIN, 0};
    if (::poll(&p, 1, 100) > 0) {
      char buffer[4096];
      const auto n = ::read(master, buffer, sizeof buffer);
      if (n <= 0) break;  // the program exited and closed the terminal
      screen.append(buffer, static_cast<size_t>(n));
    }
    // A prompt ends with "]: "; answer each one once.
    size_t count = 0;
    for (size_t at = screen.find("]: "); at != std::string::npos; at = screen.find("]: ", at + 1)) ++count;
    if (count > prompts_seen && answered < answers.size()) {
      prompts_seen = count;
      const auto line = answers[answered++] + "\n";
      (void)!::write(master, line.data(), line.size());
    }
  }
  ::kill(pid, SIGKILL);
  int status = 0;
  ::waitpid(pid, &status, 0);
  ::close(master);
  return screen;
}

}  // namespace

TEST(ConfigCommand, InteractiveInATerminal) {
  TempDir dir{"accelerate_cli"};
  const auto file = dir / "terminal.yaml";
  // multi-CPU, 1 machine, 3 processes, a wrong answer re-asked, debug on, 4 accumulation steps, a wrong answer
  // re-asked, ZeRO stage 2, bf16
  const auto screen =
      run_in_terminal({kCli, "config", "--config_file", file}, {"1", "", "3", "maybe", "yes", "4", "7", "2", "2"});
  EXPECT_NE(screen.find("Please answer yes or no."), std::string::npos) << screen;
  EXPECT_NE(screen.find("Please enter a number between 0 and 3."), std::string::npos) << screen;  // ZeRO: 0-3
  EXPECT_NE(screen.find("configuration saved at " + file), std::string::npos) << screen;
  const auto yaml = read(file);
  for (const char* line : {"distributed_type: 'MULTI_CPU'", "num_processes: 3", "use_cpu: true", "debug: true",
                           "gradient_accumulation_steps: 4", "mixed_precision: 'bf16'", "zero_stage: 2"}) {
    EXPECT_NE(yaml.find(line), std::string::npos) << line << " missing from\n" << yaml;
  }
  // launch loads it: three processes, bf16, debug mode and the accumulation steps reach the workers.
  auto r = run({kCli, "launch", "--config_file", file, "--no_rank_prefix", "/bin/sh", "-c",
                "echo $RANK/$WORLD_SIZE $ACCELERATE_MIXED_PRECISION $ACCELERATE_DEBUG_MODE "
                "$ACCELERATE_GRADIENT_ACCUMULATION_STEPS $ACCELERATE_CPP_ZERO_STAGE"});
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("2/3 bf16 true 4 2"), std::string::npos) << r.output;
}

TEST(ConfigCommand, PipedAnswersAndAnEndedInput) {
  TempDir dir{"accelerate_cli"};
  const auto file = dir / "piped.yaml";
  auto r = run({"/bin/sh", "-c", "printf '0\\nyes\\nno\\n1\\n1\\n' | " + kCli + " config --config_file " + file});
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const auto yaml = read(file);
  EXPECT_NE(yaml.find("distributed_type: 'NO'"), std::string::npos) << yaml;
  EXPECT_NE(yaml.find("mixed_precision: 'fp16'"), std::string::npos) << yaml;
  // Input that ends early writes nothing and names the unanswered question.
  const auto cut = dir / "cut.yaml";
  r = run({"/bin/sh", "-c", "printf '1\\n' | " + kCli + " config --config_file " + cut});
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.output.find("the input ended before \"How many different machines"), std::string::npos) << r.output;
  EXPECT_FALSE(fs::exists(cut));
}

TEST(ConfigCommand, FlagsAndDefaultAndPythonReadsOurs) {
  TempDir dir{"accelerate_cli"};
  const auto file = dir / "local.yaml";
  auto r = run({kCli, "config", "--num_processes", "2", "--mixed_precision", "fp16", "--zero_stage", "2",
                "--config_file", file});
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const auto def = dir / "default.yaml";
  r = run({kCli, "config", "default"}, {{"ACCELERATE_CPP_CONFIG_FILE", def}});
  ASSERT_EQ(r.exit_code, 0) << r.output;
  r = run({kCli, "config", "default"}, {{"ACCELERATE_CPP_CONFIG_FILE", def}});
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.output.find("already exists; nothing was written"), std::string::npos) << r.output;
  // Python's accelerate loads both files with the values we wrote.
  r = run({kPython, "-c",
           "import sys\nfrom accelerate.commands.config.config_args import load_config_from_file as load\n"
           "a = load(sys.argv[1]); b = load(sys.argv[2])\n"
           "print(a.num_processes, a.mixed_precision, a.distributed_type.value, b.num_processes, b.mixed_precision,\n"
           "      a.deepspeed_config)",
           file, def});
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("2 fp16 MULTI_"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find(" 1 no {'zero_stage': 2}"), std::string::npos) << r.output;
}

TEST(ConfigCommand, PythonWrittenConfigLoadsAndLaunches) {
  TempDir dir{"accelerate_cli"};
  const auto file = dir / "python_default.yaml";
  auto r = run({kPython, "-m", "accelerate.commands.accelerate_cli", "config", "default", "--config_file", file,
                "--mixed_precision", "bf16"},
               {}, std::chrono::seconds(120));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  r = run({kCli, "launch", "--config_file", file, "/bin/sh", "-c",
           "echo precision=$ACCELERATE_MIXED_PRECISION world=$WORLD_SIZE"});
  ASSERT_EQ(r.exit_code, 0) << r.output << "\n" << read(file);
  EXPECT_NE(r.output.find("precision=bf16 world=1"), std::string::npos) << r.output;
  // Flags win over the file.
  r = run({kCli, "launch", "--config_file", file, "--num_processes", "2", "--cpu", "/bin/sh", "-c",
           "echo world=$WORLD_SIZE"});
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("world=2"), std::string::npos) << r.output;
  // A DeepSpeed section gives its ZeRO stage; its other keys are named in a warning. FSDP's FULL_SHARD is stage 3,
  // HYBRID_SHARD runs as stage 3 with a warning; fp8 is an error with its line.
  std::ofstream(dir / "ds.yaml") << "distributed_type: DEEPSPEED\ndeepspeed_config:\n  zero_stage: 1\n"
                                    "  offload_optimizer_device: cpu\nnum_processes: 1\n";
  r = run({kCli, "launch", "--config_file", dir / "ds.yaml", "/bin/sh", "-c", "echo zero=$ACCELERATE_CPP_ZERO_STAGE"});
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("zero=1"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("line 3: deepspeed_config keys offload_optimizer_device are not supported"),
            std::string::npos)
      << r.output;
  std::ofstream(dir / "fsdp.yaml") << "distributed_type: FSDP\nfsdp_config:\n  fsdp_sharding_strategy: FULL_SHARD\n";
  r = run(
      {kCli, "launch", "--config_file", dir / "fsdp.yaml", "/bin/sh", "-c", "echo zero=$ACCELERATE_CPP_ZERO_STAGE"});
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("zero=3"), std::string::npos) << r.output;
  std::ofstream(dir / "hybrid.yaml")
      << "distributed_type: FSDP\nfsdp_config:\n  fsdp_sharding_strategy: HYBRID_SHARD\n";
  r = run(
      {kCli, "launch", "--config_file", dir / "hybrid.yaml", "/bin/sh", "-c", "echo zero=$ACCELERATE_CPP_ZERO_STAGE"});
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("zero=3"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("line 3: fsdp_sharding_strategy HYBRID_SHARD shards within each machine"), std::string::npos)
      << r.output;
  r = run({kCli, "launch", "--zero_stage", "4", "/bin/true"});
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find("or 3 (parameters too), got 4"), std::string::npos) << r.output;
  std::ofstream(dir / "fp8.yaml") << "num_processes: 1\nmixed_precision: fp8\n";
  r = run({kCli, "launch", "--config_file", dir / "fp8.yaml", "/bin/true"});
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find("line 2: mixed_precision fp8 is not supported"), std::string::npos) << r.output;
  // The flag is parsed where it is given (issue 24, item 6): a usage error before anything starts.
  r = run({kCli, "launch", "--mixed_precision", "fp9", "/bin/true"});
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find("--mixed_precision: mixed_precision 'fp9' is not one of no, fp16, bf16."), std::string::npos)
      << r.output;
  r = run({kCli, "launch", "--mixed_precision", "BF16", "/bin/sh", "-c", "echo mp=$ACCELERATE_MIXED_PRECISION"});
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("mp=bf16"), std::string::npos) << r.output;
}

TEST(EnvCommand, MarkdownReport) {
  TempDir dir{"accelerate_cli"};
  auto r = run({kCli, "env"}, {{"ACCELERATE_CPP_CONFIG_FILE", dir / "none.yaml"}});
  ASSERT_EQ(r.exit_code, 0) << r.output;
  for (const char* key : {"- `accelerate-cpp` version:", "- LibTorch version: 2.11",
                          "- CUDA available:", "- CPU:", "- RAM:", "- Detected platform:", "config file: none at"}) {
    EXPECT_NE(r.output.find(key), std::string::npos) << key << " missing from\n" << r.output;
  }
}

TEST(TestCommand, FailsSayingWhichCheckBroke) {
  auto r = run({kCli, "test", "--cpu", "--num_processes", "2"},
               {{"ACCELERATE_CPP_TEST_BREAK", "training"}, {"ACCELERATE_CPP_CONFIG_FILE", "/nonexistent.yaml"}},
               std::chrono::seconds(120));
  EXPECT_NE(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("[FAIL] training -- trained a, b ="), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("1 of 7 checks failed: training"), std::string::npos) << r.output;
}

TEST(Cli, SuggestsTheNearestCommandAndFlag) {
  auto r = run({kCli, "lanch"});
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.output.find("Did you mean `accelerate-cpp launch`?"), std::string::npos) << r.output;
  r = run({kCli, "config", "--num_proceses", "2"});
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.output.find("Did you mean `--num_processes`"), std::string::npos) << r.output;
  r = run({kCli, "launch", "--mixed_precison", "bf16", "/bin/true"});
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.output.find("Did you mean '--mixed_precision'?"), std::string::npos) << r.output;
  r = run({kCli, "--version"});
  EXPECT_EQ(r.exit_code, 0);
  r = run({kCli, "config", "--help"});
  EXPECT_NE(r.output.find("--gradient_accumulation_steps"), std::string::npos) << r.output;
}

TEST(Cli, HelpShowsEveryFlagWithItsDefault) {
  for (const char* command : {"launch", "config", "env", "test"}) {
    auto r = run({kCli, command, "--help"});
    ASSERT_EQ(r.exit_code, 0) << r.output;
    // Each option's entry runs from its "  --" line to the next one (CLI11 wraps long descriptions).
    std::vector<std::string> entries;
    std::istringstream lines(r.output);
    for (std::string line; std::getline(lines, line);) {
      if (line.rfind("  --", 0) == 0)
        entries.push_back(line);
      else if (!entries.empty() && line.rfind("    ", 0) == 0)
        entries.back() += line;
    }
    EXPECT_FALSE(entries.empty()) << command;
    for (const auto& e : entries) {
      if (e.find("--help") != std::string::npos || e.find("--version") != std::string::npos) continue;
      EXPECT_NE(e.find("default"), std::string::npos) << command << ": " << e;
    }
  }
}

// Issue 23, item 10: `launch [flags] -- PROGRAM ARGS`, as torchrun and HF accept it.
TEST(Cli, LaunchTakesADoubleDashBeforeTheProgram) {
  auto r = run({kCli, "launch", "--cpu", "--no_rank_prefix", "--", "/bin/sh", "-c", "echo ran with $0 $1", "x", "--y"});
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("ran with x --y"), std::string::npos) << r.output;
}

// Issue 23, item 12: counts near int64's maximum give correct (large) figures, never negative ones; a count beyond
// it is an error, not a clamped value.
TEST(Cli, EstimateMemoryNeitherOverflowsNorClamps) {
  auto r = run({kCli, "estimate-memory", "--num_parameters", "9223372036854775807", "--num_processes", "3"});
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_EQ(r.output.find("| -"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("32.00 EiB"), std::string::npos) << r.output;  // 2^63 float32 weights: 2^65 bytes
  r = run({kCli, "estimate-memory", "--num_parameters", "99999999999999999999"});
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find("--num_parameters 99999999999999999999 is larger than"), std::string::npos) << r.output;
  r = run({kCli, "estimate-memory", "--num_parameters", "12x"});
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find("must be a whole number, got '12x'"), std::string::npos) << r.output;
}
