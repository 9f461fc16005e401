// Internal: the safetensors container format, without LibTorch (so the parser can be fuzzed on its own).
// Layout: u64 little-endian N | N bytes of JSON header | data. The header maps each tensor name to
// {"dtype", "shape", "data_offsets": [begin, end]} (offsets relative to the data), plus an optional
// "__metadata__" object of strings. Spec: https://github.com/huggingface/safetensors
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace accelerate::detail::safetensors {

struct Entry {
  std::string name;
  std::string dtype;  ///< "F32", "BF16", ...
  std::vector<int64_t> shape;
  uint64_t begin = 0, end = 0;  ///< byte offsets in the data section
};

struct Header {
  std::vector<Entry> entries;  ///< in data order
  std::map<std::string, std::string> metadata;
  uint64_t data_start = 0;  ///< file offset of the data section
};

/// Bytes per element of a safetensors dtype name; 0 when unknown.
size_t dtype_size(const std::string& dtype);

/// Parses and strictly validates the header of a file whose first `size` bytes are `data` (the whole file):
/// sizes, JSON, dtypes, shapes, offsets (in range, matching the shape, non-overlapping, covering the data with no
/// gap). Throws CheckpointError naming `path` and the tensor.
Header parse(const uint8_t* data, size_t size, const std::string& path);

/// The 8-byte length and JSON header for `entries` (offsets already set), padded with spaces to 8 bytes so
/// that the data section starts aligned.
std::string serialize_header(const std::vector<Entry>& entries, const std::map<std::string, std::string>& metadata);

}  // namespace accelerate::detail::safetensors
