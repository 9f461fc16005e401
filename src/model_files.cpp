// Locating a model checkpoint's tensors (detail/model_files.hpp).
#include "detail/model_files.hpp"

#include <accelerate/error.hpp>

#include <fstream>

#include <nlohmann/json.hpp>

namespace accelerate::detail {
namespace fs = std::filesystem;

namespace {

std::map<std::string, fs::path> from_index(const fs::path& index_file) {
  const fs::path folder = index_file.parent_path();
  nlohmann::json index;
  try {
    index = nlohmann::json::parse(std::ifstream(index_file));
  } catch (const nlohmann::json::exception& e) {
    throw CheckpointError(concat(index_file.string(), " is not valid JSON: ", e.what()));
  }
  ACCELERATE_CHECK(index.contains("weight_map") && index["weight_map"].is_object(), CheckpointError,
                   index_file.string(), " has no weight_map object.");
  std::map<std::string, fs::path> out;
  for (const auto& [tensor, file] : index["weight_map"].items()) {
    ACCELERATE_CHECK(file.is_string(), CheckpointError, index_file.string(), ": the file of '", tensor,
                     "' is not a string.");
    const auto name = file.get<std::string>();
    // Names only: an index must never point outside its folder.
    ACCELERATE_CHECK(!name.empty() && name.find('/') == std::string::npos && name != ".." && name != ".",
                     CheckpointError, index_file.string(), ": the file of '", tensor, "' is '", name,
                     "', which is not a file name inside the checkpoint folder.");
    out[tensor] = folder / name;
  }
  return out;
}

}  // namespace

std::map<std::string, fs::path> checkpoint_tensor_files(const fs::path& path, OpenFiles& files) {
  if (fs::is_directory(path) && fs::exists(path / kModelIndex)) return from_index(path / kModelIndex);
  if (!fs::is_directory(path) && path.string().ends_with(".json")) {
    ACCELERATE_CHECK(fs::exists(path), CheckpointError, "load_checkpoint_in_model: ", path.string(),
                     " does not exist.");
    return from_index(path);
  }
  const fs::path file = fs::is_directory(path) ? path / "model.safetensors" : path;
  const bool pickled = fs::is_directory(path) &&
                       (fs::exists(path / "pytorch_model.bin") || fs::exists(path / "pytorch_model.bin.index.json"));
  ACCELERATE_CHECK(fs::exists(file), CheckpointError, "load_checkpoint_in_model: ", file.string(),
                   " does not exist (and there is no ", kModelIndex, ")",
                   pickled ? "; the folder holds pytorch_model.bin, a pickle, which is not read: save the model with "
                             "safetensors (transformers' save_pretrained does by default) or convert it"
                           : "",
                   ".");
  std::map<std::string, fs::path> out;
  for (const auto& name : files.at(file).keys()) out[name] = file;
  return out;
}

const safetensors::File& OpenFiles::at(const fs::path& file) {
  auto& slot = open_[file];
  if (!slot) slot = std::make_unique<safetensors::File>(file.string());
  return *slot;
}

}  // namespace accelerate::detail
