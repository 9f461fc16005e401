// Collectives as free functions over a ProcessState's group. Each is one or two c10d calls; the only logic
// here is what HF adds on top (uneven gathers, padding, object pickling, mean on Gloo).
#include <accelerate/collectives.hpp>

#include <ATen/ATen.h>
#include <algorithm>
#include <optional>
#include <torch/csrc/jit/serialization/pickle.h>

#include "detail/communicator.hpp"
#include "detail/gather.hpp"
#include "detail/internal_collectives.hpp"

namespace accelerate {
namespace {

using detail::concat;

/// The communicator of a multi-process state; nullptr for a world of one.
detail::Communicator* comm_of(const ProcessState& state, const char* op) {
  auto* comm = detail::communicator_of(state);
  if (comm) comm->check_usable(op);
  return comm;
}

/// The preamble every collective shares, with its name given once: the group's usability check, the hang report's
/// scope while it runs (with the program's call and line: the collective itself unless it runs inside another
/// public call), debug mode's cross-rank check, and waits that turn failures into our errors. False (and nothing
/// happens) in a world of one.
class Collective {
 public:
  Collective(const ProcessState& state, const char* op, const std::source_location& where = {})
      : state_(state), comm_(comm_of(state, op)), call_(comm_, op, where), op_(op) {
    if (comm_) scope_.emplace(*comm_, op);
  }
  explicit operator bool() const { return comm_ != nullptr; }
  detail::Communicator& comm() { return *comm_; }
  const char* op() const { return op_; }
  /// Debug mode: every rank shares `tensor`'s operation, dtype, device and shape first.
  void verify(const at::Tensor& tensor, detail::ShapeRule rule, int root = -1) {
    comm_->verify(op_, tensor, rule, state_.device().type(), root);
  }
  void wait(const c10::intrusive_ptr<c10d::Work>& work) { comm_->wait(work, op_); }

 private:
  const ProcessState& state_;
  detail::Communicator* comm_;
  detail::CallScope call_;
  const char* op_;
  std::optional<detail::CollectiveScope> scope_;
};

/// Every rank's shape, exchanged through the CPU backend. All ranks must have the same number of dims.
std::vector<std::vector<int64_t>> all_shapes(detail::Communicator& comm, const at::Tensor& tensor, const char* op) {
  constexpr int64_t kMaxDims = 15;
  ACCELERATE_CHECK(tensor.dim() <= kMaxDims, DistributedOperationError, op, ": tensors with more than ", kMaxDims,
                   " dims are not supported (got ", tensor.dim(), ").");
  auto local = at::full({kMaxDims + 1}, -1, at::kLong);
  local[0] = tensor.dim();
  for (int64_t d = 0; d < tensor.dim(); ++d) local[d + 1] = tensor.size(d);
  std::vector<at::Tensor> input{local};
  std::vector<std::vector<at::Tensor>> output(1);
  for (int r = 0; r < comm.world_size(); ++r) output[0].push_back(at::empty_like(local));
  comm.wait(comm.cpu_backend().allgather(output, input), op);
  std::vector<std::vector<int64_t>> shapes;
  for (const auto& t : output[0]) {
    auto a = t.accessor<int64_t, 1>();
    shapes.emplace_back(&a[1], &a[1] + a[0]);
  }
  for (int r = 0; r < comm.world_size(); ++r) {
    if (shapes[r].size() != shapes[0].size()) {
      std::string all;
      for (int q = 0; q < comm.world_size(); ++q) all += concat(" rank ", q, ": ", c10::IntArrayRef(shapes[q]), ";");
      throw DistributedOperationError(concat(op, ": the ranks hold tensors of different dimensionality:", all,
                                             " every rank must pass a tensor with the same number of dims."));
    }
  }
  return shapes;
}

at::Tensor to_bytes(const c10::IValue& value) {
  auto bytes = torch::jit::pickle_save(value);
  auto t = at::empty({static_cast<int64_t>(bytes.size())}, at::TensorOptions().dtype(at::kByte));
  std::memcpy(t.data_ptr(), bytes.data(), bytes.size());
  return t;
}

c10::IValue from_bytes(const at::Tensor& t) {
  auto c = t.contiguous();
  std::vector<char> bytes(static_cast<size_t>(c.numel()));
  std::memcpy(bytes.data(), c.data_ptr(), bytes.size());
  return torch::jit::pickle_load(bytes);
}

void check_source(const ProcessState& state, int from_process, const char* op) {
  ACCELERATE_CHECK(from_process >= 0 && from_process < state.num_processes(), ConfigError, op,
                   ": from_process=", from_process, " is not a rank of this world (valid: 0..",
                   state.num_processes() - 1, ").");
}

}  // namespace

at::Tensor gather(const ProcessState& state, const at::Tensor& tensor, std::source_location where) {
  const at::Tensor rows = tensor.dim() == 0 ? tensor.reshape({1}) : tensor;
  Collective c(state, "gather", where);
  if (!c) return rows.clone();
  c.verify(rows, detail::ShapeRule::SameTrailing);
  return detail::all_gather_concat(c.comm(), rows, c.op());
}

std::vector<c10::IValue> gather_object(const ProcessState& state, const c10::IValue& object,
                                       std::source_location where) {
  Collective c(state, "gather_object", where);
  if (!c) return {object};
  std::vector<c10::IValue> result;
  for (const auto& bytes : detail::all_gather_uneven(c.comm(), to_bytes(object), c.op())) {
    result.push_back(from_bytes(bytes));
  }
  return result;
}

at::Tensor broadcast(const ProcessState& state, at::Tensor tensor, int from_process, std::source_location where) {
  check_source(state, from_process, "broadcast");
  Collective c(state, "broadcast", where);
  if (!c) return tensor;
  c.verify(tensor, detail::ShapeRule::Same, from_process);
  std::vector<at::Tensor> buffer{tensor.is_contiguous() ? tensor : tensor.contiguous()};
  c10d::BroadcastOptions options;
  options.rootRank = from_process;
  c.wait(c.comm().group().broadcast(buffer, options));
  if (!buffer[0].is_same(tensor)) tensor.copy_(buffer[0]);
  return tensor;
}

namespace detail {
std::vector<std::vector<int32_t>> all_gather_ints(const ProcessState& state, const std::vector<int32_t>& mine,
                                                  const char* op) {
  Collective c(state, op);
  if (!c) return {mine};
  // On the CPU backend even in a CUDA job: a few numbers are not worth a device synchronisation.
  const auto n = static_cast<int64_t>(mine.size());
  std::vector<at::Tensor> input{at::empty({n}, at::kInt)};
  std::copy(mine.begin(), mine.end(), input[0].data_ptr<int32_t>());
  std::vector<std::vector<at::Tensor>> output(1);
  for (int r = 0; r < c.comm().world_size(); ++r) output[0].push_back(at::empty({n}, at::kInt));
  c.wait(c.comm().cpu_backend().allgather(output, input));
  std::vector<std::vector<int32_t>> all;
  for (const auto& t : output[0]) all.emplace_back(t.data_ptr<int32_t>(), t.data_ptr<int32_t>() + n);
  return all;
}

bool any_process(const ProcessState& state, bool mine, const char* op) {
  const auto all = all_gather_ints(state, {mine ? 1 : 0}, op);
  return std::any_of(all.begin(), all.end(), [](const auto& v) { return v[0] != 0; });
}

void broadcast_internal(const ProcessState& state, at::Tensor& tensor, int root, const char* op) {
  Collective c(state, op);
  if (!c) return;
  std::vector<at::Tensor> buffer{tensor.is_contiguous() ? tensor : tensor.contiguous()};
  c10d::BroadcastOptions options;
  options.rootRank = root;
  c.wait(c.comm().cpu_backend().broadcast(buffer, options));
  if (!buffer[0].is_same(tensor)) tensor.copy_(buffer[0]);
}
}  // namespace detail

void broadcast_object_list(const ProcessState& state, std::vector<c10::IValue>& objects, int from_process,
                           std::source_location where) {
  check_source(state, from_process, "broadcast_object_list");
  Collective c(state, "broadcast_object_list", where);
  if (!c) return;
  c10d::BroadcastOptions options;
  options.rootRank = from_process;
  at::Tensor payload;
  if (state.process_index() == from_process) {
    c10::impl::GenericList list(c10::AnyType::get());
    for (const auto& o : objects) list.push_back(o);
    payload = to_bytes(c10::IValue(std::move(list)));
  }
  // Length first, then the bytes: the receivers cannot know the size of what they are sent.
  std::vector<at::Tensor> length{at::full({1}, payload.defined() ? payload.numel() : 0, at::kLong)};
  c.wait(c.comm().cpu_backend().broadcast(length, options));
  if (!payload.defined()) payload = at::empty({length[0].item<int64_t>()}, at::TensorOptions().dtype(at::kByte));
  std::vector<at::Tensor> data{payload};
  c.wait(c.comm().cpu_backend().broadcast(data, options));
  if (state.process_index() == from_process) return;
  const c10::IValue received = from_bytes(data[0]);  // owns the list the reference below points into
  const auto& list = received.toListRef();
  objects.assign(list.begin(), list.end());
}

at::Tensor reduce(const ProcessState& state, const at::Tensor& tensor, Reduction reduction,
                  std::source_location where) {
  ACCELERATE_CHECK(reduction != Reduction::Mean || at::isFloatingType(tensor.scalar_type()), ConfigError,
                   "reduce: Reduction::Mean needs a floating tensor, got ", tensor.scalar_type(),
                   "; convert it (tensor.to(at::kFloat)) or use Reduction::Sum.");
  at::Tensor result = tensor.clone(at::MemoryFormat::Contiguous);
  Collective c(state, "reduce", where);
  if (!c) return result;
  c.verify(result, detail::ShapeRule::Same);
  // Gloo has no AVG: sum, then divide, as HF does.
  c10d::AllreduceOptions options;
  options.reduceOp = reduction == Reduction::Max ? c10d::ReduceOp::MAX : c10d::ReduceOp::SUM;
  std::vector<at::Tensor> buffer{result};
  c.wait(c.comm().group().allreduce(buffer, options));
  if (reduction == Reduction::Mean) result.div_(state.num_processes());
  return result;
}

at::Tensor reduce(const ProcessState& state, const at::Tensor& tensor, const std::string& reduction,
                  std::source_location where) {
  if (reduction == "sum" || reduction == "none") return reduce(state, tensor, Reduction::Sum, where);  // HF: sums
  if (reduction == "mean") return reduce(state, tensor, Reduction::Mean, where);
  if (reduction == "max") return reduce(state, tensor, Reduction::Max, where);
  throw ConfigError(concat("reduce: unknown reduction '", reduction.substr(0, 40),
                           "'. Choose between: sum, mean, none "
                           "(sums, as HF), max."));
}

at::Tensor pad_across_processes(const ProcessState& state, const at::Tensor& tensor, int64_t dim, double pad_index,
                                bool pad_first, std::source_location where) {
  if (dim >= tensor.dim() || dim < -tensor.dim()) return tensor;
  if (dim < 0) dim += tensor.dim();
  Collective c(state, "pad_across_processes", where);
  if (!c) return tensor;
  c.verify(tensor, detail::ShapeRule::SameDims);
  const auto shapes = all_shapes(c.comm(), tensor, c.op());
  int64_t longest = 0;
  for (const auto& s : shapes) longest = std::max(longest, s[dim]);
  if (longest == tensor.size(dim)) return tensor;
  auto sizes = tensor.sizes().vec();
  sizes[dim] = longest;
  at::Tensor padded = at::full(sizes, pad_index, tensor.options());
  const int64_t offset = pad_first ? longest - tensor.size(dim) : 0;
  padded.narrow(dim, offset, tensor.size(dim)).copy_(tensor);
  return padded;
}

void wait_for_everyone(const ProcessState& state, std::source_location where) {
  Collective c(state, "wait_for_everyone", where);
  if (!c) return;
  c10d::BarrierOptions options;
  options.timeout = c.comm().timeout();
  c.wait(c.comm().cpu_backend().barrier(options));
}

namespace detail {
SplitRange split_range(int64_t length, int rank, int world) {
  const int64_t per = length / world, extras = length % world;
  SplitRange r{};
  r.start = rank * per + std::min<int64_t>(rank, extras);
  r.end = r.start + per + (rank < extras ? 1 : 0);
  r.padded_length = per + (extras > 0 ? 1 : 0);
  // A rank past the end gets an empty share (HF since its PR #4052; it used to get a copy of the last item, so a
  // prompt was processed twice and gathered twice).
  return r;
}
}  // namespace detail

at::Tensor split_between_processes(const ProcessState& state, const at::Tensor& inputs, bool apply_padding) {
  if (state.num_processes() == 1 || inputs.dim() == 0 || inputs.size(0) == 0) return inputs;
  const auto range = detail::split_range(inputs.size(0), state.process_index(), state.num_processes());
  at::Tensor part = inputs.narrow(0, range.start, range.end - range.start);
  if (apply_padding && part.size(0) < range.padded_length) {
    auto last = inputs.narrow(0, inputs.size(0) - 1, 1);  // HF pads with the last input
    std::vector<int64_t> repeat(static_cast<size_t>(inputs.dim()), 1);
    repeat[0] = range.padded_length - part.size(0);
    part = at::cat({part, last.repeat(repeat)}, 0);
  }
  return part;
}

MainProcessFirstGuard::MainProcessFirstGuard(const ProcessState& state, bool is_first, std::source_location where)
    : state_(state), is_first_(is_first), uncaught_at_entry_(std::uncaught_exceptions()), where_(where) {
  if (!is_first_) wait_for_everyone(state_, where_);
}

MainProcessFirstGuard::~MainProcessFirstGuard() {
  if (!is_first_ || std::uncaught_exceptions() > uncaught_at_entry_) return;
  try {
    wait_for_everyone(state_, where_);
  } catch (const std::exception& e) {
    // A destructor must not throw; the waiting ranks report the failure too.
    std::cerr << "accelerate: main_process_first: " << e.what() << std::endl;
  }
}

}  // namespace accelerate
