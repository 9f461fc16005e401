// Loader throughput on a CPU-heavy collate: variable-length feature sequences (an audio-like (L, 64) float tensor
// per sample, L in [100, 400], generated from the sample's index), random crops, per-sample normalisation and
// padding to the batch's longest with an attention mask. bench/loader_reference.py does the same in Python with
// PyTorch's DataLoader; bench/loader_bench.sh runs both alternately for each worker count.
//   loader_bench <num_workers> [epochs]   -> prints samples_per_s=<x>
#include <accelerate/accelerate.hpp>

#include <torch/torch.h>

#include <iostream>
#include <string>

#include "bench_util.hpp"

namespace {

constexpr int64_t kSamples = 4096, kBatch = 32, kFeatures = 64;

int64_t length_of(int64_t i) { return 100 + (i * 37) % 301; }

/// Sample i: "features" (L_i, 64) float32 drawn from a generator seeded with i.
class Frames final : public accelerate::Dataset {
 public:
  int64_t size() const override { return kSamples; }
  accelerate::Batch get(int64_t i) const override {
    auto generator = at::make_generator<at::CPUGeneratorImpl>(static_cast<uint64_t>(i));
    return accelerate::Batch{{"features", at::randn({length_of(i), kFeatures}, generator)}};
  }
};

/// Random crop of half to all of each sample, normalised per feature, then pad_collate.
accelerate::Collate crop_normalise_pad() {
  auto pad = accelerate::pad_collate({.mask_from = "features"});
  return [pad](const std::vector<accelerate::Batch>& samples) {
    auto generator = accelerate::data_generator();
    std::vector<accelerate::Batch> crops;
    crops.reserve(samples.size());
    for (const auto& s : samples) {
      const auto& x = s.at("features");
      const int64_t n = x.size(0);
      const int64_t len = at::randint(n / 2, n + 1, {1}, generator).item<int64_t>();
      const int64_t start = at::randint(0, n - len + 1, {1}, generator).item<int64_t>();
      auto crop = x.narrow(0, start, len);
      crops.push_back(accelerate::Batch{{"features", (crop - crop.mean(0)) / (crop.std(0) + 1e-5)}});
    }
    return pad(crops);
  };
}

}  // namespace

int main(int argc, char** argv) {
  const int workers = argc > 1 ? std::stoi(argv[1]) : 1;
  const int epochs = argc > 2 ? std::stoi(argv[2]) : 2;
  accelerate::DataLoader loader(std::make_shared<Frames>(), {.batch_size = kBatch,
                                                             .shuffle = true,
                                                             .seed = 0,
                                                             .num_workers = workers,
                                                             .persistent_workers = true,
                                                             .collate = crop_normalise_pad()});
  auto run_epoch = [&] {
    int64_t samples = 0;
    for (auto& batch : loader) samples += batch.at("features").size(0);
    return samples;
  };
  run_epoch();  // warm-up: threads started, allocator and pages touched
  const auto start = bench::Clock::now();
  int64_t samples = 0;
  for (int e = 0; e < epochs; ++e) samples += run_epoch();
  const double seconds = std::chrono::duration<double>(bench::Clock::now() - start).count();
  std::cout << "samples_per_s=" << static_cast<double>(samples) / seconds << std::endl;
}
