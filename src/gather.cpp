#include "detail/gather.hpp"

#include <accelerate/error.hpp>

#include <ATen/ATen.h>
#include <algorithm>
#include <cstring>

#include "detail/communicator.hpp"

namespace accelerate::detail {
namespace {

// Header: [dtype, ndim, dims...] as int64, padded to a multiple of 16 bytes so that the data after it stays
// aligned for every dtype.
constexpr int64_t kMaxDims = 14;
constexpr int64_t kHeaderLongs = 2 + kMaxDims;
constexpr int64_t kHeaderBytes = kHeaderLongs * 8;

struct Header {
  at::ScalarType dtype;
  std::vector<int64_t> shape;
  int64_t bytes() const {
    int64_t n = c10::elementSize(dtype);
    for (auto d : shape) n *= d;
    return n;
  }
};

std::string describe(const std::vector<Header>& headers) {
  std::string out;
  for (size_t r = 0; r < headers.size(); ++r) {
    out += concat(" rank ", r, ": ", headers[r].dtype, c10::IntArrayRef(headers[r].shape), ";");
  }
  return out;
}

at::Tensor bytes_of(const at::Tensor& t) { return t.contiguous().view({-1}).view(at::kByte); }

}  // namespace

namespace {

struct FirstRound {
  std::vector<at::Tensor> buffers;  // one per rank: header, then data when it fitted
  std::vector<Header> headers;
  bool fitted = false;  // every rank's data is in `buffers`
};

/// Round 1's buffer: the header, then the data when it fits in `capacity`. The bytes past the data are never
/// read, so the buffer is not zeroed.
at::Tensor round_one_buffer(const at::Tensor& tensor, int64_t capacity) {
  int64_t header[kHeaderLongs] = {};
  header[0] = static_cast<int64_t>(tensor.scalar_type());
  header[1] = tensor.dim();
  for (int64_t d = 0; d < tensor.dim(); ++d) header[2 + d] = tensor.size(d);
  const auto options = at::TensorOptions().dtype(at::kByte).device(tensor.device());
  auto send = at::empty({kHeaderBytes + capacity}, options);
  const bool on_cpu = tensor.device().is_cpu();
  if (on_cpu) {
    std::memcpy(send.data_ptr(), header, kHeaderBytes);
  } else {
    send.narrow(0, 0, kHeaderBytes).copy_(at::from_blob(header, {kHeaderBytes}, at::kByte));
  }
  const int64_t my_bytes = tensor.numel() * static_cast<int64_t>(tensor.element_size());
  if (my_bytes <= capacity && my_bytes > 0) {
    if (on_cpu && tensor.is_contiguous()) {
      std::memcpy(static_cast<uint8_t*>(send.data_ptr()) + kHeaderBytes, tensor.data_ptr(), my_bytes);
    } else {
      send.narrow(0, kHeaderBytes, my_bytes).copy_(bytes_of(tensor));
    }
  }
  return send;
}

/// Every rank's header from the gathered buffers, checked: only the first dim may differ between ranks.
std::vector<Header> read_headers(const std::vector<at::Tensor>& parts, const char* op) {
  const int world = static_cast<int>(parts.size());
  std::vector<int64_t> all_headers(static_cast<size_t>(world * kHeaderLongs));
  if (parts[0].device().is_cpu()) {
    for (int r = 0; r < world; ++r) std::memcpy(&all_headers[r * kHeaderLongs], parts[r].data_ptr(), kHeaderBytes);
  } else {
    std::vector<at::Tensor> views;
    for (const auto& part : parts) views.push_back(part.narrow(0, 0, kHeaderBytes));
    auto cpu = at::stack(views).cpu().contiguous();
    std::memcpy(all_headers.data(), cpu.data_ptr(), all_headers.size() * sizeof(int64_t));
  }
  std::vector<Header> headers(world);
  for (int r = 0; r < world; ++r) {
    const int64_t* a = &all_headers[r * kHeaderLongs];
    ACCELERATE_CHECK(a[1] >= 1 && a[1] <= kMaxDims, DistributedOperationError, op, ": rank ", r,
                     " sent a malformed header; every rank must call the same collectives in the same order.");
    headers[r].dtype = static_cast<at::ScalarType>(a[0]);
    headers[r].shape.assign(a + 2, a + 2 + a[1]);
  }
  for (const auto& hr : headers) {
    const bool same_rest = hr.shape.size() == headers[0].shape.size() &&
                           std::equal(hr.shape.begin() + 1, hr.shape.end(), headers[0].shape.begin() + 1);
    if (hr.dtype != headers[0].dtype || !same_rest) {
      throw DistributedOperationError(concat(op,
                                             ": only the first dim may differ between ranks (same dtype, same "
                                             "other dims), got",
                                             describe(headers), " pad the other dims first (pad_across_processes)."));
    }
  }
  return headers;
}

FirstRound first_round(Communicator& comm, const at::Tensor& tensor, const char* op) {
  ACCELERATE_CHECK(tensor.dim() >= 1 && tensor.dim() <= kMaxDims, DistributedOperationError, op, ": tensors need 1 to ",
                   kMaxDims, " dims, got ", tensor.dim(), ".");
  const int64_t capacity = comm.gather_capacity();
  auto send = round_one_buffer(tensor, capacity);
  std::vector<at::Tensor> input{send};
  std::vector<std::vector<at::Tensor>> output(1);
  for (int r = 0; r < comm.world_size(); ++r) output[0].push_back(at::empty_like(send));
  comm.wait(comm.group().allgather(output, input), op);
  // Every rank parses the same headers, so every rank takes the same branch afterwards.
  auto headers = read_headers(output[0], op);
  int64_t largest = 0;
  for (const auto& h : headers) largest = std::max(largest, h.bytes());
  comm.record_gather_bytes(largest);
  return FirstRound{std::move(output[0]), std::move(headers), largest <= capacity};
}

/// Round 2: the exact sizes are known now; pad to the longest, all-gather, trim.
std::vector<at::Tensor> second_round(Communicator& comm, const at::Tensor& tensor, const std::vector<Header>& headers,
                                     const char* op) {
  const int world = comm.world_size();
  const int64_t longest = std::max_element(headers.begin(), headers.end(), [](const Header& a, const Header& b) {
                            return a.shape[0] < b.shape[0];
                          })->shape[0];
  at::Tensor padded = tensor.contiguous();
  if (tensor.size(0) != longest) {
    auto sizes = tensor.sizes().vec();
    sizes[0] = longest;
    padded = at::zeros(sizes, tensor.options());
    padded.narrow(0, 0, tensor.size(0)).copy_(tensor);
  }
  std::vector<at::Tensor> data_in{padded};
  std::vector<std::vector<at::Tensor>> data_out(1);
  for (int r = 0; r < world; ++r) data_out[0].push_back(at::empty_like(padded));
  comm.wait(comm.group().allgather(data_out, data_in), op);
  std::vector<at::Tensor> parts(world);
  for (int r = 0; r < world; ++r) parts[r] = data_out[0][r].narrow(0, 0, headers[r].shape[0]);
  return parts;
}

std::vector<at::Tensor> views_of(const FirstRound& round, at::ScalarType dtype) {
  std::vector<at::Tensor> parts;
  for (size_t r = 0; r < round.buffers.size(); ++r) {
    parts.push_back(
        round.buffers[r].narrow(0, kHeaderBytes, round.headers[r].bytes()).view(dtype).view(round.headers[r].shape));
  }
  return parts;
}

}  // namespace

std::vector<at::Tensor> all_gather_uneven(Communicator& comm, const at::Tensor& tensor, const char* op) {
  auto round = first_round(comm, tensor, op);
  return round.fitted ? views_of(round, tensor.scalar_type()) : second_round(comm, tensor, round.headers, op);
}

at::Tensor all_gather_concat(Communicator& comm, const at::Tensor& tensor, const char* op) {
  auto round = first_round(comm, tensor, op);
  if (!round.fitted) return at::cat(second_round(comm, tensor, round.headers, op), 0);
  if (!tensor.device().is_cpu()) return at::cat(views_of(round, tensor.scalar_type()), 0);
  // CPU: copy each rank's bytes straight into the result, saving a view per rank and the concatenation.
  auto sizes = tensor.sizes().vec();
  sizes[0] = 0;
  for (const auto& h : round.headers) sizes[0] += h.shape[0];
  auto result = at::empty(sizes, tensor.options().memory_format(at::MemoryFormat::Contiguous));
  auto* dst = static_cast<uint8_t*>(result.data_ptr());
  for (size_t r = 0; r < round.buffers.size(); ++r) {
    const int64_t n = round.headers[r].bytes();
    if (n > 0) std::memcpy(dst, static_cast<const uint8_t*>(round.buffers[r].data_ptr()) + kHeaderBytes, n);
    dst += n;
  }
  return result;
}

}  // namespace accelerate::detail
