// The W&B tracker: W&B's own SDK (PyPI `wandb`) in a helper Python process, fed JSON lines through a socket by a
// writer thread, so that training never waits for W&B and never stops because of it (a helper that dies or falls
// behind is a warning, once; the other trackers go on). The helper honours W&B's environment (WANDB_MODE,
// WANDB_PROJECT, WANDB_DIR, WANDB_API_KEY, ...), which it inherits.
#include <accelerate/tracking.hpp>

#include <accelerate/error.hpp>

#include <atomic>
#include <chrono>
#include <cstring>
#include <cstdlib>
#include <iostream>
#include <memory>

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include "detail/background_sender.hpp"
#include "detail/error_text.hpp"
#include "detail/tracking_io.hpp"

extern char** environ;

namespace accelerate {
namespace {
using detail::concat;
using nlohmann::json;

// The helper: the first line is wandb.init's arguments; it answers one line (ok, or the error), then logs each
// line it reads until "finish" or the end of its input (this process died: the run is marked failed).
constexpr const char* kHelper = R"PY(
import json, os, sys, warnings
warnings.filterwarnings("ignore")  # the SDK's dependencies' deprecation notes are not the user's business
def answer(**kw):
    sys.stdout.write(json.dumps(kw) + "\n"); sys.stdout.flush()
try:
    import wandb
except Exception as e:
    answer(error=f"cannot import wandb ({type(e).__name__}: {e})"); sys.exit(3)
start = json.loads(sys.stdin.readline())
try:
    project = os.environ.get("WANDB_PROJECT") or start["project"]
    run = wandb.init(project=project, config=start["config"], **start["init_kwargs"])
except Exception as e:
    answer(error=f"wandb.init failed: {type(e).__name__}: {e}"); sys.exit(4)
answer(ok=True, dir=run.dir, project=project)
code = 1
for line in sys.stdin:
    m = json.loads(line)
    if m["op"] == "log":
        run.log(m["values"], step=m["step"])
    elif m["op"] == "config":
        run.config.update(m["config"], allow_val_change=True)
    elif m["op"] == "finish":
        code = 0
        break
run.finish(exit_code=code)
)PY";

/// ACCELERATE_CPP_PYTHON, else python3 on the PATH.
std::string python_program() {
  const char* p = std::getenv("ACCELERATE_CPP_PYTHON");
  return p && *p ? p : "python3";
}

json values_json(const LogValues& values) {
  json out = json::object();
  for (const auto& [k, v] : values) out[k] = detail::log_value_json(v);
  return out;
}

/// HF's init_kwargs["wandb"]: each value as the JSON it spells (["a", "b"], true, 3), else as text.
json kwargs_json(const std::map<std::string, std::string>& kwargs) {
  json out = json::object();
  for (const auto& [k, v] : kwargs) {
    auto parsed = json::parse(v, nullptr, /*allow_exceptions=*/false);
    out[k] = parsed.is_discarded() ? json(v) : parsed;
  }
  return out;
}

class WandbTracker final : public Tracker {
 public:
  WandbTracker(const std::string& project, const LogValues& config, const std::map<std::string, std::string>& kwargs) {
    spawn();
    const auto start =
        json{{"project", project}, {"config", values_json(config)}, {"init_kwargs", kwargs_json(kwargs)}}.dump() + "\n";
    const auto reply = handshake(start);
    const auto error = reply.value("error", std::string("no answer"));
    const bool no_sdk = error.rfind("cannot import wandb", 0) == 0;
    ACCELERATE_CHECK(reply.value("ok", false), ConfigError, "log_with wandb: ", error, " (Python: ", python_program(),
                     "). ",
                     no_sdk ? "Install W&B's SDK for it (pip install wandb), or point ACCELERATE_CPP_PYTHON at a "
                              "Python that has it; for a run without an account, WANDB_MODE=offline."
                            : "Check W&B's settings (WANDB_MODE, WANDB_API_KEY or `wandb login`, init_kwargs); for a "
                              "run without an account or network, WANDB_MODE=offline.");
    sender_ = std::make_unique<detail::BackgroundSender<std::string>>(
        10000, [this](const std::string& line) { return write(line); });
  }
  ~WandbTracker() override { finish(); }

  std::string name() const override { return "wandb"; }
  void store_init_configuration(const LogValues& config) override {
    send(json{{"op", "config"}, {"config", values_json(config)}});
  }
  void log(const LogValues& values, int64_t step) override {
    send(json{{"op", "log"}, {"step", step}, {"values", values_json(values)}});
  }
  void finish() override {
    if (pid_ <= 0) return;
    send(json{{"op", "finish"}});
    sender_->close(std::chrono::seconds(60));  // what is queued, unless the helper is gone
    sender_.reset();
    ::close(socket_);
    // W&B syncs (or writes its offline files) in finish: give it a minute, then stop it.
    for (int i = 0; i < 600 && ::waitpid(pid_, nullptr, WNOHANG) == 0; ++i) ::usleep(100000);
    if (::waitpid(pid_, nullptr, WNOHANG) == 0) {
      warn("its helper did not end within 60 s of finish; stopping it");
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
    }
    pid_ = -1;
  }

 private:
  /// The helper with its stdin on one end of a socket pair (send's MSG_NOSIGNAL: a dead helper is an error code,
  /// never SIGPIPE) and its stdout on a pipe for its one answer.
  void spawn() {
    int sockets[2], answer[2];
    ACCELERATE_CHECK(
        ::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sockets) == 0 && ::pipe2(answer, O_CLOEXEC) == 0,
        ConfigError, "log_with wandb: cannot make the pipes for its helper process.");
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_adddup2(&actions, sockets[1], 0);
    posix_spawn_file_actions_adddup2(&actions, answer[1], 1);
    // Nothing else of this process (c10d's sockets, data files) is the helper's to hold open.
    posix_spawn_file_actions_addclosefrom_np(&actions, 3);
    const auto program = python_program();
    std::vector<std::string> args{program, "-u", "-c", kHelper};
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    // A preemption notice is the trainer's to handle: SLURM signals every process of the step and the launcher a
    // worker's process group, and a helper that died of it would leave the W&B run unfinished. The helper gets its
    // own process group (no forwarded signal, no Ctrl-C) and SIGTERM, SIGUSR1 and SIGINT blocked; it ends when the
    // trainer closes its input.
    posix_spawnattr_t attributes;
    posix_spawnattr_init(&attributes);
    sigset_t blocked;
    sigemptyset(&blocked);
    for (int sig : {SIGTERM, SIGUSR1, SIGINT}) sigaddset(&blocked, sig);
    posix_spawnattr_setsigmask(&attributes, &blocked);
    posix_spawnattr_setpgroup(&attributes, 0);
    posix_spawnattr_setflags(&attributes, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETPGROUP);
    const int rc = ::posix_spawnp(&pid_, program.c_str(), &actions, &attributes, argv.data(), environ);
    posix_spawnattr_destroy(&attributes);
    posix_spawn_file_actions_destroy(&actions);
    ::close(sockets[1]);
    ::close(answer[1]);
    socket_ = sockets[0];
    answer_ = answer[0];
    if (rc != 0) {
      ::close(socket_), ::close(answer_), pid_ = -1;
      throw ConfigError(concat("log_with wandb: cannot start ", program, " (", std::strerror(rc),
                               "). W&B's SDK runs in Python: install Python and W&B (pip install wandb), or point "
                               "ACCELERATE_CPP_PYTHON at a Python that has it."));
    }
  }

  /// Sends wandb.init's arguments and reads the helper's answer (up to 120 s: an online init contacts the server).
  json handshake(const std::string& start) {
    const bool sent = ::send(socket_, start.data(), start.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(start.size());
    std::string line;
    pollfd p{answer_, POLLIN, 0};
    while (sent && line.find('\n') == std::string::npos && ::poll(&p, 1, 120000) > 0) {
      char buffer[4096];
      const ssize_t n = ::read(answer_, buffer, sizeof buffer);
      if (n <= 0) break;
      line.append(buffer, static_cast<size_t>(n));
    }
    ::close(answer_);
    auto reply = json::parse(line.substr(0, line.find('\n')), nullptr, false);
    if (!reply.is_object()) {
      reply = json{{"error", line.empty() ? "its helper process ended or did not answer within 120 s"
                                          : "its helper process answered '" + line.substr(0, 200) + "'"}};
    }
    if (!reply.value("ok", false)) {
      ::close(socket_);
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
      pid_ = -1;
    }
    return reply;
  }

  /// Queued for the sender's thread: never blocks the training loop.
  void send(const json& message) {
    if (!sender_ || gone_) return;
    if (!sender_->push(message.dump() + "\n") && !gone_ && !behind_said_.exchange(true)) {
      warn("its helper fell 10000 messages behind; dropping messages until it catches up");
    }
  }

  /// One line to the helper, on the sender's thread; Stop (everything queued dropped) once the helper is gone.
  detail::SendOutcome write(const std::string& line) {
    size_t done = 0;
    while (done < line.size()) {
      const ssize_t n = ::send(socket_, line.data() + done, line.size() - done, MSG_NOSIGNAL);
      if (n <= 0) break;
      done += static_cast<size_t>(n);
    }
    if (done == line.size()) return detail::SendOutcome::Sent;
    const int error = errno;
    gone_ = true;
    warn(concat("its helper process (pid ", pid_, ") is gone (", std::strerror(error),
                "); training goes on without W&B, the other trackers keep logging"));
    return detail::SendOutcome::Stop;
  }

  static void warn(const std::string& what) {
    std::cerr << "accelerate: warning: wandb tracker: " << what << std::endl;
  }

  pid_t pid_ = -1;
  int socket_ = -1, answer_ = -1;
  std::atomic<bool> gone_{false}, behind_said_{false};
  std::unique_ptr<detail::BackgroundSender<std::string>> sender_;  // last: its thread uses the members above
};

}  // namespace

std::unique_ptr<Tracker> make_wandb_tracker(const std::string& project_name, const LogValues& config,
                                            const std::map<std::string, std::string>& init_kwargs) {
  return std::make_unique<WandbTracker>(project_name, config, init_kwargs);
}

}  // namespace accelerate
