// Internal: where a model checkpoint's tensors are (the one file, or the shards an index names), as HF lays them out.
#pragma once

#include <filesystem>
#include <map>
#include <memory>
#include <string>

#include <accelerate/safetensors.hpp>

namespace accelerate::detail {

inline constexpr const char* kModelIndex = "model.safetensors.index.json";

/// A checkpoint's files, each opened (memory-mapped, header validated) once, on first use.
class OpenFiles {
 public:
  const safetensors::File& at(const std::filesystem::path& file);

 private:
  std::map<std::filesystem::path, std::unique_ptr<safetensors::File>> open_;
};

/// Which file holds each tensor of the checkpoint at `path`: a .safetensors file, an index file, or a folder with
/// an index or model.safetensors (the index first: save_model removes a stale one). CheckpointError when none
/// exists, or the index is not valid JSON or names a file outside its folder.
std::map<std::string, std::filesystem::path> checkpoint_tensor_files(const std::filesystem::path& path,
                                                                     OpenFiles& files);

}  // namespace accelerate::detail
