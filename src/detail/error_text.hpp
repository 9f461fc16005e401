// An exception's message as a user should read it, for errors that wrap a library's (c10, gloo, the standard
// library). Not in error.hpp: that header is torch-free (the CLI's), and c10's errors need LibTorch.
#pragma once

#include <exception>
#include <string>

namespace accelerate::detail {

/// An exception's message without c10's 15-frame C++ stack trace (useless to a user, and it buries the hint),
/// cut at 2000 characters.
std::string message_of(const std::exception& error);

}  // namespace accelerate::detail
