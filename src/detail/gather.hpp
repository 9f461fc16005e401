// Internal: all-gather of tensors whose first dim differs between ranks, in one round when it can.
#pragma once

#include <ATen/core/Tensor.h>
#include <vector>

namespace accelerate::detail {

class Communicator;

/// One tensor per rank, in rank order; dtype and every dim but the first must agree (else
/// DistributedOperationError on every rank, and the group stays usable).
///
/// Each rank sends a fixed header (dtype, shape) followed by its bytes, in a buffer of `capacity` bytes that every
/// rank derives from the sizes of the previous gathers on this group (all ranks saw the same headers, so they
/// agree without talking). When everyone's data fits, that is the only round; otherwise the headers tell each
/// rank the exact sizes for a second round. Repeated gathers of the same or smaller size, the common case in a
/// loop (a short last batch included), cost one collective.
std::vector<at::Tensor> all_gather_uneven(Communicator& comm, const at::Tensor& tensor, const char* op);

/// The same, concatenated along dim 0 (what `gather` returns).
at::Tensor all_gather_concat(Communicator& comm, const at::Tensor& tensor, const char* op);

}  // namespace accelerate::detail
