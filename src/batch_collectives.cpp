// The collectives over a Batch: each field through the tensor collective of the same name, in name order.
#include <accelerate/collectives.hpp>

#include "detail/communicator.hpp"

namespace accelerate {
namespace {

/// In debug mode, every rank holds the same field names (else each rank would call a different number of
/// collectives and the others would wait until the timeout).
void check_same_fields(const ProcessState& state, const Batch& batch, const char* op) {
  const auto* comm = detail::communicator_of(state);
  if (!comm || !comm->debug()) return;
  std::string mine;
  for (const auto& name : batch.names()) mine.append(mine.empty() ? "" : ", ").append(name);
  const auto all = gather_object(state, c10::IValue(mine));
  for (size_t r = 0; r < all.size(); ++r) {
    ACCELERATE_CHECK(all[r].toStringRef() == mine, DistributedOperationError, op, " of a Batch: rank ",
                     state.process_index(), " holds the fields {", mine, "} but rank ", r, " holds {",
                     all[r].toStringRef(), "}; every rank must pass a batch with the same fields.");
  }
}

Batch per_field(const ProcessState& state, const Batch& batch, const char* op, const std::source_location& where,
                const std::function<at::Tensor(const at::Tensor&)>& f) {
  detail::CallScope call(detail::communicator_of(state), op, where);
  check_same_fields(state, batch, op);
  return apply(batch, f);
}

}  // namespace

Batch gather(const ProcessState& state, const Batch& batch, std::source_location where) {
  return per_field(state, batch, "gather", where, [&](const at::Tensor& t) { return gather(state, t); });
}

Batch broadcast(const ProcessState& state, const Batch& batch, int from_process, std::source_location where) {
  return per_field(state, batch, "broadcast", where,
                   [&](const at::Tensor& t) { return broadcast(state, t.clone(), from_process); });
}

Batch reduce(const ProcessState& state, const Batch& batch, Reduction reduction, std::source_location where) {
  return per_field(state, batch, "reduce", where, [&](const at::Tensor& t) { return reduce(state, t, reduction); });
}

Batch reduce(const ProcessState& state, const Batch& batch, const std::string& reduction, std::source_location where) {
  return per_field(state, batch, "reduce", where, [&](const at::Tensor& t) { return reduce(state, t, reduction); });
}

Batch pad_across_processes(const ProcessState& state, const Batch& batch, int64_t dim, double pad_index, bool pad_first,
                           std::source_location where) {
  return per_field(state, batch, "pad_across_processes", where,
                   [&](const at::Tensor& t) { return pad_across_processes(state, t, dim, pad_index, pad_first); });
}

}  // namespace accelerate
