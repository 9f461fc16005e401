// The process tree below the launcher, read from /proc (Linux).
#pragma once

#include <sys/types.h>

#include <vector>

namespace accelerate::launcher {

/// The live (non-zombie) processes whose parent is `parent`.
std::vector<pid_t> children_of(pid_t parent);

/// The process is stopped (SIGSTOP, SIGTSTP) or held by a debugger: /proc's state T or t.
bool is_stopped(pid_t pid);

}  // namespace accelerate::launcher
