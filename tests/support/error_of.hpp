// The message of the error a call throws, for tests that check what a user would read.
#pragma once

#include <functional>
#include <string>

namespace accelerate::testing {

/// What `f` throws as an E (what()), or "" when it returns. An error of another type escapes, so the test fails
/// naming it instead of passing on a message that happens to match.
template <class E>
std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const E& e) {
    return e.what();
  }
  return "";
}

}  // namespace accelerate::testing
