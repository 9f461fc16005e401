// The one error hierarchy of accelerate-cpp, and the check macro that raises it.
// Every message says what went wrong, where (variable, flag, rank) and how to fix it.
#pragma once

#include <sstream>
#include <stdexcept>
#include <string>

namespace accelerate {

/// Base of every error the library throws.
class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// Bad configuration: options, launcher flags, environment variables, config files.
class ConfigError : public Error {
 public:
  using Error::Error;
};

/// An operation called in a state that does not allow it (e.g. a collective after shutdown).
class StateError : public Error {
 public:
  using Error::Error;
};

/// A collective or rendezvous failed: a peer died, stalled or disagrees on shapes.
class DistributedOperationError : public Error {
 public:
  using Error::Error;
};

/// A collective or rendezvous did not finish within its timeout.
class TimeoutError : public DistributedOperationError {
 public:
  using DistributedOperationError::DistributedOperationError;
};

/// A checkpoint or tensor file is missing, truncated, malformed or does not match what it is loaded into.
class CheckpointError : public Error {
 public:
  using Error::Error;
};

/// The launcher could not start or supervise the worker processes.
class LaunchError : public Error {
 public:
  using Error::Error;
};

/// A dataset's get() or a collate failed while loading a batch: the message names the sample index, the batch,
/// the epoch and the rank, then the original error. (A ConfigError or CheckpointError thrown by the dataset keeps
/// its type, with the same message.)
class DataError : public Error {
 public:
  using Error::Error;
};

namespace detail {
template <class... Args>
std::string concat(const Args&... args) {
  std::ostringstream out;
  (out << ... << args);
  return out.str();
}
}  // namespace detail

}  // namespace accelerate

/// Throws `ErrorType` with the streamed message unless `cond` holds:
/// `ACCELERATE_CHECK(n > 0, ConfigError, "--num_processes must be >= 1, got ", n);`
#define ACCELERATE_CHECK(cond, ErrorType, ...)                                  \
  do {                                                                          \
    if (!(cond)) {                                                              \
      throw ::accelerate::ErrorType(::accelerate::detail::concat(__VA_ARGS__)); \
    }                                                                           \
  } while (false)
