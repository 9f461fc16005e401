// Which worker caused a failed run. The first rank to exit is often not the culprit: when a rank stops answering
// (SIGSTOP, a hang, a network cut), its peers are the ones that time out and exit. Each worker's collective
// failures are recorded in an error file (ACCELERATE_CPP_ERROR_FILE, as torchrun's TORCHELASTIC_ERROR_FILE) naming
// the ranks it was waiting for; blame() weighs those against how each worker ended. Pure: no processes.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace accelerate::launcher {

/// What a worker's error file says: its collective failed, and which ranks it was waiting for.
struct CollectiveFailure {
  std::string error;       ///< "TimeoutError" or "DistributedOperationError"
  std::string operation;   ///< e.g. "reduce", "backward (gradient all-reduce)"
  int64_t collective = 0;  ///< the collective's number on that rank
  std::vector<int> missing_ranks;
};

/// Parses an error file written by the library; nullopt when it is absent or unreadable (never throws).
std::optional<CollectiveFailure> read_collective_failure(const std::string& path);

struct WorkerOutcome {
  int rank = 0;
  bool failed = false;     ///< exited non-zero or was killed, not by the launcher's stop
  int failure_order = -1;  ///< 0 for the first failure the launcher saw, 1 for the next, ...
  bool frozen = false;     ///< was stopped (SIGSTOP, a debugger) when the first failure came
  std::optional<CollectiveFailure> collective;
};

struct Blame {
  int rank = -1;              ///< the rank blamed (possibly on another machine)
  int first_failure = -1;     ///< index of the first worker that failed
  bool unresponsive = false;  ///< blamed because others timed out waiting for it, not because it failed itself
  std::string reason;         ///< for `unresponsive`: "rank 0 timed out in collective #3 (reduce) waiting for it"
};

/// The likely cause among `workers` (this machine's), by these rules in order:
///  0. a worker that was frozen (stopped) when the first failure came: nothing it did can have failed, but
///     everyone waiting for it did (even before a collective, e.g. in the rendezvous);
///  1. a worker that failed on its own (no collective failure recorded), the earliest such;
///  2. the rank(s) the earliest collective failure was waiting for (`unresponsive`);
///  3. the first failure.
/// Precondition: at least one worker failed.
Blame blame(const std::vector<WorkerOutcome>& workers);

}  // namespace accelerate::launcher

namespace accelerate::launcher {

/// A private folder for the workers' error files, removed with everything in it on destruction.
class ErrorFiles {
 public:
  ErrorFiles();
  ~ErrorFiles();
  ErrorFiles(const ErrorFiles&) = delete;
  ErrorFiles& operator=(const ErrorFiles&) = delete;
  /// Where rank `rank` records its collective failure; empty if the folder could not be made (no blame then).
  std::string path_for(int rank) const;

 private:
  std::string dir_;
};

}  // namespace accelerate::launcher
