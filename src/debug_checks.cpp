// Debug mode (HF's verify_operation): before a tensor collective every rank shares what it is about to do, so a
// mismatch becomes the same clear error on every rank instead of a hang or a silent wrong result.
#include "detail/communicator.hpp"

#include <accelerate/error.hpp>

#include <ATen/ATen.h>
#include <algorithm>
#include <array>

namespace accelerate::detail {
namespace {

constexpr int64_t kMaxDims = 15;
constexpr int64_t kHeader = 5;  // operation, dtype, device type, root, dims
constexpr std::array<const char*, 5> kOperations = {"gather", "broadcast", "reduce", "pad_across_processes", "other"};

int64_t op_id(const char* op) {
  for (size_t i = 0; i < kOperations.size(); ++i) {
    if (std::string(op) == kOperations[i]) return static_cast<int64_t>(i);
  }
  return static_cast<int64_t>(kOperations.size() - 1);
}

struct Call {
  int64_t op, dtype, device, root;
  std::vector<int64_t> shape;
};

std::string describe(const Call& c) {
  return concat(c10::IntArrayRef(c.shape), " ", c10::toString(static_cast<c10::ScalarType>(c.dtype)), " on ",
                c10::DeviceTypeName(static_cast<c10::DeviceType>(c.device), true));
}

}  // namespace

std::string debug_device_problem(c10::DeviceType tensor, c10::DeviceType first, c10::DeviceType job) {
  if (tensor != first) return "tensors on different device types on different ranks";
  if (tensor != job && tensor != c10::DeviceType::CPU) {
    return concat("a tensor on ", c10::DeviceTypeName(tensor, true), ", neither the CPU nor the ",
                  c10::DeviceTypeName(job, true), " device the Accelerator uses (move it: tensor.to(acc.device()))");
  }
  return "";
}

void Communicator::verify(const char* op, const at::Tensor& tensor, ShapeRule rule, c10::DeviceType expected_device,
                          int root) {
  if (!debug_) return;
  auto local = at::full({kHeader + kMaxDims}, -1, at::kLong);
  local[0] = op_id(op);
  local[1] = static_cast<int64_t>(tensor.scalar_type());
  local[2] = static_cast<int64_t>(tensor.device().type());
  local[3] = root;
  const int64_t dims = std::min<int64_t>(tensor.dim(), kMaxDims);
  local[4] = dims;
  for (int64_t d = 0; d < dims; ++d) local[kHeader + d] = tensor.size(d);
  std::vector<at::Tensor> input{local};
  std::vector<std::vector<at::Tensor>> output(1);
  for (int r = 0; r < world_; ++r) output[0].push_back(at::empty_like(local));
  wait(cpu_backend().allgather(output, input), "debug-mode check");

  std::vector<Call> calls;
  for (const auto& t : output[0]) {
    auto a = t.accessor<int64_t, 1>();
    calls.push_back({a[0], a[1], a[2], a[3], std::vector<int64_t>(&a[kHeader], &a[kHeader] + a[4])});
  }
  std::string problem;
  const auto& first = calls[0];
  for (const auto& c : calls) {
    // As torch: CPU tensors in a GPU job go through Gloo, so the CPU is fine as well as the job's device.
    problem = c.op != first.op ? "different operations on different ranks"
                               : debug_device_problem(static_cast<c10::DeviceType>(c.device),
                                                      static_cast<c10::DeviceType>(first.device), expected_device);
    if (!problem.empty()) break;
    if (c.dtype != first.dtype)
      problem = "different dtypes";
    else if (c.root != first.root)
      problem = "different source processes";
    else if (rule == ShapeRule::Same && c.shape != first.shape)
      problem = "shape mismatches";
    else if (c.shape.size() != first.shape.size())
      problem = "different numbers of dimensions";
    else if (rule == ShapeRule::SameTrailing &&
             !std::equal(c.shape.begin() + std::min<size_t>(1, c.shape.size()), c.shape.end(),
                         first.shape.begin() + std::min<size_t>(1, first.shape.size()))) {
      problem = "shape mismatches beyond the first dimension";
    }
    if (!problem.empty()) break;
  }
  if (problem.empty()) return;
  std::string message = concat("Cannot apply desired operation due to ", problem,
                               " (debug mode).\n\nOperation: `accelerate::", op, "`\nInput shapes:");
  for (size_t r = 0; r < calls.size(); ++r) {
    message +=
        concat("\n  - Process ", r, ": ", kOperations[static_cast<size_t>(calls[r].op)], " of ", describe(calls[r]));
  }
  throw DistributedOperationError(message);
}

}  // namespace accelerate::detail
