#include <accelerate/dataset.hpp>

#include <accelerate/collate.hpp>
#include <accelerate/error.hpp>

#include <ATen/ATen.h>
#include <cerrno>
#include <cstring>

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

namespace accelerate {

Batch Dataset::get_batch(const std::vector<int64_t>& indices) const {
  std::vector<Batch> samples;
  samples.reserve(indices.size());
  for (auto i : indices) samples.push_back(get(i));
  return default_collate(samples);
}

TensorDataset::TensorDataset(at::Tensor data, at::Tensor targets)
    : data_(std::move(data)), targets_(std::move(targets)) {
  ACCELERATE_CHECK(data_.dim() >= 1 && targets_.dim() >= 1 && data_.size(0) == targets_.size(0), ConfigError,
                   "TensorDataset: data and targets need the same dim 0 (samples), got ", data_.sizes(), " and ",
                   targets_.sizes(), ".");
}

Batch TensorDataset::get(int64_t index) const { return Batch(data_[index], targets_[index]); }

Batch TensorDataset::get_batch(const std::vector<int64_t>& indices) const {
  auto index = at::tensor(indices, at::kLong);
  return Batch(data_.index_select(0, index), targets_.index_select(0, index));
}

namespace {
constexpr int32_t kLlmcMagic = 20240520;  // llm.c's dev/data/data_common.py
constexpr size_t kLlmcHeaderBytes = 256 * sizeof(int32_t);
}  // namespace

TokenDataset::TokenDataset(const std::string& path, TokenDatasetOptions options) : path_(path), options_(options) {
  if (options_.stride == 0) options_.stride = options_.block_size;
  ACCELERATE_CHECK(options_.block_size >= 1 && options_.stride >= 1, ConfigError, "TokenDataset: block_size (",
                   options_.block_size, ") and stride (", options_.stride, ") must be >= 1.");
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  ACCELERATE_CHECK(fd >= 0, CheckpointError, "TokenDataset: cannot open ", path, ": ", std::strerror(errno), ".");
  struct stat st {};
  ::fstat(fd, &st);
  mapping_size_ = static_cast<size_t>(st.st_size);
  void* mapped = mapping_size_ > 0 ? ::mmap(nullptr, mapping_size_, PROT_READ, MAP_SHARED, fd, 0) : nullptr;
  const int map_error = errno;
  ::close(fd);  // the mapping keeps the file
  ACCELERATE_CHECK(mapped != MAP_FAILED, CheckpointError, "TokenDataset: cannot map ", path, ": ",
                   std::strerror(map_error), ".");
  mapping_ = mapped;
  const auto* bytes = static_cast<const unsigned char*>(mapping_);
  size_t header = 0;
  int32_t first = 0;
  if (mapping_size_ >= kLlmcHeaderBytes) std::memcpy(&first, bytes, sizeof first);
  const size_t width = options_.token_type == TokenType::UInt16 ? 2 : 4;
  if (first == kLlmcMagic) {
    int32_t fields[3];
    std::memcpy(fields, bytes, sizeof fields);
    header = kLlmcHeaderBytes;
    ACCELERATE_CHECK(static_cast<size_t>(fields[2]) * width == mapping_size_ - header, CheckpointError,
                     "TokenDataset: ", path, " has an llm.c header announcing ", fields[2], " tokens, but holds ",
                     (mapping_size_ - header) / width,
                     "; the file is truncated or damaged, or TokenDatasetOptions::token_type "
                     "does not match it (llm.c writes uint16).");
  }
  ACCELERATE_CHECK((mapping_size_ - header) % width == 0, CheckpointError, "TokenDataset: ", path, " holds ",
                   mapping_size_ - header, " bytes of tokens, not a whole number of ", width,
                   "-byte tokens; check TokenDatasetOptions::token_type.");
  tokens_ = bytes ? bytes + header : nullptr;
  num_tokens_ = static_cast<int64_t>((mapping_size_ - header) / width);
  const int64_t window = options_.block_size + 1;
  ACCELERATE_CHECK(num_tokens_ >= window, CheckpointError, "TokenDataset: ", path, " holds ", num_tokens_,
                   " tokens, fewer than one window of block_size + 1 = ", window, ".");
  size_ = (num_tokens_ - window) / options_.stride + 1;
}

TokenDataset::~TokenDataset() {
  if (mapping_) ::munmap(mapping_, mapping_size_);
}

at::Tensor TokenDataset::window(int64_t index) const {
  TORCH_CHECK_INDEX(index >= 0 && index < size_, "TokenDataset: sample ", index, " out of range [0, ", size_, ")");
  const int64_t start = index * options_.stride, n = options_.block_size + 1;
  if (options_.token_type == TokenType::UInt16) {
    auto view = at::from_blob(const_cast<unsigned char*>(tokens_) + start * 2, {n}, at::kUInt16);
    return view.to(at::kLong);
  }
  auto view = at::from_blob(const_cast<unsigned char*>(tokens_) + start * 4, {n}, at::kUInt32);
  return view.to(at::kLong);
}

Batch TokenDataset::get(int64_t index) const {
  auto w = window(index);
  const int64_t b = options_.block_size;
  return Batch{{"input_ids", w.narrow(0, 0, b).clone()}, {"labels", w.narrow(0, 1, b).clone()}};
}

Batch TokenDataset::get_batch(const std::vector<int64_t>& indices) const {
  const int64_t b = options_.block_size;
  auto windows = at::empty({static_cast<int64_t>(indices.size()), b + 1}, at::kLong);
  for (size_t i = 0; i < indices.size(); ++i) windows[static_cast<int64_t>(i)].copy_(window(indices[i]));
  // Two tensors of their own (contiguous, sharing nothing): a loss that views or edits labels in place must not
  // reach input_ids.
  return Batch{{"input_ids", windows.narrow(1, 0, b).contiguous()}, {"labels", windows.narrow(1, 1, b).contiguous()}};
}

}  // namespace accelerate
