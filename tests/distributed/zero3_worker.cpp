// ZeRO stage 3 in every rank (2 or 4 processes, CPU, fp32): the GPT test model, whose blocks are ShardingUnits,
// trains 20 optimizer steps at stage 3 to the same parameters and loss as at stage 0, with accumulation, with
// activation checkpointing, and without prefetching; each rank then holds about 1/N of the parameter, gradient and
// optimizer bytes (plus the parameters outside the units); an fp16 overflow on one shard skips the step
// everywhere; a stage-3 checkpoint loads at stage 0 and back; free_memory gives the model back whole; nested
// units are refused; a block called around unit_forward, or its parameter read, is a clear error.
#include <accelerate/accelerate.hpp>

#include <torch/torch.h>

#include <gtest/gtest.h>

#include <filesystem>
#include <functional>

#include "gpt.hpp"

#include "distributed_gtest.hpp"
#include "error_of.hpp"
#include "worker_helpers.hpp"
#include "zero_training.hpp"

using namespace accelerate;
using namespace accelerate::testing;

namespace accelerate::testing {
std::shared_ptr<ProcessState> g_state;
}

namespace {

void expect_equal_training(const Trained& sharded, const Trained& replicated) {
  EXPECT_LE(relative_difference(sharded.params, replicated.params), kTolerance);
  EXPECT_NEAR(sharded.loss, replicated.loss, kTolerance * replicated.loss);
  expect_same_on_every_rank(sharded.params);
  // Training moved the parameters: the comparison is not between two untouched models.
  gpt::Gpt fresh(kConfig);
  EXPECT_GT(relative_difference(replicated.params, fresh->parameters()), 1e-2);
}

}  // namespace

TEST(Zero3, EqualsStage0WithAccumulation) {
  // 10 KB buckets for the parameters outside the blocks (the embeddings, ln_f); each block is one unit.
  expect_equal_training(train_gpt(3, 0.01), train_gpt(0, 0.01));
}

TEST(Zero3, EqualsStage0WithGradientCheckpointing) {
  const TrainOptions checkpointed{.gradient_checkpointing = true};
  expect_equal_training(train_gpt(3, 0.01, checkpointed), train_gpt(0, 0.01, checkpointed));
}

TEST(Zero3, EqualsStage0WithoutPrefetchOrAccumulation) {
  const TrainOptions plain{.accumulation = 1, .fsdp = {.forward_prefetch = false, .backward_prefetch = false}};
  expect_equal_training(train_gpt(3, 25, plain), train_gpt(0, 25, {.accumulation = 1}));
}

TEST(Zero3, EachRankHoldsAboutOneNthPlusOneBlock) {
  const auto s0 = train_gpt(0, 0.01), s3 = train_gpt(3, 0.01);
  const int64_t n = g_state->num_processes();
  const auto held = [](const Trained& t) { return t.parameter_bytes + t.gradient_bytes + t.optimizer_state_bytes; };
  gpt::Block block(kConfig);
  int64_t block_bytes = 0;
  for (const auto& p : block->parameters()) block_bytes += p.numel() * static_cast<int64_t>(p.element_size());
  EXPECT_LE(held(s3), held(s0) / n + block_bytes) << held(s3) << " vs " << held(s0);
  // The blocks' parameters are sharded: only the embeddings and ln_f stay whole.
  int64_t outside = 0;
  for (const auto& item : gpt::Gpt(kConfig)->named_parameters()) {
    if (item.key().rfind("h.", 0) != 0) outside += item.value().numel() * 4;
  }
  const int64_t units = s0.parameter_bytes - outside;
  EXPECT_NEAR(static_cast<double>(s3.parameter_bytes), static_cast<double>(outside + units / n), 64.0 * n);
}

TEST(Zero3, OverflowOnOneShardSkipsTheStepOnEveryRank) {
  Accelerator acc(g_state, fp16_options(3));
  gpt::Gpt model(kConfig);
  torch::optim::AdamW adamw(model->parameters(), torch::optim::AdamWOptions(1e-2));
  auto [net, opt] = acc.prepare(model, adamw);
  auto params = [&] {
    auto whole = acc.summon_full_params(net);
    std::vector<torch::Tensor> out;
    for (const auto& p : net->parameters()) out.push_back(p.detach().clone());
    return out;
  };
  const auto before = params();
  auto ids = torch::randint(0, 256, {2, 16}, torch::kLong).to(acc.device());
  torch::Tensor loss;
  {
    auto autocast = acc.autocast();
    loss = net->loss(ids, ids);
  }
  acc.backward(loss);
  if (acc.is_main_process()) {
    torch::NoGradGuard no_grad;
    opt.param_groups()[0].params()[0].grad().view(-1)[0] = std::numeric_limits<float>::infinity();
  }
  opt.step();
  const auto skipped = reduce(*g_state, torch::tensor({opt.step_was_skipped() ? 1 : 0}), Reduction::Sum);
  EXPECT_EQ(skipped.item<int64_t>(), g_state->num_processes());
  const auto after = params();
  for (size_t i = 0; i < before.size(); ++i) EXPECT_TRUE(torch::equal(after[i], before[i])) << "parameter " << i;
}

TEST(Zero3, CheckpointResumesAtStage0AndBack) { expect_checkpoint_round_trip(3, 3); }

/// Elements per tensor-name prefix in one of save_state's per-rank files.
int64_t elements_in(const std::filesystem::path& file, const std::string& prefix) {
  int64_t n = 0;
  for (const auto& [name, t] : safetensors::load_file(file.string())) {
    if (name.starts_with(prefix)) n += t.numel();
  }
  return n;
}

// save_state at stage 3: each rank writes its own shards of the model and the optimizer state (no process gathers
// either), and they load at stage 3 exactly; a missing rank's file is named. FsdpOptions::sharded_state_dict =
// false writes stage 0's whole files instead.
TEST(Zero3, SaveStateWritesEachRanksShards) {
  namespace fs = std::filesystem;
  const int world = g_state->num_processes();
  const fs::path dir = shared_temp_dir(*g_state, "zero3_pieces"), whole = shared_temp_dir(*g_state, "zero3_whole");
  Job sharded(3);
  torch::manual_seed(21 + g_state->process_index());
  sharded.train(3);
  sharded.acc.save_state(dir.string());
  if (g_state->is_main_process()) {
    EXPECT_FALSE(fs::exists(dir / "model.safetensors"));
    EXPECT_FALSE(fs::exists(dir / "optimizer.safetensors"));
    int64_t block_elements = 0, all_elements = 0, block_saved = 0, moments_saved = 0;
    for (const auto& p : sharded.model->named_parameters()) {
      all_elements += p.value().numel();
      if (p.key().starts_with("h.")) block_elements += p.value().numel();
    }
    for (int r = 0; r < world; ++r) {
      const auto model = dir / ("model.rank_" + std::to_string(r) + ".safetensors");
      const auto optimizer = dir / ("optimizer.rank_" + std::to_string(r) + ".safetensors");
      ASSERT_TRUE(fs::exists(model) && fs::exists(optimizer)) << "rank " << r;
      // Each rank's slice of each block's flat parameters (ceil(numel / world) elements) and no more.
      const auto blocks = elements_in(model, "h.");
      EXPECT_LE(blocks, block_elements / world + kConfig.n_layer) << "rank " << r;
      block_saved += blocks;
      // Its pieces of AdamW's two moments (stage 2's buckets outside the blocks: a few elements of padding each).
      const auto moments = elements_in(optimizer, "state.");
      EXPECT_LE(moments, 2 * (all_elements / world + 200)) << "rank " << r;
      moments_saved += moments;
    }
    EXPECT_EQ(block_saved, block_elements);
    EXPECT_EQ(moments_saved, 2 * all_elements);
  }
  // Loaded at stage 3 on as many processes: the same parameters, and both go on bitwise alike.
  Job resumed(3);
  resumed.acc.load_state(dir.string());
  const auto saved = sharded.params(), loaded = resumed.params();
  for (size_t i = 0; i < saved.size(); ++i) EXPECT_TRUE(torch::equal(loaded[i], saved[i])) << "parameter " << i;
  torch::manual_seed(5 + g_state->process_index());
  sharded.train(3);
  torch::manual_seed(5 + g_state->process_index());
  resumed.train(3);
  const auto a = sharded.params(), b = resumed.params();
  for (size_t i = 0; i < a.size(); ++i) EXPECT_TRUE(torch::equal(a[i], b[i])) << "parameter " << i;
  // Whole files on request.
  Job full(3, {.sharded_state_dict = false});
  full.acc.save_state(whole.string());
  if (g_state->is_main_process()) {
    EXPECT_TRUE(fs::exists(whole / "model.safetensors"));
    EXPECT_FALSE(fs::exists(whole / "model.pieces.json"));
    // A rank's file lost: named, on every rank, before anything is loaded.
    fs::remove(dir / ("model.rank_" + std::to_string(world - 1) + ".safetensors"));
  }
  wait_for_everyone(*g_state);
  const auto before = resumed.params();
  const auto error = error_of<CheckpointError>([&] { resumed.acc.load_state(dir.string()); });
  EXPECT_NE(error.find("is missing model.rank_" + std::to_string(world - 1) + ".safetensors"), std::string::npos)
      << error;
  const auto after = resumed.params();
  for (size_t i = 0; i < after.size(); ++i) EXPECT_TRUE(torch::equal(after[i], before[i])) << "parameter " << i;
  if (g_state->is_main_process()) fs::remove_all(dir), fs::remove_all(whole);
}

// save_model at stage 3 is streamed unit by unit; its files are stage 0's (here in several shards).
TEST(Zero3, SaveModelWritesWhatStage0Writes) {
  Job sharded(3), replicated(0);  // the same seed: the same initial model
  const auto a = shared_temp_dir(*g_state, "save_model3"), b = shared_temp_dir(*g_state, "save_model0");
  sharded.acc.save_model(sharded.model, a, 40000);
  replicated.acc.save_model(replicated.model, b, 40000);
  if (!g_state->is_main_process()) return;
  int files = 0;
  for (const auto& entry : std::filesystem::directory_iterator(b)) {
    const auto name = entry.path().filename().string();
    if (!name.ends_with(".safetensors")) continue;
    ++files;
    const auto mine = safetensors::load_file((std::filesystem::path(a) / name).string());
    const auto theirs = safetensors::load_file(entry.path().string());
    ASSERT_EQ(mine.size(), theirs.size()) << name;
    for (const auto& [key, t] : theirs) EXPECT_TRUE(torch::equal(mine.at(key), t)) << name << " " << key;
  }
  EXPECT_GT(files, 2);
  std::filesystem::remove_all(a), std::filesystem::remove_all(b);
}

TEST(Zero3, FreeMemoryGivesTheModelBackWhole) {
  Job job(3);
  torch::manual_seed(3 + g_state->process_index());
  job.train(2);
  const auto trained = job.params();
  job.acc.free_memory();
  // An ordinary model again: its parameters are readable without summon_full_params, equal everywhere.
  std::vector<torch::Tensor> now;
  for (const auto& p : job.model->parameters()) now.push_back(p.detach().clone());
  for (size_t i = 0; i < now.size(); ++i) EXPECT_TRUE(torch::equal(now[i], trained[i])) << "parameter " << i;
  expect_same_on_every_rank(now);
  // And it prepares again (find_executable_batch_size's next attempt).
  job.acc.prepare(job.model);
  job.opt = &job.acc.prepare(job.adamw);
  job.train(1);
  expect_same_on_every_rank(job.params());
}

namespace {
struct NestedImpl : torch::nn::Module, ShardingUnit {
  explicit NestedImpl(const gpt::Config& c) : block(register_module("block", gpt::Block(c))) {}
  torch::Tensor forward(const torch::Tensor& x) { return block->forward(x); }
  gpt::Block block;
};
TORCH_MODULE(Nested);
}  // namespace

TEST(Zero3, NestedUnitsAreAClearError) {
  Accelerator acc(g_state, options_for(3, 25, 1));
  Nested model(kConfig);
  const auto error = error_of<ConfigError>([&] { acc.prepare(model); });
  EXPECT_NE(error.find("is a ShardingUnit inside the unit"), std::string::npos) << error;
}

TEST(Zero3, ABlockCalledWithoutUnitForwardIsAClearError) {
  Accelerator acc(g_state, options_for(3, 25, 1));
  gpt::Gpt model(kConfig);
  acc.prepare(model);
  const auto x = torch::randn({1, 4, kConfig.n_embd}).to(acc.device());
  ::testing::internal::CaptureStderr();
  const int code = run_main("prog: ", [&]() -> int {
    model->h[0]->as<gpt::Block>()->forward(x);  // not through accelerate::unit_forward: its parameters are freed
    return 0;
  });
  const auto printed = ::testing::internal::GetCapturedStderr();
  EXPECT_EQ(code, 1);
  EXPECT_NE(printed.find("prog: ZeRO stage 3: this is a parameter of the unit 'h.0', which exists whole only inside "
                         "accelerate::unit_forward"),
            std::string::npos)
      << printed;
  // A layer whose forward takes views of its weight first (Linear's weight.t()) says the same.
  try {
    model->h[0]->as<gpt::Block>()->mlp->c_fc->forward(x);
    ADD_FAILURE() << "a freed Linear ran";
  } catch (const c10::Error& e) {
    EXPECT_NE(std::string(e.what()).find("this is a parameter of the unit 'h.0'"), std::string::npos) << e.what();
  }
  // Written to, too (a load into the model by hand), instead of a write through a null pointer.
  EXPECT_THROW(model->h[0]->as<gpt::Block>()->ln_1->weight.detach().fill_(1), c10::Error);
}

TEST(Zero3, BackwardInsideSummonFullParamsIsAClearError) {
  Job job(3);
  auto ids = torch::randint(0, 256, {2, 17}, torch::kLong).to(job.acc.device());
  auto whole = job.acc.summon_full_params(job.model);
  auto loss = job.model->loss(ids.narrow(1, 0, 16), ids.narrow(1, 1, 16));
  const auto error = error_of<StateError>([&] { job.acc.backward(loss); });
  EXPECT_NE(error.find("backward inside a summon_full_params guard"), std::string::npos) << error;
}

namespace {
/// Two blocks of which the second also holds the first's c_fc layer (a tie between units).
struct TiedImpl : torch::nn::Module {
  explicit TiedImpl(const gpt::Config& c)
      : a(register_module("a", gpt::Block(c))), b(register_module("b", gpt::Block(c))) {
    b->register_module("shared", a->mlp->c_fc);
  }
  gpt::Block a, b;
};
TORCH_MODULE(Tied);
}  // namespace

TEST(Zero3, AParameterSharedByTwoUnitsIsAClearError) {
  Accelerator acc(g_state, options_for(3, 25, 1));
  Tied model(kConfig);
  const auto error = error_of<ConfigError>([&] { acc.prepare(model); });
  EXPECT_NE(error.find("units 'a' and 'b' share a parameter"), std::string::npos) << error;
}

TEST(Zero3, UnitsWithoutWeightsAreNeitherRunNorSaved) {
  auto config = kConfig;
  config.empty_blocks = true;  // on every rank, rank 0 included: the blocks wait for a load
  Accelerator acc(g_state, options_for(3, 25, 1));
  gpt::Gpt model(config);
  acc.prepare(model);
  const auto dir = shared_temp_dir(*g_state, "zero3_empty");
  const std::vector<std::function<void()>> attempts{[&] { acc.save_model(model, dir); },
                                                    [&] { auto whole = acc.summon_full_params(model); },
                                                    [&] {
                                                      model->forward(torch::zeros({1, 4}, torch::kLong));
                                                    }};
  for (const auto& attempt : attempts) {
    const auto error = error_of<StateError>(attempt);
    EXPECT_NE(error.find("unit 'h.0' has no weights"), std::string::npos) << error;
  }
  EXPECT_FALSE(std::filesystem::exists(std::filesystem::path(dir) / "model.safetensors"));
}

int main(int argc, char** argv) {
  return accelerate::testing::run_distributed_tests(argc, argv, g_state, "zero3_worker");
}
