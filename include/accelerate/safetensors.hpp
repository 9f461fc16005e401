// safetensors files (the format HF uses for weights: https://github.com/huggingface/safetensors), read and
// written in C++: every torch dtype the format names (bf16 included), metadata, memory-mapped reads and strict
// validation of untrusted files. Python's `safetensors` reads what this writes, and the other way round.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

#include <ATen/core/Tensor.h>

namespace accelerate::safetensors {

using TensorMap = std::map<std::string, at::Tensor>;
using Metadata = std::map<std::string, std::string>;

/// Writes `tensors` (any device; copied to CPU, made contiguous) with `metadata` to `path`, flushed to disk.
/// Throws CheckpointError naming the file when it cannot be written completely (no space left, ...).
void save_file(const TensorMap& tensors, const std::string& path, const Metadata& metadata = {});

/// An opened, validated, memory-mapped file. Tensors from get() share the mapping (copy-on-write: writing to
/// them never changes the file) and keep it alive.
class File {
 public:
  /// `copy_on_write` false maps the file read-only: tensors from get() must then never be written (the process
  /// would get SIGSEGV), and the mapping does not count as the process's private memory (RLIMIT_DATA), as a
  /// reader that only copies out of it wants.
  explicit File(const std::string& path, bool copy_on_write = true);
  ~File();
  const std::string& path() const { return path_; }
  std::vector<std::string> keys() const;
  bool contains(const std::string& name) const;
  const Metadata& metadata() const;
  /// The tensor `name`; CheckpointError naming the file and the tensor when it is absent.
  at::Tensor get(const std::string& name) const;

 private:
  struct Mapping;
  std::string path_;
  std::shared_ptr<Mapping> mapping_;
};

/// Every tensor of the file at `path`.
TensorMap load_file(const std::string& path);

}  // namespace accelerate::safetensors
