// Datasets and helpers shared by the data loader's unit tests (data_loader_test, loader_workers_test,
// batch_source_test).
#pragma once

#include <accelerate/accelerate.hpp>
#include <accelerate/data_loader.hpp>
#include <accelerate/gradient_state.hpp>

#include <ATen/ATen.h>

#include <optional>
#include <stdexcept>
#include <vector>

namespace accelerate::testing {

/// Samples with random augmentation drawn from data_generator(), and a field whose length varies.
class NoisyDataset final : public Dataset {
 public:
  explicit NoisyDataset(int64_t n, int64_t fail_at = -1) : n_(n), fail_at_(fail_at) {}
  int64_t size() const override { return n_; }
  Batch get(int64_t i) const override {
    if (i == fail_at_) throw std::runtime_error("cannot decode this sample");
    auto noise = at::rand({3}, data_generator());
    return Batch{{"input_ids", at::arange(i % 5 + 1, at::kLong) + i}, {"noise", noise}};
  }

 private:
  int64_t n_, fail_at_;
};

inline std::vector<Batch> one_epoch(DataLoaderOptions o, int64_t n, int64_t skip = 0) {
  DataLoader loader(std::make_shared<NoisyDataset>(n), o);
  loader.skip_first_batches(skip);
  std::vector<Batch> out;
  for (auto& b : loader) out.push_back(b);
  return out;
}

inline bool same(const Batch& a, const Batch& b) {
  if (a.names() != b.names()) return false;
  for (const auto& [name, t] : a.items()) {
    if (!at::equal(t, b.at(name))) return false;
  }
  return true;
}

/// The stream 0..n-1 as samples {"x": i}; throws on sample `fail_at`.
class CountingStream final : public IterableDataset {
 public:
  explicit CountingStream(int64_t n, int64_t fail_at = -1) : n_(n), fail_at_(fail_at) {}
  void start(int64_t) override { i_ = 0; }
  std::optional<Batch> next() override {
    if (i_ == n_) return std::nullopt;
    if (i_ == fail_at_) throw std::runtime_error("truncated record");
    return Batch{{"x", at::scalar_tensor(i_++, at::kLong)}};
  }

 private:
  int64_t n_, fail_at_, i_ = 0;
};

inline std::vector<std::vector<int64_t>> stream_batches(DataLoader& loader, GradientState* gs = nullptr,
                                                        int64_t* last_remainder = nullptr) {
  std::vector<std::vector<int64_t>> out;
  for (auto& b : loader) {
    const auto x = b.at("x");
    out.emplace_back(x.data_ptr<int64_t>(), x.data_ptr<int64_t>() + x.numel());
    if (gs && gs->end_of_dataloader() && last_remainder) *last_remainder = gs->remainder();
  }
  return out;
}

}  // namespace accelerate::testing
