#include "fashion_mnist_data.hpp"

#include <accelerate/error.hpp>

#include <torch/data/datasets/mnist.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <optional>
#include <unistd.h>
#include <zlib.h>

namespace fashion_mnist {
namespace fs = std::filesystem;

namespace {

constexpr const char* kFiles[] = {"train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte",
                                  "t10k-labels-idx1-ubyte"};

void gunzip(const fs::path& from, const fs::path& to) {
  gzFile in = gzopen(from.c_str(), "rb");
  ACCELERATE_CHECK(in, ConfigError, "cannot open ", from, ". Install Debian's dataset-fashion-mnist (apt-get install ",
                   "dataset-fashion-mnist) or pass --data_dir.");
  // Write to a temporary name and rename, so a reader never sees a half-written file.
  const fs::path partial = to.string() + ".partial." + std::to_string(::getpid());
  std::ofstream out(partial, std::ios::binary);
  char buffer[1 << 16];
  int n;
  while ((n = gzread(in, buffer, sizeof buffer)) > 0) out.write(buffer, n);
  // A truncated file ends without an error from gzread: zlib reports "unexpected end of file" only here.
  int status = Z_OK;
  gzerror(in, &status);
  const bool ok = n == 0 && status == Z_OK;
  gzclose(in);
  out.close();
  if (!ok || !out) {
    fs::remove(partial);
    throw accelerate::ConfigError(accelerate::detail::concat("cannot decompress ", from.string(), " into ", to.string(),
                                                             " (a truncated or corrupt file, or a full "
                                                             "disk). Reinstall dataset-fashion-mnist or pass another "
                                                             "--data_dir."));
  }
  fs::rename(partial, to);
}

std::shared_ptr<accelerate::TensorDataset> split(const std::string& root, torch::data::datasets::MNIST::Mode mode,
                                                 int64_t limit) {
  std::optional<torch::data::datasets::MNIST> loaded;
  try {
    loaded.emplace(root, mode);  // images scaled to [0, 1], (N, 1, 28, 28)
  } catch (const c10::Error& e) {
    throw accelerate::ConfigError(
        accelerate::detail::concat("the Fashion-MNIST files unpacked in ", root, " are not MNIST idx files (", e.msg(),
                                   "): the .gz files of --data_dir are damaged or of another format."));
  }
  auto& mnist = *loaded;
  auto images = (mnist.images() - 0.2860) / 0.3530;
  auto targets = mnist.targets();
  if (limit > 0 && limit < images.size(0)) {
    images = images.narrow(0, 0, limit);
    targets = targets.narrow(0, 0, limit);
  }
  return std::make_shared<accelerate::TensorDataset>(images, targets);
}

}  // namespace

Splits load(const std::string& data_dir, std::string cache_dir, int64_t limit) {
  if (cache_dir.empty()) {
    const char* xdg = std::getenv("XDG_CACHE_HOME");
    const char* home = std::getenv("HOME");
    cache_dir = xdg && *xdg ? std::string(xdg) + "/accelerate-cpp/fashion-mnist"
                            : std::string(home ? home : ".") + "/.cache/accelerate-cpp/fashion-mnist";
  }
  // One cache folder per data folder and version of its files (their sizes and times): another --data_dir
  // (another copy, or MNIST in the same format) or a replaced file never reads what was unpacked before.
  std::string source = fs::weakly_canonical(data_dir).string();
  for (const char* name : kFiles) {
    const fs::path packed = fs::path(data_dir) / (std::string(name) + ".gz");
    ACCELERATE_CHECK(fs::exists(packed), ConfigError, "--data_dir ", data_dir, ": there is no ",
                     packed.filename().string(),
                     " (Debian's dataset-fashion-mnist installs the four files in /usr/share/datasets/fashion-mnist).");
    source += accelerate::detail::concat("|", fs::file_size(packed), "@",
                                         fs::last_write_time(packed).time_since_epoch().count());
  }
  cache_dir = (fs::path(cache_dir) / std::to_string(std::hash<std::string>{}(source))).string();
  fs::create_directories(cache_dir);
  for (const char* name : kFiles) {
    const fs::path target = fs::path(cache_dir) / name;
    if (!fs::exists(target)) gunzip(fs::path(data_dir) / (std::string(name) + ".gz"), target);
  }
  return {split(cache_dir, torch::data::datasets::MNIST::Mode::kTrain, limit),
          split(cache_dir, torch::data::datasets::MNIST::Mode::kTest, 0)};
}

}  // namespace fashion_mnist
