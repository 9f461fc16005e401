// Writing files that survive a crash: one helper for every file a checkpoint or save_model writes (safetensors
// and JSON alike), so the fsync and the error message are written once.
#pragma once

#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <functional>
#include <map>
#include <vector>
#include <string>
#include <string_view>

namespace at {
class Tensor;
}

namespace accelerate::detail {

/// Writes the file's bytes into `file`; returns false when a write failed (errno tells why).
using FileWriter = std::function<bool(std::FILE* file)>;

/// How a file reaches its name.
enum class Replace {
  InPlace,    ///< written at `path` directly (the folder it is in is renamed into place afterwards, or `path` is a
              ///< device such as /dev/full that must not be replaced)
  Atomically  ///< written to <path>.partial, fsync'd, renamed over `path`, folder fsync'd: a reader sees the old file
              ///< or the whole new one, never a prefix
};

/// Creates `path` through `write`, flushes and fsyncs it. CheckpointError naming the path and the system's reason
/// ("No space left on device") when any step fails; the partial file is then removed (Atomically) or left
/// incomplete (InPlace).
void write_file(const std::filesystem::path& path, const FileWriter& write, Replace replace);

/// write_file for text (JSON, markers).
void write_text_file(const std::filesystem::path& path, std::string_view text, Replace replace);

/// safetensors::save_file with a choice of Replace (save_file itself writes InPlace, as Python's safetensors).
void save_safetensors(const std::map<std::string, at::Tensor>& tensors, const std::string& path,
                      const std::map<std::string, std::string>& metadata, Replace replace);

/// A safetensors file whose header comes from `layout` (names, shapes and dtypes, in file order; the tensors'
/// data is not read) and whose data is `fetch(i)` for each entry in turn, called while the file is written: a
/// writer that holds one tensor at a time. CheckpointError when a fetched tensor does not match its entry.
void save_safetensors_streamed(const std::vector<std::pair<std::string, at::Tensor>>& layout, const std::string& path,
                               const std::map<std::string, std::string>& metadata,
                               const std::function<at::Tensor(size_t)>& fetch, Replace replace);

/// CRC-32 (zlib's, the checksum of gzip and PNG) of a file's bytes, read in 4 MiB blocks. CheckpointError when it
/// cannot be read. zlib's is several times faster than a table CRC-32C (4 GB/s against 0.44 on the 2-core machine),
/// which is what makes checking every checkpoint file affordable.
uint32_t file_crc32(const std::filesystem::path& path);

/// fsync of a file or folder (a folder's fsync makes a rename in it durable). Best effort: errors are ignored.
void fsync_path(const std::filesystem::path& path);

}  // namespace accelerate::detail
