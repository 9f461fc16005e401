#include "detail/durable_file.hpp"

#include <accelerate/error.hpp>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <vector>

#include <fcntl.h>
#include <zlib.h>
#include <unistd.h>

namespace accelerate::detail {
namespace fs = std::filesystem;

uint32_t file_crc32(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  ACCELERATE_CHECK(in.good(), CheckpointError, "checkpoint file ", path.string(), " cannot be read.");
  uLong crc = ::crc32_z(0L, Z_NULL, 0);
  std::vector<char> block(4 << 20);
  while (in) {
    in.read(block.data(), static_cast<std::streamsize>(block.size()));
    crc = ::crc32_z(crc, reinterpret_cast<const Bytef*>(block.data()), static_cast<z_size_t>(in.gcount()));
  }
  ACCELERATE_CHECK(in.eof(), CheckpointError, "checkpoint file ", path.string(), " could not be read to its end.");
  return static_cast<uint32_t>(crc);
}

void fsync_path(const fs::path& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd >= 0) {
    ::fsync(fd);
    ::close(fd);
  }
}

void write_file(const fs::path& path, const FileWriter& write, Replace replace) {
  const fs::path target = replace == Replace::Atomically ? fs::path(path.string() + ".partial") : path;
  std::FILE* file = std::fopen(target.c_str(), "wb");
  ACCELERATE_CHECK(file, CheckpointError, "cannot create ", target.string(), ": ", std::strerror(errno), ".");
  bool ok = write(file);
  const int error = ok ? 0 : errno;
  ok = ok && std::fflush(file) == 0 && ::fsync(::fileno(file)) == 0;
  const int flush_error = ok ? 0 : errno;
  ok = (std::fclose(file) == 0) && ok;
  if (!ok && replace == Replace::Atomically) {
    std::error_code ignored;
    fs::remove(target, ignored);
  }
  ACCELERATE_CHECK(ok, CheckpointError, "could not write ", path.string(), " completely: ",
                   std::strerror(error         ? error
                                 : flush_error ? flush_error
                                               : EIO),
                   ". Free disk space or choose another directory; the file is incomplete.");
  if (replace == Replace::Atomically) {
    fs::rename(target, path);
    fsync_path(path.parent_path().empty() ? fs::path(".") : path.parent_path());
  }
}

void write_text_file(const fs::path& path, std::string_view text, Replace replace) {
  write_file(
      path, [&](std::FILE* file) { return std::fwrite(text.data(), 1, text.size(), file) == text.size(); }, replace);
}

}  // namespace accelerate::detail
