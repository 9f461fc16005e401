// Sharding equals HF Accelerate's BatchSamplerShard: the expected lists come from HF itself
// (tests/parity/generate_shard_cases.py), for sequential and seeded shuffled orders.
#include <accelerate/accelerate.hpp>
#include <accelerate/data_loader.hpp>
#include <accelerate/gradient_state.hpp>

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <gtest/gtest.h>

#include "detail/data_loader_access.hpp"
#include "detail/sharding.hpp"

using namespace accelerate;
using Lists = std::vector<std::vector<std::vector<int64_t>>>;

namespace {
struct Case {
  int64_t size, batch_size;
  int world;
  bool even, split, drop_last;
  int64_t seed, epoch;
  Lists expected;  // per rank
};
const std::vector<Case> kCases = {
#include "../parity/shard_cases.inc"
};

std::string name(const Case& c) {
  return accelerate::detail::concat("n=", c.size, " bs=", c.batch_size, " world=", c.world, " even=", c.even,
                                    " split=", c.split, " drop_last=", c.drop_last, " seed=", c.seed,
                                    " epoch=", c.epoch);
}
}  // namespace

TEST(Sharding, MatchesHfForEveryCase) {
  ASSERT_GT(kCases.size(), 300u);
  for (const auto& c : kCases) {
    std::vector<int64_t> order;
    if (c.seed < 0) {
      order = accelerate::detail::epoch_order(c.size, false, nullptr);
    } else {
      auto gen = at::make_generator<at::CPUGeneratorImpl>(static_cast<uint64_t>(c.seed + c.epoch));
      order = accelerate::detail::epoch_order(c.size, true, &gen);  // SeedableRandomSampler: seed + epoch
    }
    auto batches = accelerate::detail::make_batches(order, c.batch_size, c.drop_last);
    for (int rank = 0; rank < c.world; ++rank) {
      auto got =
          accelerate::detail::shard_batches(batches, c.batch_size, c.drop_last, {c.world, rank, c.split, c.even});
      EXPECT_EQ(got, c.expected[rank]) << name(c) << " rank " << rank;
    }
  }
}

TEST(DataLoader, PreparedLoaderYieldsHfBatchesAndLength) {
  ProcessState state(EnvironmentVariables{}, ProcessStateOptions{.cpu = true});
  int checked = 0;
  for (const auto& c : kCases) {
    if (c.size < c.world) continue;  // refused at prepare (tested below)
    auto data = at::arange(c.size, at::kLong);
    for (int rank = 0; rank < c.world; ++rank) {
      DataLoaderOptions o{.batch_size = c.batch_size, .shuffle = c.seed >= 0, .drop_last = c.drop_last};
      if (c.seed >= 0) o.seed = c.seed;
      DataLoader loader(std::make_shared<TensorDataset>(data, data), o);
      GradientState gs;
      accelerate::detail::DataLoaderAccess::prepare(loader, state, gs, {c.world, rank, c.split, c.even},
                                                    c10::Device(c10::kCPU));
      loader.set_epoch(c.epoch);
      EXPECT_EQ(loader.peek_epoch_indices(), c.expected[rank]) << name(c) << " rank " << rank;
      if (c.seed < 0 && (c.even || c.drop_last)) {
        // HF's __len__; without even_batches it can count a batch a short rank never gets
        EXPECT_EQ(loader.size(), static_cast<int64_t>(c.expected[rank].size())) << name(c);
      }
      // Iterating yields exactly those samples, with the end-of-data flag set on the last batch only.
      std::vector<std::vector<int64_t>> seen;
      int64_t flagged_at = -1;
      for (auto& batch : loader) {
        seen.emplace_back(batch.data.data_ptr<int64_t>(), batch.data.data_ptr<int64_t>() + batch.data.numel());
        if (gs.end_of_dataloader()) flagged_at = static_cast<int64_t>(seen.size()) - 1;
      }
      EXPECT_EQ(seen, c.expected[rank]) << name(c);
      if (!seen.empty()) {
        EXPECT_EQ(flagged_at, static_cast<int64_t>(seen.size()) - 1) << name(c);
      }
      EXPECT_FALSE(gs.in_dataloader());
      ++checked;
    }
  }
  EXPECT_GT(checked, 500);
}

TEST(DataLoader, RemainderAndEpochs) {
  ProcessState state(EnvironmentVariables{}, ProcessStateOptions{.cpu = true});
  auto data = at::arange(10, at::kLong);
  DataLoader loader(std::make_shared<TensorDataset>(data, data), {.batch_size = 4, .shuffle = true, .seed = 5});
  GradientState gs;
  accelerate::detail::DataLoaderAccess::prepare(loader, state, gs, {2, 0, false, true}, c10::Device(c10::kCPU));
  EXPECT_EQ(loader.total_batch_size(), 8);
  int64_t remainder = -2;
  for (auto& batch : loader) {
    (void)batch;
    remainder = gs.remainder();
  }
  EXPECT_EQ(remainder, 2);  // 10 % 8, as HF
  EXPECT_EQ(loader.epoch(), 1);
  auto epoch1 = loader.peek_epoch_indices();
  loader.set_epoch(0);
  EXPECT_NE(loader.peek_epoch_indices(), epoch1);  // another epoch, another permutation
}

TEST(DataLoader, SkipFirstBatches) {
  auto data = at::arange(12, at::kLong);
  DataLoader loader(std::make_shared<TensorDataset>(data, data), {.batch_size = 2});
  loader.skip_first_batches(4);
  EXPECT_EQ(loader.size(), 2);
  std::vector<int64_t> first;
  for (auto& b : loader) first.push_back(b.data[0].item<int64_t>());
  EXPECT_EQ(first, (std::vector<int64_t>{8, 10}));
  EXPECT_EQ(loader.size(), 6);  // only the next epoch skips
}

TEST(DataLoader, BadInput) {
  ProcessState state(EnvironmentVariables{}, ProcessStateOptions{.cpu = true});
  GradientState gs;
  auto tiny = at::arange(3, at::kLong);
  DataLoader small(std::make_shared<TensorDataset>(tiny, tiny), {.batch_size = 1});
  EXPECT_NO_THROW(accelerate::detail::DataLoaderAccess::prepare(small, state, gs, {4, 3, false, true},
                                                                c10::Device(c10::kCPU)));  // served as HF does
  EXPECT_EQ(small.peek_epoch_indices(),
            (std::vector<std::vector<int64_t>>{{0}}));  // the round completed from the start
  auto none = at::empty({0}, at::kLong);
  DataLoader empty(std::make_shared<TensorDataset>(none, none), {.batch_size = 1});
  EXPECT_THROW(
      accelerate::detail::DataLoaderAccess::prepare(empty, state, gs, {1, 0, false, true}, c10::Device(c10::kCPU)),
      ConfigError);
  DataLoader split(std::make_shared<TensorDataset>(tiny, tiny), {.batch_size = 3});
  EXPECT_THROW(
      accelerate::detail::DataLoaderAccess::prepare(split, state, gs, {2, 0, true, true}, c10::Device(c10::kCPU)),
      ConfigError);
  EXPECT_THROW(DataLoader(std::make_shared<TensorDataset>(tiny, tiny), {.batch_size = 0}), ConfigError);
  EXPECT_THROW(TensorDataset(tiny, at::arange(4)), ConfigError);
}

TEST(DataLoader, LoaderErrorsReachTheTrainingThread) {
  struct Failing final : Dataset {
    int64_t size() const override { return 8; }
    Batch get(int64_t index) const override {
      if (index == 5) throw ConfigError("sample 5 is corrupt");
      return {at::ones({1}), at::ones({1})};
    }
  };
  DataLoader loader(std::make_shared<Failing>(), {.batch_size = 2});
  EXPECT_THROW(
      {
        for (auto& b : loader) (void)b;
      },
      ConfigError);
}

namespace {
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

std::vector<Batch> one_epoch(DataLoaderOptions o, int64_t n, int64_t skip = 0) {
  DataLoader loader(std::make_shared<NoisyDataset>(n), o);
  loader.skip_first_batches(skip);
  std::vector<Batch> out;
  for (auto& b : loader) out.push_back(b);
  return out;
}

bool same(const Batch& a, const Batch& b) {
  if (a.names() != b.names()) return false;
  for (const auto& [name, t] : a.items()) {
    if (!at::equal(t, b.at(name))) return false;
  }
  return true;
}
}  // namespace

// Batches (random augmentation included) are bitwise the same for 0, 1 and 4 workers, and after skipping into the
// epoch (a resume) the remaining batches are the same as the uninterrupted epoch's.
TEST(DataLoaderWorkers, SameBatchesForAnyWorkerCountAndAfterASkip) {
  DataLoaderOptions o{.batch_size = 3, .shuffle = true, .seed = 11, .collate = pad_collate()};
  o.num_workers = 0;
  const auto reference = one_epoch(o, 29);
  ASSERT_EQ(reference.size(), 10u);
  for (int workers : {1, 4}) {
    o.num_workers = workers;
    for (int factor : {1, 3}) {
      o.prefetch_factor = factor;
      const auto got = one_epoch(o, 29);
      ASSERT_EQ(got.size(), reference.size());
      for (size_t k = 0; k < got.size(); ++k)
        EXPECT_TRUE(same(got[k], reference[k])) << workers << " workers, batch " << k;
    }
    const auto resumed = one_epoch(o, 29, /*skip=*/4);
    ASSERT_EQ(resumed.size(), 6u);
    for (size_t k = 0; k < resumed.size(); ++k) EXPECT_TRUE(same(resumed[k], reference[k + 4])) << "batch " << k + 4;
  }
  EXPECT_FALSE(at::equal(reference[0].at("noise")[0], reference[0].at("noise")[1]));  // the noise is random
}

// An unshuffled loader's augmentation is drawn anew each epoch (as torch's base seed is), still the same for any
// worker count, and a resume at the second epoch draws that epoch's numbers again.
TEST(DataLoaderWorkers, AugmentationDrawsAreNewEachEpochWithoutShuffling) {
  auto noise_of = [](DataLoader& loader) {
    std::vector<at::Tensor> out;
    for (auto& b : loader) out.push_back(b.at("noise"));
    return out;
  };
  std::vector<at::Tensor> reference;
  for (int workers : {0, 1, 4}) {
    DataLoaderOptions o{.batch_size = 3, .num_workers = workers, .collate = pad_collate()};
    at::manual_seed(3);  // the loader's generator starts from the global one
    DataLoader loader(std::make_shared<NoisyDataset>(12), o);
    const auto first = noise_of(loader);
    const auto after_first = loader.position();
    const auto second = noise_of(loader);
    ASSERT_EQ(first.size(), 4u);
    ASSERT_EQ(second.size(), 4u);
    for (size_t k = 0; k < first.size(); ++k)
      EXPECT_FALSE(at::equal(first[k], second[k])) << workers << " workers: batch " << k << " repeats its draws";
    if (reference.empty()) reference = second;
    for (size_t k = 0; k < second.size(); ++k) EXPECT_TRUE(at::equal(second[k], reference[k])) << workers;
    DataLoader resumed(std::make_shared<NoisyDataset>(12), o);
    resumed.restore({after_first.epoch, 2, after_first.generator_state});
    const auto rest = noise_of(resumed);
    ASSERT_EQ(rest.size(), 2u);
    EXPECT_TRUE(at::equal(rest[0], second[2]));
    EXPECT_TRUE(at::equal(rest[1], second[3]));
  }
}

// A dataset that throws on sample 37: the loop gets a DataError naming 37, in the batch's turn, for any worker
// count; the loader (and its workers) can then be destroyed mid-epoch without hanging.
TEST(DataLoaderWorkers, AFailingSampleIsNamed) {
  for (int workers : {0, 1, 3}) {
    DataLoader loader(std::make_shared<NoisyDataset>(60, 37),
                      {.batch_size = 4, .num_workers = workers, .collate = pad_collate()});
    int64_t delivered = 0;
    try {
      for (auto& batch : loader) {
        (void)batch;
        ++delivered;
      }
      FAIL() << "no error";
    } catch (const DataError& e) {
      EXPECT_NE(std::string(e.what()).find("loading sample 37 (batch 9 of epoch 0"), std::string::npos) << e.what();
      EXPECT_NE(std::string(e.what()).find("cannot decode this sample"), std::string::npos) << e.what();
    }
    EXPECT_EQ(delivered, 9) << workers << " workers: every batch before the failing one arrives";
  }
}

TEST(DataLoaderWorkers, PersistentWorkersAndEarlyExit) {
  DataLoader loader(
      std::make_shared<NoisyDataset>(40),
      {.batch_size = 2, .seed = 3, .num_workers = 2, .persistent_workers = true, .collate = pad_collate()});
  std::vector<Batch> first, second;
  for (auto& b : loader) first.push_back(b);
  for (auto& b : loader) {
    second.push_back(b);
    if (second.size() == 3) break;  // leaves mid-epoch: the next begin() starts a fresh epoch
  }
  int64_t third = 0;
  for (auto& b : loader) {
    (void)b;
    ++third;
  }
  EXPECT_EQ(first.size(), 20u);
  EXPECT_EQ(third, 20);
  EXPECT_FALSE(same(first[0], second[0]));  // another epoch: other noise
}

// HF's IterableDatasetShard over a stream of 0..n-1, against HF's own output (tests/parity/).
namespace {
struct IterableCase {
  int64_t n, batch_size;
  int world;
  bool split, drop_last;
  std::vector<std::vector<std::vector<int64_t>>> expected;  // per rank, per batch
};
const std::vector<IterableCase> kIterableCases = {
#include "../parity/iterable_shard_cases.inc"
};
}  // namespace

TEST(IterableShard, MatchesHf) {
  ASSERT_GT(kIterableCases.size(), 200u);
  for (const auto& c : kIterableCases) {
    for (int rank = 0; rank < c.world; ++rank) {
      accelerate::detail::IterableShard<int64_t> shard(c.batch_size, c.drop_last, {c.world, rank, c.split, true});
      std::vector<int64_t> samples;
      for (int64_t i = 0; i < c.n; ++i) {
        for (auto s : shard.push(i)) samples.push_back(s);
      }
      for (auto s : shard.finish()) samples.push_back(s);
      std::vector<std::vector<int64_t>> got;
      const int64_t per_process = c.split ? c.batch_size / c.world : c.batch_size;
      for (size_t i = 0; i < samples.size(); i += static_cast<size_t>(per_process)) {
        got.emplace_back(samples.begin() + static_cast<std::ptrdiff_t>(i),
                         samples.begin() + static_cast<std::ptrdiff_t>(std::min(samples.size(), i + per_process)));
      }
      EXPECT_EQ(got, c.expected[static_cast<size_t>(rank)])
          << "n=" << c.n << " bs=" << c.batch_size << " world=" << c.world << " split=" << c.split
          << " drop_last=" << c.drop_last << " rank " << rank;
    }
  }
}

namespace {
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

std::vector<std::vector<int64_t>> stream_batches(DataLoader& loader, GradientState* gs = nullptr,
                                                 int64_t* last_remainder = nullptr) {
  std::vector<std::vector<int64_t>> out;
  for (auto& b : loader) {
    const auto x = b.at("x");
    out.emplace_back(x.data_ptr<int64_t>(), x.data_ptr<int64_t>() + x.numel());
    if (gs && gs->end_of_dataloader() && last_remainder) *last_remainder = gs->remainder();
  }
  return out;
}
}  // namespace

// A loader over an IterableDataset shards it as HF's IterableDatasetShard (the parity cases), with 0 or 1 loading
// threads; the last batch is flagged with the number of real samples of its global batch.
TEST(StreamLoader, ShardsAsHfAndFlagsTheLastBatch) {
  ProcessState state(EnvironmentVariables{}, ProcessStateOptions{.cpu = true});
  int checked = 0;
  for (const auto& c : kIterableCases) {
    if (c.n == 0) continue;  // an empty stream gives an empty epoch (below)
    for (int workers : {0, 1}) {
      for (int rank = 0; rank < c.world; ++rank) {
        DataLoader loader(std::make_shared<CountingStream>(c.n),
                          {.batch_size = c.batch_size, .drop_last = c.drop_last, .num_workers = workers});
        GradientState gs;
        accelerate::detail::DataLoaderAccess::prepare(loader, state, gs, {c.world, rank, c.split, true},
                                                      c10::Device(c10::kCPU));
        int64_t remainder = -2;
        EXPECT_EQ(stream_batches(loader, &gs, &remainder), c.expected[static_cast<size_t>(rank)])
            << "n=" << c.n << " bs=" << c.batch_size << " world=" << c.world << " rank " << rank;
        const int64_t global = c.split ? c.batch_size : c.batch_size * c.world;
        if (!c.expected[static_cast<size_t>(rank)].empty()) {
          EXPECT_EQ(remainder, c.drop_last ? -1 : c.n % global) << "n=" << c.n << " global " << global;
        }
        ++checked;
      }
    }
  }
  EXPECT_GT(checked, 300);
  DataLoader empty(std::make_shared<CountingStream>(0), {.batch_size = 2});
  EXPECT_TRUE(stream_batches(empty).empty());
  EXPECT_THROW(empty.size(), ConfigError);
  EXPECT_THROW(DataLoader(std::make_shared<CountingStream>(4), {.shuffle = true}), ConfigError);
}

TEST(StreamLoader, ErrorsNameTheSampleAndSkipResumes) {
  for (int workers : {0, 1}) {
    DataLoader loader(std::make_shared<CountingStream>(50, 37), {.batch_size = 4, .num_workers = workers});
    try {
      stream_batches(loader);
      FAIL() << "no error";
    } catch (const DataError& e) {
      EXPECT_NE(std::string(e.what()).find("reading sample 37 of the stream (epoch 0) failed: truncated record"),
                std::string::npos)
          << e.what();
    }
    DataLoader resumed(std::make_shared<CountingStream>(10), {.batch_size = 3, .num_workers = workers});
    resumed.skip_first_batches(2);
    EXPECT_EQ(stream_batches(resumed), (std::vector<std::vector<int64_t>>{{6, 7, 8}, {9, 0, 1}}));
  }
}

// Leaving a loop with `break` ends the epoch: the position a checkpoint records then is what the next loop does
// (a new epoch from its start), so a resume and an uninterrupted run read the same batches.
TEST(DataLoader, ABreakEndsTheEpochForCheckpoints) {
  auto data = at::arange(24, at::kLong);
  DataLoader loader(std::make_shared<TensorDataset>(data, data), {.batch_size = 4});
  for (auto& b : loader) {
    (void)b;
    break;
  }
  const auto p = loader.position();
  EXPECT_EQ(p.epoch, 1);
  EXPECT_EQ(p.batches, 0);
  DataLoader restored(std::make_shared<TensorDataset>(data, data), {.batch_size = 4});
  restored.restore(p);
  std::vector<int64_t> next, resumed;
  for (auto& b : loader) next.push_back(b.data[0].item<int64_t>());
  for (auto& b : restored) resumed.push_back(b.data[0].item<int64_t>());
  EXPECT_EQ(next, resumed);
  EXPECT_EQ(next.size(), 6u);
}

// On a GPU with pin_memory, batch k+1 is copied on a side stream while step k computes: the batches are those of
// the CPU loader, for map-style and stream loaders, even when the loop keeps the GPU busy and writes into each
// batch it gets. Skipped without CUDA (scripts/gpu-check.sh runs it on a GPU).
TEST(DataLoaderCuda, OverlappedCopiesGiveTheCpuBatches) {
  if (!at::globalContext().hasCUDA()) GTEST_SKIP() << "no CUDA device";
  ProcessState state(EnvironmentVariables{}, ProcessStateOptions{.cpu = true});
  const DataLoaderOptions base{.batch_size = 3, .shuffle = true, .seed = 11, .collate = pad_collate()};
  const auto reference = one_epoch(base, 29);
  const auto busy = at::randn({2048, 2048}, at::Device(at::kCUDA));
  for (int workers : {0, 2}) {
    for (bool pin : {false, true}) {
      auto o = base;
      o.num_workers = workers, o.pin_memory = pin;
      DataLoader loader(std::make_shared<NoisyDataset>(29), o);
      GradientState gs;
      accelerate::detail::DataLoaderAccess::prepare(loader, state, gs, {1, 0, false, true}, c10::Device(c10::kCUDA, 0));
      size_t k = 0;
      for (auto& b : loader) {
        ASSERT_TRUE(b.at("input_ids").is_cuda());
        (void)at::matmul(busy, busy);  // step k: the next batch's copy runs beside it
        ASSERT_LT(k, reference.size());
        EXPECT_TRUE(same(apply(b, [](const at::Tensor& t) { return t.cpu(); }), reference[k]))
            << workers << " workers, pin_memory " << pin << ", batch " << k;
        b.at("noise").fill_(-1);
        ++k;
      }
      EXPECT_EQ(k, reference.size());
    }
  }
  // The next batch is loaded while this one is handed out: its failure still comes in its own turn.
  for (int workers : {0, 2}) {
    DataLoader failing(std::make_shared<NoisyDataset>(60, 37),
                       {.batch_size = 4, .num_workers = workers, .pin_memory = true, .collate = pad_collate()});
    GradientState fgs;
    accelerate::detail::DataLoaderAccess::prepare(failing, state, fgs, {1, 0, false, true}, c10::Device(c10::kCUDA, 0));
    int64_t delivered = 0;
    EXPECT_THROW(
        {
          for (auto& b : failing) {
            (void)b;
            ++delivered;
          }
        },
        DataError);
    EXPECT_EQ(delivered, 9) << workers << " workers";
  }
  DataLoader stream(std::make_shared<CountingStream>(10), {.batch_size = 3, .pin_memory = true});
  GradientState gs;
  accelerate::detail::DataLoaderAccess::prepare(stream, state, gs, {1, 0, false, true}, c10::Device(c10::kCUDA, 0));
  std::vector<std::vector<int64_t>> got;
  for (auto& b : stream) {
    const auto x = b.at("x").cpu();
    got.emplace_back(x.data_ptr<int64_t>(), x.data_ptr<int64_t>() + x.numel());
  }
  EXPECT_EQ(got, (std::vector<std::vector<int64_t>>{{0, 1, 2}, {3, 4, 5}, {6, 7, 8}, {9, 0, 1}}));
}
