// The DataLoader as a prepared loader serves it: HF's per-rank batches and length, the remainder and epochs, a
// resume's skip, bad input, and the device copy's overlap on a GPU.
#include <accelerate/accelerate.hpp>
#include <accelerate/data_loader.hpp>
#include <accelerate/gradient_state.hpp>

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include "detail/data_loader_access.hpp"
#include "loader_fixtures.hpp"
#include "shard_cases.hpp"

using namespace accelerate;
using namespace accelerate::testing;

TEST(DataLoader, PreparedLoaderYieldsHfBatchesAndLength) {
  ProcessState state(EnvironmentVariables{}, ProcessStateOptions{.cpu = true});
  int checked = 0;
  for (const auto& c : kShardCases) {
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
      EXPECT_EQ(loader.peek_epoch_indices(), c.expected[rank]) << case_name(c) << " rank " << rank;
      if (c.seed < 0 && (c.even || c.drop_last)) {
        // HF's __len__; without even_batches it can count a batch a short rank never gets
        EXPECT_EQ(loader.size(), static_cast<int64_t>(c.expected[rank].size())) << case_name(c);
      }
      // Iterating yields exactly those samples, with the end-of-data flag set on the last batch only.
      std::vector<std::vector<int64_t>> seen;
      int64_t flagged_at = -1;
      for (auto& batch : loader) {
        seen.emplace_back(batch.data.data_ptr<int64_t>(), batch.data.data_ptr<int64_t>() + batch.data.numel());
        if (gs.end_of_dataloader()) flagged_at = static_cast<int64_t>(seen.size()) - 1;
      }
      EXPECT_EQ(seen, c.expected[rank]) << case_name(c);
      if (!seen.empty()) {
        EXPECT_EQ(flagged_at, static_cast<int64_t>(seen.size()) - 1) << case_name(c);
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
