// Reading and writing a checkpoint's own files (JSON and safetensors) so that every failure names the file and the
// fix: shared by the parts (checkpoint_parts.cpp) and the files around them (checkpoint_files.cpp).
#pragma once

#include <accelerate/error.hpp>
#include <accelerate/safetensors.hpp>

#include <filesystem>
#include <limits>
#include <optional>
#include <type_traits>

#include <nlohmann/json.hpp>

#include "detail/error_text.hpp"

namespace accelerate::detail::checkpoint {

/// The JSON object in `path`; CheckpointError when it is missing, not JSON, or not an object.
nlohmann::json read_json(const std::filesystem::path& path);
/// Writes `j` to `path`, fsync'd (the folder protocol makes it durable).
void write_json(const std::filesystem::path& path, const nlohmann::json& j);
/// Writes `tensors` to `path` as safetensors with `meta`, fsync'd.
void save_tensors(const std::filesystem::path& path, const safetensors::TensorMap& tensors,
                  const safetensors::Metadata& meta);
/// Opens `path` and checks its header and size (safetensors::File); CheckpointError naming the file otherwise.
void check_tensors_file(const std::filesystem::path& path);

/// `key` of a checkpoint's JSON file as a T; a missing key gives `fallback` when there is one, a value of another
/// type is a CheckpointError naming the file and the key (never nlohmann's bare type_error).
template <class T>
T field(const nlohmann::json& j, const char* key, const std::filesystem::path& file,
        std::optional<T> fallback = std::nullopt) {
  auto it = j.find(key);
  if (it == j.end()) {
    ACCELERATE_CHECK(fallback.has_value(), CheckpointError, "checkpoint file ", file.string(), " has no '", key,
                     "'; it is damaged or was not written by accelerate-cpp. Resume from another checkpoint.");
    return *fallback;
  }
  bool ok = true;
  if constexpr (std::is_integral_v<T>) {
    // nlohmann would truncate 2.5 to 2 and wrap -1 into a huge size_t: an integer in T's range or nothing.
    ok = it->is_number_integer();
    if (ok && it->is_number_unsigned()) {
      ok = it->template get<uint64_t>() <= static_cast<uint64_t>(std::numeric_limits<T>::max());
    } else if (ok) {
      const auto v = it->template get<int64_t>();
      ok = v >= static_cast<int64_t>(std::numeric_limits<T>::min()) &&
           (v < 0 || static_cast<uint64_t>(v) <= static_cast<uint64_t>(std::numeric_limits<T>::max()));
    }
  }
  if (ok) {
    try {
      return it->template get<T>();
    } catch (const nlohmann::json::exception&) {
    }
  }
  std::string value = it->dump();
  if (value.size() > 80) value = value.substr(0, 80) + "...";
  throw CheckpointError(concat("checkpoint file ", file.string(), ": '", key, "' is not a valid value (", value,
                               "); the file is damaged or was edited. Resume from another checkpoint."));
}

/// Runs `f`, which loads state from `file`; any failure becomes a CheckpointError that names the file (torch's own
/// messages, "Invalid mt19937 state", do not).
template <class F>
void from_file(const std::filesystem::path& file, F&& f) {
  try {
    f();
  } catch (const Error&) {
    throw;
  } catch (const std::exception& e) {
    throw CheckpointError(concat("checkpoint file ", file.string(), " could not be loaded (",
                                 message_of(e).substr(0, 300), "); it is damaged. Resume from another checkpoint."));
  }
}

}  // namespace accelerate::detail::checkpoint
