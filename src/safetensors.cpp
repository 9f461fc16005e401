// safetensors with LibTorch tensors: dtype mapping, the writer and the memory-mapped reader.
#include <accelerate/safetensors.hpp>

#include <accelerate/error.hpp>

#include <ATen/ATen.h>
#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "detail/durable_file.hpp"
#include "detail/safetensors_format.hpp"

namespace accelerate::safetensors {
namespace format = detail::safetensors;
using detail::concat;

namespace {

const std::vector<std::pair<at::ScalarType, const char*>>& dtype_names() {
  static const std::vector<std::pair<at::ScalarType, const char*>> names = {{at::kBool, "BOOL"},
                                                                            {at::kByte, "U8"},
                                                                            {at::kChar, "I8"},
                                                                            {at::kShort, "I16"},
                                                                            {at::kUInt16, "U16"},
                                                                            {at::kHalf, "F16"},
                                                                            {at::kBFloat16, "BF16"},
                                                                            {at::kInt, "I32"},
                                                                            {at::kUInt32, "U32"},
                                                                            {at::kFloat, "F32"},
                                                                            {at::kLong, "I64"},
                                                                            {at::kUInt64, "U64"},
                                                                            {at::kDouble, "F64"},
                                                                            {at::kFloat8_e4m3fn, "F8_E4M3"},
                                                                            {at::kFloat8_e5m2, "F8_E5M2"},
                                                                            {at::kComplexFloat, "C64"}};
  return names;
}

const char* name_of(at::ScalarType type, const std::string& tensor) {
  for (const auto& [t, n] : dtype_names()) {
    if (t == type) return n;
  }
  throw CheckpointError(
      concat("safetensors: tensor '", tensor, "' has dtype ", type, ", which the safetensors format cannot store."));
}

at::ScalarType type_of(const std::string& name) {
  for (const auto& [t, n] : dtype_names()) {
    if (name == n) return t;
  }
  throw CheckpointError(concat("safetensors: unknown dtype '", name, "'"));
}

}  // namespace

void save_file(const TensorMap& tensors, const std::string& path, const Metadata& metadata) {
  detail::save_safetensors(tensors, path, metadata, detail::Replace::InPlace);
}

}  // namespace accelerate::safetensors

namespace accelerate::detail {

void save_safetensors(const std::map<std::string, at::Tensor>& tensors, const std::string& path,
                      const std::map<std::string, std::string>& metadata, Replace replace) {
  // Larger elements first keeps every tensor aligned to its element size (the header is padded to 8 bytes).
  std::vector<std::pair<std::string, at::Tensor>> order;
  for (const auto& [name, t] : tensors) {
    ACCELERATE_CHECK(t.defined(), CheckpointError, "safetensors: tensor '", name, "' is undefined (", path, ").");
    order.emplace_back(name, t);
  }
  std::stable_sort(order.begin(), order.end(),
                   [](const auto& a, const auto& b) { return a.second.element_size() > b.second.element_size(); });
  save_safetensors_streamed(
      order, path, metadata, [&](size_t i) { return order[i].second; }, replace);
}

void save_safetensors_streamed(const std::vector<std::pair<std::string, at::Tensor>>& layout, const std::string& path,
                               const std::map<std::string, std::string>& metadata,
                               const std::function<at::Tensor(size_t)>& fetch, Replace replace) {
  using accelerate::safetensors::name_of;
  namespace format = detail::safetensors;
  std::vector<format::Entry> entries;
  uint64_t offset = 0;
  for (const auto& [name, t] : layout) {
    const uint64_t bytes = static_cast<uint64_t>(t.numel()) * t.element_size();
    entries.push_back({name, name_of(t.scalar_type(), name), t.sizes().vec(), offset, offset + bytes});
    offset += bytes;
  }
  const std::string header = format::serialize_header(entries, metadata);
  detail::write_file(
      path,
      [&](std::FILE* file) {
        bool ok = std::fwrite(header.data(), 1, header.size(), file) == header.size();
        for (size_t i = 0; i < layout.size() && ok; ++i) {
          const auto t = fetch(i).to(at::kCPU).contiguous();
          ACCELERATE_CHECK(t.sizes() == layout[i].second.sizes() && t.scalar_type() == layout[i].second.scalar_type(),
                           CheckpointError, "safetensors: tensor '", layout[i].first, "' changed while ", path,
                           " was written.");
          const size_t bytes = static_cast<size_t>(t.numel()) * t.element_size();
          if (bytes) ok = std::fwrite(t.data_ptr(), 1, bytes, file) == bytes;
        }
        return ok;
      },
      replace);
}

}  // namespace accelerate::detail

namespace accelerate::safetensors {

struct File::Mapping {
  void* base = nullptr;
  size_t size = 0;
  format::Header header;
  ~Mapping() {
    if (base && base != MAP_FAILED) ::munmap(base, size);
  }
};

File::File(const std::string& path, bool copy_on_write) : path_(path), mapping_(std::make_shared<Mapping>()) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  ACCELERATE_CHECK(fd >= 0, CheckpointError, "cannot open ", path, ": ", std::strerror(errno), ".");
  struct stat st {};
  ::fstat(fd, &st);
  mapping_->size = static_cast<size_t>(st.st_size);
  static const uint8_t kEmpty[1] = {0};
  const uint8_t* bytes = kEmpty;
  if (mapping_->size > 0) {
    // Private and writable: tensors may be modified in place without touching the file (copy-on-write).
    const int protection = copy_on_write ? PROT_READ | PROT_WRITE : PROT_READ;
    mapping_->base = ::mmap(nullptr, mapping_->size, protection, MAP_PRIVATE, fd, 0);
    const int err = errno;
    ::close(fd);
    ACCELERATE_CHECK(mapping_->base != MAP_FAILED, CheckpointError, "cannot map ", path, ": ", std::strerror(err), ".");
    bytes = static_cast<const uint8_t*>(mapping_->base);
  } else {
    ::close(fd);
  }
  mapping_->header = format::parse(bytes, mapping_->size, path);
  for (const auto& e : mapping_->header.entries) type_of(e.dtype);  // every dtype has a torch type
}

File::~File() = default;

std::vector<std::string> File::keys() const {
  std::vector<std::string> out;
  for (const auto& e : mapping_->header.entries) out.push_back(e.name);
  std::sort(out.begin(), out.end());
  return out;
}

bool File::contains(const std::string& name) const {
  const auto& entries = mapping_->header.entries;
  return std::any_of(entries.begin(), entries.end(), [&](const auto& e) { return e.name == name; });
}

const Metadata& File::metadata() const { return mapping_->header.metadata; }

at::Tensor File::get(const std::string& name) const {
  for (const auto& e : mapping_->header.entries) {
    if (e.name != name) continue;
    const auto type = type_of(e.dtype);
    if (e.end == e.begin) return at::empty(e.shape, at::TensorOptions().dtype(type));
    auto* data = static_cast<uint8_t*>(mapping_->base) + mapping_->header.data_start + e.begin;
    const auto element = static_cast<uintptr_t>(c10::elementSize(type));
    if (reinterpret_cast<uintptr_t>(data) % element != 0) {
      // A writer that did not align its tensors: copy rather than hand out a misaligned view.
      auto out = at::empty(e.shape, at::TensorOptions().dtype(type));
      std::memcpy(out.data_ptr(), data, e.end - e.begin);
      return out;
    }
    auto keep = mapping_;
    return at::from_blob(
        data, e.shape, [keep](void*) {}, at::TensorOptions().dtype(type));
  }
  throw CheckpointError(concat("safetensors file ", path_, " has no tensor '", name, "'."));
}

TensorMap load_file(const std::string& path) {
  File file(path);
  TensorMap out;
  for (const auto& name : file.keys()) out.emplace(name, file.get(name));
  return out;
}

}  // namespace accelerate::safetensors
