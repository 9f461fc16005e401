// Runs in every rank (under accelerate-cpp launch, torchrun or mpirun): each test calls the collectives in
// the same order on every rank and checks the result this rank sees.
#include <accelerate/accelerate.hpp>

#include "detail/communicator.hpp"

#include <ATen/ATen.h>
#include <filesystem>
#include <fstream>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

using namespace accelerate;

namespace {
ProcessState* g_state = nullptr;
const ProcessState& S() { return *g_state; }
int rank() { return S().process_index(); }
int world() { return S().num_processes(); }
/// Tensors under test live on the state's device: CPU here, the rank's GPU when ACCELERATE_TEST_DEVICE=cuda.
at::Tensor on_device(const at::Tensor& t) { return t.to(S().device()); }
}  // namespace

TEST(Collectives, WorldIsConsistent) {
  auto ranks = gather(S(), at::full({1}, rank(), at::kLong));
  ASSERT_EQ(ranks.numel(), world());
  for (int r = 0; r < world(); ++r) EXPECT_EQ(ranks[r].item<int64_t>(), r);
  auto locals = gather_object(S(), c10::IValue(static_cast<int64_t>(S().local_process_index())));
  EXPECT_EQ(static_cast<int>(locals.size()), world());
  EXPECT_EQ(S().is_main_process(), rank() == 0);
  EXPECT_EQ(S().is_last_process(), rank() == world() - 1);
  // Issue 11, item 8: "nccl" on GPUs, "gloo" on CPUs.
  const char* chosen = std::getenv("ACCELERATE_TEST_BACKEND");
  const std::string expected = chosen ? chosen : S().device().is_cuda() ? "nccl" : "gloo";
  EXPECT_EQ(S().backend(), S().use_distributed() ? expected : "");
  if (S().backend() == "gloo") {
    // Issue 11, item 1: Gloo serves CUDA tensors too (torch's "cpu:gloo,cuda:gloo"), so backend gloo on a GPU
    // machine does not fail at prepare(model) with "No backend type associated with device type cuda".
    auto& group = accelerate::detail::communicator_of(S())->group();
    EXPECT_EQ(group.getBackend(c10::DeviceType::CUDA).get(), group.getBackend(c10::DeviceType::CPU).get());
  }
}

TEST(Collectives, GatherUnevenFirstDimsAcrossDtypes) {
  for (auto dtype : {at::kFloat, at::kDouble, at::kLong, at::kInt, at::kByte, at::kBFloat16, at::kHalf}) {
    // rank r holds r+1 rows of width 3 filled with r.
    auto mine = on_device(at::full({rank() + 1, 3}, rank(), at::TensorOptions().dtype(dtype)));
    auto all = gather(S(), mine);
    EXPECT_EQ(all.device(), S().device());
    all = all.cpu();
    EXPECT_EQ(all.scalar_type(), dtype);
    ASSERT_EQ(all.size(0), world() * (world() + 1) / 2) << dtype;
    ASSERT_EQ(all.size(1), 3);
    int64_t row = 0;
    for (int r = 0; r < world(); ++r) {
      for (int i = 0; i <= r; ++i, ++row) {
        EXPECT_TRUE(at::equal(all[row], at::full({3}, r, all.options()))) << dtype << " row " << row;
      }
    }
  }
}

TEST(Collectives, GatherEqualShapesAndScalars) {
  auto all = gather(S(), at::arange(4, at::kFloat) + 10 * rank());
  ASSERT_EQ(all.numel(), 4 * world());
  for (int r = 0; r < world(); ++r) {
    EXPECT_TRUE(at::equal(all.narrow(0, 4 * r, 4), at::arange(4, at::kFloat) + 10 * r));
  }
  auto scalars = gather(S(), at::scalar_tensor(rank() * 2.0));
  ASSERT_EQ(scalars.dim(), 1);
  ASSERT_EQ(scalars.numel(), world());
  EXPECT_DOUBLE_EQ(scalars[world() - 1].item<double>(), 2.0 * (world() - 1));
}

TEST(Collectives, GatherEmptyOnSomeRanks) {
  auto mine = rank() % 2 == 0 ? at::empty({0, 2}) : at::ones({2, 2});
  auto all = gather(S(), mine);
  EXPECT_EQ(all.size(0), 2 * (world() / 2));
}

TEST(Collectives, GatherRejectsMismatchedTrailingDims) {
  if (world() == 1) GTEST_SKIP() << "needs two ranks";
  auto mine = at::zeros({2, rank() + 1});
  try {
    gather(S(), mine);
    FAIL() << "expected a DistributedOperationError";
  } catch (const DistributedOperationError& e) {
    const std::string what = e.what();
    // Debug mode (the same tests run under launch --debug) catches it earlier, in its own words.
    EXPECT_TRUE(what.find("only the first dim may differ") != std::string::npos ||
                what.find("shape mismatches beyond the first dimension (debug mode)") != std::string::npos)
        << what;
  }
  // The group is still usable: the error came from the shape exchange, which every rank finished.
  wait_for_everyone(S());
}

TEST(Collectives, GatherAcrossChangingSizes) {
  // Drives both paths of the uneven gather: repeats and shrinks fit the agreed buffer (one round), growth and
  // sizes above the buffer limit need the second round; dtype and width change between calls too.
  const std::vector<std::pair<int64_t, at::ScalarType>> steps = {
      {10, at::kFloat},     {10, at::kFloat}, {3, at::kFloat}, {10, at::kLong}, {40, at::kFloat}, {1, at::kDouble},
      {200000, at::kFloat}, {5, at::kFloat},  {5, at::kFloat}, {0, at::kFloat}, {7, at::kByte}};
  for (const auto& [rows, dtype] : steps) {
    const int64_t mine_rows = rows + rank();  // uneven on purpose
    auto mine = on_device(at::arange(mine_rows * 2, at::TensorOptions().dtype(at::kDouble))
                              .reshape({mine_rows, 2})
                              .add(1000 * rank())
                              .to(dtype));
    auto all = gather(S(), mine).cpu();
    ASSERT_EQ(all.scalar_type(), dtype);
    int64_t offset = 0;
    for (int r = 0; r < world(); ++r) {
      const int64_t n = rows + r;
      auto expected = at::arange(n * 2, at::TensorOptions().dtype(at::kDouble)).reshape({n, 2}).add(1000 * r).to(dtype);
      EXPECT_TRUE(at::equal(all.narrow(0, offset, n), expected)) << "rows " << rows << " rank " << r;
      offset += n;
    }
    EXPECT_EQ(offset, all.size(0));
  }
}

TEST(Collectives, GatherRejectsMismatchedDtypes) {
  if (world() == 1) GTEST_SKIP() << "needs two ranks";
  auto mine = at::zeros({2}, rank() == 0 ? at::kFloat : at::kDouble);
  EXPECT_THROW(gather(S(), mine), DistributedOperationError);
  wait_for_everyone(S());
}

TEST(Collectives, GatherObject) {
  auto names = gather_object(S(), c10::IValue("rank-" + std::to_string(rank()) + std::string(rank() * 7, 'x')));
  ASSERT_EQ(static_cast<int>(names.size()), world());
  for (int r = 0; r < world(); ++r) {
    EXPECT_EQ(names[r].toStringRef(), "rank-" + std::to_string(r) + std::string(r * 7, 'x'));
  }
  c10::Dict<std::string, int64_t> stats;
  stats.insert("rank", rank());
  stats.insert("items", 10 + rank());
  auto dicts = gather_object(S(), c10::IValue(stats));
  ASSERT_EQ(static_cast<int>(dicts.size()), world());
  EXPECT_EQ(dicts.back().toGenericDict().at("items").toInt(), 10 + world() - 1);
  // Lists are concatenated, as HF's gather_object; ranks contribute different lengths.
  std::vector<int64_t> mine(static_cast<size_t>(rank() + 1), rank());
  auto flat = gather_object(S(), mine);
  ASSERT_EQ(static_cast<int>(flat.size()), world() * (world() + 1) / 2);
  EXPECT_EQ(flat.front(), 0);
  EXPECT_EQ(flat.back(), world() - 1);
  auto tensors = gather_object(S(), c10::IValue(at::full({2}, rank())));
  EXPECT_TRUE(at::equal(tensors.back().toTensor(), at::full({2}, world() - 1)));
}

TEST(Collectives, BroadcastFromEverySource) {
  for (int source = 0; source < world(); ++source) {
    for (auto dtype : {at::kFloat, at::kLong, at::kDouble}) {
      auto t = at::full({5, 2}, rank() * 100 + source, at::TensorOptions().dtype(dtype));
      auto out = broadcast(S(), t, source);
      EXPECT_TRUE(out.is_same(t));  // in place, as HF
      EXPECT_TRUE(at::equal(t, at::full({5, 2}, source * 100 + source, t.options()))) << "source " << source;
    }
  }
  auto strided = at::zeros({4, 4}).t();  // not contiguous: still broadcast in place
  if (rank() == 0) strided.fill_(7);
  broadcast(S(), strided, 0);
  EXPECT_TRUE(at::equal(strided, at::full({4, 4}, 7.0)));
  EXPECT_THROW(broadcast(S(), at::zeros({1}), world()), ConfigError);
}

TEST(Collectives, BroadcastObjectList) {
  const int source = world() - 1;
  std::vector<c10::IValue> objects;
  if (rank() == source)
    objects = {c10::IValue("config"), c10::IValue(int64_t{42}), c10::IValue(3.5)};
  else
    objects = {c10::IValue("stale")};
  broadcast_object_list(S(), objects, source);
  ASSERT_EQ(objects.size(), 3u);
  EXPECT_EQ(objects[0].toStringRef(), "config");
  EXPECT_EQ(objects[1].toInt(), 42);
  EXPECT_DOUBLE_EQ(objects[2].toDouble(), 3.5);
}

// HF's broadcast_object_list of a config dict, in plain C++ values: no c10::Dict to build.
TEST(Collectives, BroadcastObjectListOfPlainValues) {
  Accelerator acc(std::shared_ptr<ProcessState>(g_state, [](ProcessState*) {}), {.cpu = !S().device().is_cuda()});
  const bool source = rank() == 0;
  std::vector<nlohmann::json> config{source ? nlohmann::json{{"lr", 3e-4}, {"layers", {4, 8}}, {"name", "run"}}
                                            : nlohmann::json{}};
  acc.broadcast_object_list(config);
  ASSERT_EQ(config.size(), 1u);
  EXPECT_EQ(config[0].at("layers").at(1), 8);
  EXPECT_EQ(config[0].at("name"), "run");
  std::vector<std::map<std::string, std::vector<double>>> maps{{{"betas", {0.9, 0.95}}}};
  if (!source) maps = {};
  acc.broadcast_object_list(maps);
  ASSERT_EQ(maps.size(), 1u);
  EXPECT_EQ(maps[0].at("betas"), (std::vector<double>{0.9, 0.95}));
  std::vector<std::string> words{source ? "from rank 0" : "stale", "second"};
  std::vector<int> numbers{source ? 7 : -1};
  acc.broadcast_object_list(words);
  acc.broadcast_object_list(numbers);
  EXPECT_EQ(words, (std::vector<std::string>{"from rank 0", "second"}));
  EXPECT_EQ(numbers, std::vector<int>{7});
  // Another element type on a receiving rank: our error naming the call, not c10's internal assert.
  if (world() > 1) {
    if (source) {
      std::vector<std::string> sent{"text"};
      acc.broadcast_object_list(sent);
    } else {
      std::vector<std::map<std::string, double>> expected;
      EXPECT_THROW(acc.broadcast_object_list(expected), DistributedOperationError);
    }
  }
}

TEST(Collectives, Reduce) {
  auto t = on_device(at::full({3}, rank() + 1.0, at::kDouble));
  const double n = world();
  EXPECT_TRUE(at::allclose(reduce(S(), t, Reduction::Sum).cpu(), at::full({3}, n * (n + 1) / 2, at::kDouble)));
  EXPECT_TRUE(at::allclose(reduce(S(), t, Reduction::Mean).cpu(), at::full({3}, (n + 1) / 2, at::kDouble)));
  EXPECT_TRUE(at::equal(reduce(S(), t, Reduction::Max).cpu(), at::full({3}, n, at::kDouble)));
  EXPECT_EQ(t[0].item<double>(), rank() + 1.0);  // the input is untouched: reduce works on a copy
  auto ints = reduce(S(), at::full({2}, rank(), at::kLong), Reduction::Sum);
  EXPECT_EQ(ints[0].item<int64_t>(), world() * (world() - 1) / 2);
  EXPECT_THROW(reduce(S(), at::ones({1}, at::kLong), Reduction::Mean), ConfigError);
}

TEST(Collectives, PadAcrossProcesses) {
  auto t = at::ones({rank() + 1, 2});
  auto padded = pad_across_processes(S(), t, 0, -1.0);
  ASSERT_EQ(padded.size(0), world());
  EXPECT_TRUE(at::equal(padded.narrow(0, 0, rank() + 1), t));
  if (rank() + 1 < world()) {
    EXPECT_EQ(padded[world() - 1][0].item<float>(), -1.0f);
  }
  auto first = pad_across_processes(S(), t, 0, 5.0, /*pad_first=*/true);
  EXPECT_TRUE(at::equal(first.narrow(0, world() - rank() - 1, rank() + 1), t));
  if (rank() + 1 < world()) {
    EXPECT_EQ(first[0][0].item<float>(), 5.0f);
  }
  auto cols = pad_across_processes(S(), at::zeros({2, rank() + 1}, at::kLong), 1, 9);
  EXPECT_EQ(cols.size(1), world());
  auto same = pad_across_processes(S(), t, 5);  // dim out of range: unchanged, no communication
  EXPECT_TRUE(same.is_same(t));
}

TEST(Collectives, SplitBetweenProcesses) {
  std::vector<std::string> items;
  for (int i = 0; i < 2 * world() + 1; ++i) items.push_back("item" + std::to_string(i));
  auto mine = split_between_processes(S(), items);
  auto all = gather_object(S(), mine);
  EXPECT_EQ(all, items);  // no item lost or repeated, in order
  auto padded = split_between_processes(S(), items, /*apply_padding=*/true);
  EXPECT_EQ(padded.size(), world() == 1 ? items.size() : 3u);
  if (world() > 1 && mine.size() < 3) {
    EXPECT_EQ(padded.back(), items.back());
  }

  auto tensor = at::arange(2 * world() + 1, at::kLong).reshape({-1, 1});
  auto part = split_between_processes(S(), tensor);
  EXPECT_TRUE(at::equal(gather(S(), part), tensor));
  auto padded_part = split_between_processes(S(), tensor, true);
  EXPECT_EQ(padded_part.size(0), world() == 1 ? tensor.size(0) : 3);
}

// Issue 10, case 6 (HF's PR #4052): fewer items than processes leaves the last ranks an empty share, so nothing
// is processed or gathered twice; with padding they get the last item.
TEST(Collectives, SplitBetweenProcessesWithFewerItemsThanProcesses) {
  if (world() == 1) GTEST_SKIP() << "needs 2+ processes";
  const std::vector<std::string> one{"p0"};
  auto mine = split_between_processes(S(), one);
  EXPECT_EQ(mine, rank() == 0 ? one : std::vector<std::string>{});
  EXPECT_EQ(gather_object(S(), mine), one);  // {"p0"}, not {"p0", "p0"}
  auto padded = split_between_processes(S(), one, /*apply_padding=*/true);
  EXPECT_EQ(padded, one);  // every rank: its share or the padding item

  std::vector<std::string> two{"p0", "p1"};
  auto share = split_between_processes(S(), two);
  EXPECT_EQ(share, rank() < 2 ? std::vector<std::string>{two[rank()]}
                              : std::vector<std::string>{});  // 3 ranks: {p0}, {p1}, {}

  auto row = at::ones({1, 3});
  auto part = split_between_processes(S(), row);
  EXPECT_EQ(part.size(0), rank() == 0 ? 1 : 0);
  EXPECT_EQ(part.size(1), 3);
  EXPECT_TRUE(at::equal(gather(S(), part), row));
  auto padded_part = split_between_processes(S(), at::arange(2, at::kLong).reshape({2, 1}), true);
  EXPECT_EQ(padded_part.size(0), 1);
  EXPECT_EQ(padded_part[0][0].item<int64_t>(), rank() < 2 ? rank() : 1);  // past the end: the last row
}

// Issue 10, case 8: a dataset smaller than the number of processes is served as HF does: every rank gets a
// batch (even_batches completes the round from the start) and gather_for_metrics drops the repeats.
TEST(Collectives, DatasetSmallerThanTheWorld) {
  if (world() == 1) GTEST_SKIP() << "needs 2+ processes";
  Accelerator acc(std::shared_ptr<ProcessState>(g_state, [](ProcessState*) {}), {.cpu = !S().device().is_cuda()});
  const int64_t n = world() - 1;  // one sample short of one per process
  auto data = at::arange(n, at::kLong);
  DataLoader loader(std::make_shared<TensorDataset>(data, data), {.batch_size = 1});
  auto& dl = acc.prepare(loader);
  std::vector<int64_t> seen;
  int batches = 0;
  for (auto& batch : dl) {
    ++batches;
    auto all = acc.gather_for_metrics(batch.data);
    for (int64_t i = 0; i < all.size(0); ++i) seen.push_back(all[i].item<int64_t>());
  }
  EXPECT_EQ(batches, 1);
  std::vector<int64_t> expected(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) expected[static_cast<size_t>(i)] = i;
  EXPECT_EQ(seen, expected);  // each sample once, in order
}

// HF's `preds, labels = accelerator.gather_for_metrics((preds, labels))`, with the last round's padding dropped
// from both; and a warning (once, main process) when the batches come from a loader that was not prepared.
TEST(Collectives, GatherForMetricsOfTwoTensorsAndAnUnpreparedLoader) {
  Accelerator acc(std::shared_ptr<ProcessState>(g_state, [](ProcessState*) {}), {.cpu = !S().device().is_cuda()});
  const int64_t n = 2 * world() + 1;  // the last round is padded
  auto data = at::arange(n, at::kLong);
  DataLoader loader(std::make_shared<TensorDataset>(data, data * 10), {.batch_size = 1});
  auto& dl = acc.prepare(loader);
  std::vector<int64_t> preds, labels;
  ::testing::internal::CaptureStderr();
  for (auto& batch : dl) {
    auto [p, l] = acc.gather_for_metrics(batch.data, batch.target.unsqueeze(1));  // other trailing dims
    ASSERT_EQ(p.size(0), l.size(0));
    for (int64_t i = 0; i < p.size(0); ++i)
      preds.push_back(p[i].item<int64_t>()), labels.push_back(l[i][0].item<int64_t>());
  }
  EXPECT_EQ(::testing::internal::GetCapturedStderr().find("gather_for_metrics"), std::string::npos);
  ASSERT_EQ(preds.size(), static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) EXPECT_EQ(labels[static_cast<size_t>(i)], 10 * preds[static_cast<size_t>(i)]);
  // The evaluation loader left unprepared: every rank evaluates everything.
  DataLoader unprepared(std::make_shared<TensorDataset>(data, data), {.batch_size = 4});
  ::testing::internal::CaptureStderr();
  int64_t gathered = 0;
  for (auto& batch : unprepared) gathered += acc.gather_for_metrics(batch.data).size(0);
  const auto said = ::testing::internal::GetCapturedStderr();
  EXPECT_EQ(gathered, n * world());
  if (world() > 1 && rank() == 0) {
    EXPECT_NE(said.find("runs outside the loop of a prepared data loader"), std::string::npos) << said;
    EXPECT_EQ(said.find("outside the loop", said.find("outside the loop") + 1), std::string::npos) << "said twice";
  } else {
    EXPECT_EQ(said.find("outside the loop"), std::string::npos) << said;
  }
}

TEST(Collectives, MainProcessFirst) {
  // Rank 0 picks a directory and shares it; inside the guard it writes a file the others must already see.
  std::vector<c10::IValue> dir{c10::IValue(std::string())};
  if (rank() == 0) {
    dir[0] = (std::filesystem::temp_directory_path() / ("accelerate_mpf_" + std::to_string(::getpid()))).string();
  }
  broadcast_object_list(S(), dir, 0);
  const std::filesystem::path marker = dir[0].toStringRef() + "/done";
  {
    auto guard = main_process_first(S());
    if (S().is_main_process()) {
      std::filesystem::create_directories(marker.parent_path());
      std::ofstream(marker) << "ok";
    } else {
      EXPECT_TRUE(std::filesystem::exists(marker)) << "the main process did not go first";
    }
  }
  wait_for_everyone(S());
  if (rank() == 0) std::filesystem::remove_all(marker.parent_path());
}

TEST(Collectives, PrintOnlyOnLocalMain) {
  testing::internal::CaptureStdout();
  print(S(), "hello", 42);
  auto out = testing::internal::GetCapturedStdout();
  EXPECT_EQ(out, S().is_local_main_process() ? "hello 42\n" : "");
}

int main(int argc, char** argv) {
  testing::InitGoogleTest(&argc, argv);
  try {
    ProcessStateOptions options;
    const char* device = std::getenv("ACCELERATE_TEST_DEVICE");
    options.cpu = !(device && std::string(device) == "cuda");
    if (const char* backend = std::getenv("ACCELERATE_TEST_BACKEND")) options.backend = backend;  // gloo on a GPU
    ProcessState state(options);
    if (!options.cpu && !state.device().is_cuda()) {
      std::cerr << "collectives_worker: ACCELERATE_TEST_DEVICE=cuda but no CUDA device is available" << std::endl;
      return 1;
    }
    g_state = &state;
    const int rc = RUN_ALL_TESTS();
    // Every rank's verdict, so a failure on one rank fails them all and the launcher reports it.
    const int failures =
        static_cast<int>(reduce(state, at::full({1}, rc != 0 ? 1 : 0, at::kLong), Reduction::Sum).item<int64_t>());
    print(state, "collectives_worker:", world(), "processes via", to_string(state.launcher()),
          failures ? "FAILED" : "passed");
    state.destroy_process_group();
    return failures ? 1 : 0;
  } catch (const accelerate::Error& e) {
    std::cerr << "collectives_worker: " << e.what() << std::endl;
    return 1;
  }
}
