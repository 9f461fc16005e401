// Collectives over the process group of a ProcessState, with HF Accelerate's names and semantics
// (utils/operations.py). Every rank must call the same collectives in the same order; each one fails with a
// DistributedOperationError (TimeoutError after the state's timeout) instead of hanging when a peer is gone.
// A single process is a valid world of one: every call then works locally.
//
// Every collective takes the caller's source location (a defaulted last argument: leave it out). The hang report
// publishes it, so that when the processes call different collectives (a certain deadlock, e.g. one inside
// `if (is_main_process())`) each of them fails within seconds with a message naming every process's call and line,
// instead of waiting for the timeout.
#pragma once

#include <accelerate/guard.hpp>

#include <algorithm>
#include <cstdint>
#include <iostream>
#include <source_location>
#include <vector>

#include <ATen/core/Tensor.h>
#include <ATen/core/ivalue.h>

#include <accelerate/batch.hpp>
#include <accelerate/error.hpp>
#include <accelerate/objects.hpp>
#include <accelerate/process_state.hpp>

namespace accelerate {

enum class Reduction { Sum, Mean, Max };

/// All-gathers `tensor` along dim 0 in rank order. First dims may differ between ranks (they are padded,
/// gathered and trimmed); the other dims must agree. A 0-dim tensor is gathered as one row per rank.
at::Tensor gather(const ProcessState& state, const at::Tensor& tensor,
                  std::source_location where = std::source_location::current());

/// All-gathers one object per rank, in rank order. Objects are anything an IValue holds: numbers, strings,
/// tensors, lists and dicts of those.
std::vector<c10::IValue> gather_object(const ProcessState& state, const c10::IValue& object,
                                       std::source_location where = std::source_location::current());

/// All-gathers lists and concatenates them in rank order (HF: gather_object of a list).
template <class T>
std::vector<T> gather_object(const ProcessState& state, const std::vector<T>& objects,
                             std::source_location where = std::source_location::current());

/// Broadcasts `tensor` from `from_process` in place (shapes must agree) and returns it.
at::Tensor broadcast(const ProcessState& state, at::Tensor tensor, int from_process = 0,
                     std::source_location where = std::source_location::current());

/// Replaces `objects` on every rank with the list held by `from_process` (HF: in place).
void broadcast_object_list(const ProcessState& state, std::vector<c10::IValue>& objects, int from_process = 0,
                           std::source_location where = std::source_location::current());
/// The same for plain C++ values (objects.hpp: numbers, strings, vectors, string-keyed maps, nlohmann::json), so a
/// config needs no c10::Dict: `std::vector<nlohmann::json> config{cfg}; broadcast_object_list(state, config);`.
/// Throws DistributedOperationError when a received value does not convert to T (a rank that sent another type).
template <class T>
requires(!std::is_same_v<T, c10::IValue>) void broadcast_object_list(
    const ProcessState& state, std::vector<T>& objects, int from_process = 0,
    std::source_location where = std::source_location::current()) {
  std::vector<c10::IValue> wire;
  if (state.process_index() == from_process)
    for (const auto& o : objects) wire.push_back(detail::to_ivalue(o));
  broadcast_object_list(state, wire, from_process, where);
  if (state.process_index() == from_process) return;
  objects.clear();
  for (const auto& w : wire) {
    try {
      objects.push_back(detail::from_ivalue<T>(w));
    } catch (const c10::Error&) {
      throw DistributedOperationError(
          detail::concat("broadcast_object_list (", where.file_name(), ":", where.line(), "): process ", from_process,
                         " sent a ", w.tagKind(),
                         " (or a list or map holding one) where this process expects another type; every process "
                         "must pass a std::vector of the same element type."));
    }
  }
}

/// All-reduces a copy of `tensor`. Mean divides the sum by the number of processes (floating dtypes only).
at::Tensor reduce(const ProcessState& state, const at::Tensor& tensor, Reduction reduction = Reduction::Mean,
                  std::source_location where = std::source_location::current());
/// HF's string form: "sum", "mean", and "none", which sums as HF's does; also "max". Else a ConfigError.
at::Tensor reduce(const ProcessState& state, const at::Tensor& tensor, const std::string& reduction,
                  std::source_location where = std::source_location::current());

/// Pads `tensor` along `dim` to the largest size any rank holds there, with `pad_index`, at the end
/// (at the front with `pad_first`). A `dim` out of range returns the tensor unchanged, as in HF.
at::Tensor pad_across_processes(const ProcessState& state, const at::Tensor& tensor, int64_t dim = 0,
                                double pad_index = 0, bool pad_first = false,
                                std::source_location where = std::source_location::current());

// ---- the same over a Batch of named tensors: per field, in name order (HF's recursively_apply) ----
// Every rank must hold the same field names; in debug mode the names are compared first, and a mismatch is a
// DistributedOperationError naming them (without it, a missing field leaves the others waiting until the timeout).

Batch gather(const ProcessState& state, const Batch& batch,
             std::source_location where = std::source_location::current());
Batch broadcast(const ProcessState& state, const Batch& batch, int from_process = 0,
                std::source_location where = std::source_location::current());
Batch reduce(const ProcessState& state, const Batch& batch, Reduction reduction = Reduction::Mean,
             std::source_location where = std::source_location::current());
Batch reduce(const ProcessState& state, const Batch& batch, const std::string& reduction,
             std::source_location where = std::source_location::current());
Batch pad_across_processes(const ProcessState& state, const Batch& batch, int64_t dim = 0, double pad_index = 0,
                           bool pad_first = false, std::source_location where = std::source_location::current());

/// Barrier: returns once every rank has called it.
void wait_for_everyone(const ProcessState& state, std::source_location where = std::source_location::current());

namespace detail {
struct SplitRange {
  int64_t start, end, padded_length;
};
/// HF's split: the first `length % world` ranks get one more item; padded_length is what every rank would
/// hold with padding. A rank whose start is past the end gets an empty share (as HF since its PR #4052).
SplitRange split_range(int64_t length, int rank, int world);
}  // namespace detail

/// This rank's share of `inputs` (HF: `with split_between_processes(inputs) as part`). With `apply_padding`
/// every rank gets the same count, the short ones repeating the last input. With fewer items than processes the
/// last ranks get an empty share (padded: the last input): 2 processes and {"p0"} give {"p0"} and {}.
template <class T>
std::vector<T> split_between_processes(const ProcessState& state, const std::vector<T>& inputs,
                                       bool apply_padding = false);
/// The same along dim 0 of a tensor.
at::Tensor split_between_processes(const ProcessState& state, const at::Tensor& inputs, bool apply_padding = false);

/// RAII: the main process (or each node's local main) runs the guarded block first, the others wait for it.
/// If the block throws, the guard skips its barrier: the waiting ranks then fail with a TimeoutError rather
/// than the whole job hanging on a process that is unwinding.
class [[nodiscard]] MainProcessFirstGuard : Guard {
 public:
  MainProcessFirstGuard(const ProcessState& state, bool is_first,
                        std::source_location where = std::source_location::current());
  ~MainProcessFirstGuard();

 private:
  const ProcessState& state_;
  bool is_first_;
  int uncaught_at_entry_;
  std::source_location where_;
};

/// `auto guard = main_process_first(state); download_or_preprocess();`
inline MainProcessFirstGuard main_process_first(const ProcessState& state,
                                                std::source_location where = std::source_location::current()) {
  return MainProcessFirstGuard(state, state.is_main_process(), where);
}
inline MainProcessFirstGuard local_main_process_first(const ProcessState& state,
                                                      std::source_location where = std::source_location::current()) {
  return MainProcessFirstGuard(state, state.is_local_main_process(), where);
}

/// Prints the arguments separated by spaces, as Python's print, on the local main process only (as HF's
/// PartialState.print).
template <class... Args>
void print(const ProcessState& state, const Args&... args) {
  if (!state.is_local_main_process()) return;
  bool first = true;
  ((std::cout << (first ? "" : " ") << args, first = false), ...);
  std::cout << std::endl;
}

// ---- templates ----------------------------------------------------------------------------------------------

template <class T>
std::vector<T> gather_object(const ProcessState& state, const std::vector<T>& objects, std::source_location where) {
  c10::impl::GenericList list(c10::AnyType::get());
  for (const auto& object : objects) list.push_back(c10::IValue(object));
  std::vector<T> result;
  for (const auto& part : gather_object(state, c10::IValue(std::move(list)), where)) {
    for (const auto& item : part.toListRef()) result.push_back(item.to<T>());
  }
  return result;
}

template <class T>
std::vector<T> split_between_processes(const ProcessState& state, const std::vector<T>& inputs, bool apply_padding) {
  if (state.num_processes() == 1 || inputs.empty()) return inputs;
  const auto range =
      detail::split_range(static_cast<int64_t>(inputs.size()), state.process_index(), state.num_processes());
  std::vector<T> part(inputs.begin() + range.start, inputs.begin() + range.end);
  if (apply_padding) {
    while (static_cast<int64_t>(part.size()) < range.padded_length) part.push_back(inputs.back());
  }
  return part;
}

}  // namespace accelerate
