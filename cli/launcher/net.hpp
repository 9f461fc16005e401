// Ports for the rendezvous: pick a free one, or make sure a requested one is free before starting anything.
#pragma once

namespace accelerate::launcher {

/// A TCP port the kernel reports free right now (bind to port 0, read it back, close).
int pick_free_port();

/// Throws LaunchError naming the port and the fix when something already listens on `port`.
void ensure_port_free(int port);

}  // namespace accelerate::launcher
