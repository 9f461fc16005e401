// Internal: collectives the library makes for itself (not the user's), on the CPU side of the group.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <vector>

namespace accelerate {
class ProcessState;
}

namespace accelerate::detail {

/// Broadcasts a CPU tensor from `root` in place, through the group's Gloo backend whatever the job's device, and
/// outside debug mode's checks (which are about the user's collectives); the hang report names it `op`. Nothing
/// happens in a world of one.
void broadcast_internal(const ProcessState& state, at::Tensor& tensor, int root, const char* op);

/// Whether `mine` is true on any process: a one-element MAX all-reduce on the CPU backend, named `op` in the hang
/// report. `mine` itself in a world of one.
bool any_process(const ProcessState& state, bool mine, const char* op);

/// Every rank's `mine` (the same length on every rank), in rank order: one all-gather on the CPU backend, named
/// `op` in the hang report. {mine} in a world of one.
std::vector<std::vector<int32_t>> all_gather_ints(const ProcessState& state, const std::vector<int32_t>& mine,
                                                  const char* op);

}  // namespace accelerate::detail
