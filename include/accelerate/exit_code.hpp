// A program's exit code for the error that ended it, the same for `accelerate-cpp`, the examples and a user's
// main(): 2 for a usage or configuration error (a bad flag or value: ConfigError), 1 for any other error; with 0
// and kExitPreempted (75, preemption.hpp) these are the codes the launcher reports and acts on.
#pragma once

#include <accelerate/error.hpp>

#include <exception>
#include <iostream>
#include <string_view>

namespace accelerate {

inline constexpr int kExitError = 1;
inline constexpr int kExitUsage = 2;

/// kExitUsage for a ConfigError, else kExitError.
inline int exit_code_for(const std::exception& e) {
  return dynamic_cast<const ConfigError*>(&e) ? kExitUsage : kExitError;
}

/// `what` without the C++ stack trace that LibTorch's c10::Error appends ("Exception raised from ... (most recent
/// call first):" and its frames): a user reads the message, and the frames bury it. Found by its text, so that this
/// header stays free of LibTorch.
inline std::string_view without_stack_trace(std::string_view what) {
  const auto at = what.find("\nException raised from ");
  return at == std::string_view::npos ? what : what.substr(0, at);
}

/// Runs `body` (returning the exit code); an exception it throws is printed as "<prefix><message>" on stderr
/// (without_stack_trace) and becomes exit_code_for(it): a message and an exit code, never an abort.
/// `int main(int argc, char** argv) { return accelerate::run_main("train: ", [&] { ...; return 0; }); }`.
template <class F>
int run_main(std::string_view prefix, F&& body) {
  try {
    return body();
  } catch (const std::exception& e) {
    std::cerr << prefix << without_stack_trace(e.what()) << std::endl;
    return exit_code_for(e);
  }
}

}  // namespace accelerate
