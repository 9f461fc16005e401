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

/// Runs `body` (returning the exit code); an exception it throws is printed as "<prefix><message>" on stderr and
/// becomes exit_code_for(it): a message and an exit code, never an abort. `int main(int argc, char** argv) {
/// return accelerate::run_main("train: ", [&] { ...; return 0; }); }`.
template <class F>
int run_main(std::string_view prefix, F&& body) {
  try {
    return body();
  } catch (const std::exception& e) {
    std::cerr << prefix << e.what() << std::endl;
    return exit_code_for(e);
  }
}

}  // namespace accelerate
