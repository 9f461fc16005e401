// save_state / load_state of a ~536 MB model (Linear 8192x16384, fp32) against, in the same run:
//   raw:   the same bytes written with fwrite + fsync, read back with fread into a preallocated tensor;
//   torch: torch::save / torch::load of the same tensors (TorchScript archive; fsync added to the save for fairness).
// Three rounds, alternating; medians; ratio = raw time / our time (target >= 0.7). Reads hit the page cache for
// every variant alike (the files were just written).
//   build/bin/checkpoint_bench [dir]
#include <accelerate/accelerate.hpp>

#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <unistd.h>

#include "bench_util.hpp"
#include "detail/durable_file.hpp"  // file_crc32: the checksum pass alone

namespace fs = std::filesystem;

namespace {
using bench::Clock;
using bench::median;
template <class F>
double seconds(F&& f) {
  const auto t0 = Clock::now();
  f();
  return std::chrono::duration<double>(Clock::now() - t0).count();
}
void fsync_file(const std::string& path) {
  FILE* f = std::fopen(path.c_str(), "rb+");
  if (f) {
    ::fsync(::fileno(f));
    std::fclose(f);
  }
}
}  // namespace

int main(int argc, char** argv) {
  const fs::path root = argc > 1 ? fs::path(argv[1]) : fs::temp_directory_path() / "accelerate_checkpoint_bench";
  fs::remove_all(root);
  fs::create_directories(root);
  accelerate::AcceleratorOptions options;
  options.cpu = true;
  accelerate::Accelerator acc(options);
  torch::nn::Linear model(8192, 16384);
  acc.prepare(model);
  std::vector<torch::Tensor> tensors;
  int64_t bytes = 0;
  for (auto& p : model->parameters()) {
    tensors.push_back(p.detach());
    bytes += p.numel() * p.element_size();
  }
  std::vector<double> ours_save, ours_load, raw_save, raw_load, torch_save, torch_load, crc;
  for (int round = 0; round < 3; ++round) {
    const auto ours_dir = (root / ("ours_" + std::to_string(round))).string();
    const auto raw_file = (root / ("raw_" + std::to_string(round))).string();
    const auto torch_file = (root / ("torch_" + std::to_string(round) + ".pt")).string();
    ours_save.push_back(seconds([&] { acc.save_state(ours_dir); }));
    raw_save.push_back(seconds([&] {
      FILE* f = std::fopen(raw_file.c_str(), "wb");
      for (auto& t : tensors) std::fwrite(t.data_ptr(), 1, t.numel() * t.element_size(), f);
      std::fflush(f);
      ::fsync(::fileno(f));
      std::fclose(f);
    }));
    torch_save.push_back(seconds([&] {
      torch::save(tensors, torch_file);
      fsync_file(torch_file);
    }));
    ours_load.push_back(seconds([&] { acc.load_state(ours_dir); }));
    // The CRC-32 pass over the folder's files, which save_state (checksums.json) and load_state (verification on
    // the main process) each make once: the cost of verified checkpoints.
    crc.push_back(seconds([&] {
      for (const auto& entry : fs::directory_iterator(ours_dir)) {
        if (entry.is_regular_file()) accelerate::detail::file_crc32(entry.path());
      }
    }));
    raw_load.push_back(seconds([&] {
      FILE* f = std::fopen(raw_file.c_str(), "rb");
      for (auto& t : tensors) {
        if (std::fread(t.data_ptr(), 1, t.numel() * t.element_size(), f) == 0) break;
      }
      std::fclose(f);
    }));
    torch_load.push_back(seconds([&] {
      std::vector<torch::Tensor> loaded;
      torch::load(loaded, torch_file);
      torch::NoGradGuard no_grad;
      for (size_t i = 0; i < loaded.size(); ++i) tensors[i].copy_(loaded[i]);  // into the model, as load_state does
    }));
    fs::remove_all(ours_dir);
    fs::remove(raw_file);
    fs::remove(torch_file);
  }
  const double mb = bytes / 1e6;
  std::printf("state: %.0f MB; medians of 3 rounds\n", mb);
  std::printf("%-28s %10s %10s %12s\n", "", "save [s]", "load [s]", "save MB/s");
  std::printf("%-28s %10.3f %10.3f %12.0f\n", "accelerate-cpp save/load_state", median(ours_save), median(ours_load),
              mb / median(ours_save));
  std::printf("%-28s %10.3f %10.3f %12.0f\n", "raw fwrite+fsync / fread", median(raw_save), median(raw_load),
              mb / median(raw_save));
  std::printf("%-28s %10.3f %10.3f %12.0f\n", "torch::save / torch::load", median(torch_save), median(torch_load),
              mb / median(torch_save));
  std::printf("ratio raw/ours: save %.2f, load %.2f (target >= 0.7); torch/ours: save %.2f, load %.2f\n",
              median(raw_save) / median(ours_save), median(raw_load) / median(ours_load),
              median(torch_save) / median(ours_save), median(torch_load) / median(ours_load));
  std::printf(
      "checksums (CRC-32 of every file, once in save and once in load): %.3f s; without them save %.3f s, "
      "load %.3f s: ratio with/without save %.2f, load %.2f\n",
      median(crc), median(ours_save) - median(crc), median(ours_load) - median(crc),
      median(ours_save) / (median(ours_save) - median(crc)), median(ours_load) / (median(ours_load) - median(crc)));
  fs::remove_all(root);
  return 0;
}
