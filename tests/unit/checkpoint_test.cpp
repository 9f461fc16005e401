// save_state / load_state in a world of one, for what a user gets wrong or finds on disk: an earlier run's
// checkpoints in the project folder, damaged metadata, a missing registered object, and a data loader resumed with
// another batch size.
#include <accelerate/accelerate.hpp>

#include <torch/torch.h>

#include <filesystem>
#include <fstream>
#include <gtest/gtest.h>

#include "error_of.hpp"
#include "loader_fixtures.hpp"
#include "temp_dir.hpp"

using namespace accelerate;
using accelerate::testing::error_of;
namespace fs = std::filesystem;

using accelerate::testing::CountingStream;
using accelerate::testing::stream_batches;
using accelerate::testing::TempDir;

namespace {

AcceleratorOptions project_options(const fs::path& dir, int64_t iteration = 0) {
  AcceleratorOptions o;
  o.cpu = true;
  o.project.project_dir = dir.string();
  o.project.automatic_checkpoint_naming = true;
  o.project.total_limit = 3;
  o.project.iteration = iteration;
  return o;
}

void edit_json(const fs::path& file, const std::string& key, const std::string& raw_value) {
  std::ifstream in(file);
  std::string text((std::istreambuf_iterator<char>(in)), {});
  const auto at = text.find("\"" + key + "\"");
  ASSERT_NE(at, std::string::npos) << text;
  const auto colon = text.find(':', at), end = text.find_first_of(",\n}", colon);
  text.replace(colon + 1, end - colon - 1, " " + raw_value);
  std::ofstream(file, std::ios::trunc) << text;
}

/// Makes `dir` look as a checkpoint written before checksums.json existed (format version 1), whose files the
/// loaders check on their own.
void as_written_before_checksums(const fs::path& dir) {
  fs::remove(dir / "checksums.json");
  edit_json(dir / "metadata.json", "format_version", "1");
}

}  // namespace

// Issue 10, case 4: a fresh run in a folder that holds an earlier run's checkpoint_11..13 must not have its first
// checkpoint taken for the oldest and deleted; numbering continues after the highest, and load_state finds it.
TEST(Checkpoints, AFreshRunNeverDeletesTheCheckpointItJustWrote) {
  TempDir tmp{"accelerate_ckpt"};
  {
    Accelerator earlier(project_options(tmp.path, /*iteration=*/11));
    for (int i = 0; i < 3; ++i) earlier.save_state();
  }
  Accelerator fresh(project_options(tmp.path));
  auto model = fresh.prepare(torch::nn::Linear(2, 2));
  const fs::path written = fresh.save_state();
  EXPECT_EQ(written.filename(), "checkpoint_14");
  EXPECT_TRUE(fs::exists(written / "COMPLETE")) << "the checkpoint just written was deleted";
  EXPECT_FALSE(fs::exists(tmp.path / "checkpoints" / "checkpoint_11"));  // the oldest of the earlier run goes
  EXPECT_TRUE(fs::exists(tmp.path / "checkpoints" / "checkpoint_12"));
  EXPECT_EQ(fs::path(fresh.load_state()).filename(), "checkpoint_14");
}

// Issue 10, case 3: damaged metadata is a CheckpointError naming the file and the key, never a JSON type error.
TEST(Checkpoints, DamagedMetadataIsACheckpointError) {
  TempDir tmp{"accelerate_ckpt"};
  Accelerator acc(project_options(tmp.path));
  auto model = acc.prepare(torch::nn::Linear(2, 2));
  const fs::path dir = acc.save_state((tmp.path / "ckpt").string());
  const auto meta = dir / "metadata.json";
  edit_json(meta, "world_size", "\"two\"");
  auto e = error_of<CheckpointError>([&] { acc.load_state(dir.string()); });
  EXPECT_NE(e.find("metadata.json"), std::string::npos) << e;
  EXPECT_NE(e.find("'world_size' is not a valid value (\"two\")"), std::string::npos) << e;
  edit_json(meta, "world_size", "1");
  for (const char* bad : {"[1]", "-1", "2.5"}) {
    edit_json(meta, "models", bad);
    e = error_of<CheckpointError>([&] { acc.load_state(dir.string()); });
    EXPECT_NE(e.find("'models' is not a valid value"), std::string::npos) << bad << ": " << e;
  }
  std::ofstream(meta, std::ios::trunc) << "[1, 2]";
  e = error_of<CheckpointError>([&] { acc.load_state(dir.string()); });
  EXPECT_NE(e.find("must hold a JSON object"), std::string::npos) << e;
}

// Issue 10, case 12: objects given to register_for_checkpointing are "registered", not "prepared".
TEST(Checkpoints, AMissingRegisteredObjectIsCalledRegistered) {
  struct Counter final : Checkpointable {
    std::map<std::string, at::Tensor> state_tensors() const override { return {{"n", at::zeros({1})}}; }
    std::string state_json() const override { return "{}"; }
    void load_state(const std::map<std::string, at::Tensor>&, const std::string&) override {}
  } counter;
  TempDir tmp{"accelerate_ckpt"};
  Accelerator saver(project_options(tmp.path));
  saver.register_for_checkpointing(counter);
  const auto dir = saver.save_state((tmp.path / "ckpt").string());
  Accelerator loader(project_options(tmp.path));
  const auto e = error_of<CheckpointError>([&] { loader.load_state(dir); });
  EXPECT_NE(e.find("holds 1 custom_objects but 0 are registered"), std::string::npos) << e;
  EXPECT_EQ(e.find("prepared"), std::string::npos) << e;
}

// Issue 10, case 5: a loader resumed with another batch size continues at the same global sample (rounded down to
// a whole batch, the repeated samples reported), not after the same number of batches.
TEST(Checkpoints, ALoaderWithAnotherBatchSizeResumesAtTheSameSample) {
  TempDir tmp{"accelerate_ckpt"};
  auto data = torch::arange(60, torch::kLong);
  auto dataset = std::make_shared<TensorDataset>(data, data);
  const auto dir = (tmp.path / "ckpt").string();
  {
    Accelerator acc(project_options(tmp.path));
    DataLoader loader(dataset, {.batch_size = 4});
    auto& dl = acc.prepare(loader);
    int batches = 0;
    for (auto& batch : dl) {
      (void)batch;
      if (++batches < 5) continue;
      acc.save_state(dir);  // mid-epoch, inside the loop: 20 samples handed out
      break;
    }
  }
  Accelerator acc(project_options(tmp.path));
  DataLoader loader(dataset, {.batch_size = 6});
  auto& dl = acc.prepare(loader);
  ::testing::internal::CaptureStdout();
  acc.load_state(dir);
  const auto said = ::testing::internal::GetCapturedStdout();
  EXPECT_NE(said.find("batch_size 4 -> 6"), std::string::npos) << said;
  EXPECT_NE(said.find("samples 18..19 of the epoch's order (2 samples) are seen a second time"), std::string::npos)
      << said;
  auto first = (*dl.begin()).data;
  EXPECT_TRUE(torch::equal(first, torch::arange(18, 24, torch::kLong))) << first;

  // Another dataset size cannot be mapped: refused, nothing half-loaded.
  DataLoader other(std::make_shared<TensorDataset>(data.narrow(0, 0, 50), data.narrow(0, 0, 50)), {.batch_size = 4});
  Accelerator acc2(project_options(tmp.path));
  acc2.prepare(other);
  const auto e = error_of<CheckpointError>([&] { acc2.load_state(dir); });
  EXPECT_NE(e.find("dataset of 60 samples; the data loader now has 50"), std::string::npos) << e;
}

// A prepared stream loader saved inside its loop (trial of 2026-12-04: "tensor 'generator' is undefined"): the
// resumed loader reads past what was handed out and continues with the next batch.
TEST(Checkpoints, AStreamLoaderSavedMidEpochResumesAtTheNextBatch) {
  TempDir tmp{"accelerate_ckpt"};
  const auto dir = (tmp.path / "ckpt").string();
  for (int workers : {0, 1}) {
    std::vector<std::vector<int64_t>> handed_out;
    {
      Accelerator acc(project_options(tmp.path));
      DataLoader loader(std::make_shared<CountingStream>(10), {.batch_size = 3, .num_workers = workers});
      auto& dl = acc.prepare(loader);
      for (auto& b : dl) {
        const auto x = b.at("x");
        handed_out.emplace_back(x.data_ptr<int64_t>(), x.data_ptr<int64_t>() + x.numel());
        if (handed_out.size() == 2) {
          fs::remove_all(dir);
          acc.save_state(dir);
        }
      }
    }
    ASSERT_EQ(handed_out.size(), 4u);
    Accelerator acc(project_options(tmp.path));
    DataLoader loader(std::make_shared<CountingStream>(10), {.batch_size = 3, .num_workers = workers});
    auto& dl = acc.prepare(loader);
    acc.load_state(dir);
    EXPECT_EQ(stream_batches(dl), std::vector<std::vector<int64_t>>(handed_out.begin() + 2, handed_out.end()))
        << workers << " workers";
    // Saving into that folder again is refused, saying what is there (not "an interrupted save").
    const auto again = error_of<CheckpointError>([&] { acc.save_state(dir); });
    EXPECT_NE(again.find("(a complete checkpoint: it has the COMPLETE marker)"), std::string::npos) << again;
  }
}

// Damaged generator states and impossible loader positions: a CheckpointError naming the file, no stack trace.
TEST(Checkpoints, DamagedStatesNameTheirFile) {
  TempDir tmp{"accelerate_ckpt"};
  auto data = torch::arange(20, torch::kLong);
  DataLoader loader(std::make_shared<TensorDataset>(data, data), {.batch_size = 4});
  Accelerator acc(project_options(tmp.path));
  acc.prepare(loader);
  const fs::path dir = acc.save_state((tmp.path / "ckpt").string());
  const auto rng = dir / "random_states_0.safetensors";
  const auto good_rng = safetensors::File(rng.string()).get("cpu").clone();
  // Well-formed edits that the checksums would catch first: this test is about what the loaders check behind them
  // (as for a checkpoint written before checksums.json existed).
  as_written_before_checksums(dir);
  safetensors::save_file({{"cpu", at::zeros_like(good_rng)}}, rng.string(), {{"step", "0"}});
  auto e = error_of<CheckpointError>([&] { acc.load_state(dir.string()); });
  EXPECT_NE(e.find("random_states_0.safetensors could not be loaded"), std::string::npos) << e;
  EXPECT_EQ(e.find("frame #"), std::string::npos) << e;
  safetensors::save_file({{"cpu", good_rng}}, rng.string(), {{"step", "0"}});
  const auto sampler = dir / "sampler.safetensors";
  auto meta = safetensors::File(sampler.string()).metadata();
  const auto generator = safetensors::File(sampler.string()).get("generator").clone();
  meta["batches"] = "100000";
  safetensors::save_file({{"generator", generator}}, sampler.string(), meta);
  e = error_of<CheckpointError>([&] { acc.load_state(dir.string()); });
  EXPECT_NE(e.find("more than an epoch of 20 samples holds"), std::string::npos) << e;
  meta["batches"] = "0";
  meta["batch_size"] = "0";
  safetensors::save_file({{"generator", generator}}, sampler.string(), meta);
  e = error_of<CheckpointError>([&] { acc.load_state(dir.string()); });
  EXPECT_NE(e.find("'batch_size' is 0, not a positive count"), std::string::npos) << e;
}

// A moment tensor deleted from optimizer.safetensors is refused at load, naming it (it used to load and fail at
// the first step, inside torch).
TEST(Checkpoints, AMissingOptimizerTensorIsNamed) {
  TempDir tmp{"accelerate_ckpt"};
  auto model = std::make_shared<torch::nn::LinearImpl>(3, 2);
  torch::optim::AdamW adamw(model->parameters(), torch::optim::AdamWOptions(1e-2));
  Accelerator acc(project_options(tmp.path));
  acc.prepare(model);
  auto& opt = acc.prepare(adamw);
  acc.backward(model->forward(torch::randn({4, 3})).sum());
  opt.step();
  const fs::path dir = acc.save_state((tmp.path / "ckpt").string());
  const auto file = (dir / "optimizer.safetensors").string();
  auto tensors = safetensors::load_file(file);
  for (auto& [name, t] : tensors) t = t.clone();  // off the file's mapping before the file is rewritten
  ASSERT_EQ(tensors.erase("state.1.exp_avg_sq"), 1u);
  safetensors::save_file(tensors, file, {{"format", "pt"}});
  as_written_before_checksums(dir);  // rewritten well-formed: what the loader checks behind the checksums
  const auto e = error_of<CheckpointError>([&] { acc.load_state(dir.string()); });
  EXPECT_NE(e.find("optimizer.{json,safetensors}: tensor state.1.exp_avg_sq is missing"), std::string::npos) << e;
}

// Issue 15: a flipped byte in tensor data (safetensors has no checksum) is caught by checksums.json, naming the
// file; the automatic load_state() falls back to the previous checkpoint, saying so.
TEST(Checkpoints, AFlippedByteIsDetectedAndTheAutomaticLoadFallsBack) {
  TempDir tmp{"accelerate_ckpt"};
  auto model = std::make_shared<torch::nn::LinearImpl>(64, 64);
  Accelerator acc(project_options(tmp.path));
  acc.prepare(model);
  torch::NoGradGuard no_grad;
  model->weight.fill_(1.0);
  EXPECT_FALSE(acc.latest_checkpoint());  // none yet
  acc.save_state();                       // checkpoint_0
  model->weight.fill_(2.0);
  const fs::path newest = acc.save_state();  // checkpoint_1
  {
    std::fstream f(newest / "model.safetensors", std::ios::in | std::ios::out | std::ios::binary);
    f.seekg(-100, std::ios::end);  // inside the weight's data, far from the header
    char c = 0;
    f.read(&c, 1);
    f.seekp(-100, std::ios::end);
    c = static_cast<char>(c ^ 0x10);
    f.write(&c, 1);
  }
  EXPECT_EQ(fs::path(acc.latest_checkpoint().value_or("")).filename(), "checkpoint_1");
  auto e = error_of<CheckpointError>([&] { acc.load_state(newest.string()); });
  EXPECT_NE(e.find("model.safetensors fails its checksum"), std::string::npos) << e;
  model->weight.fill_(3.0);
  ::testing::internal::CaptureStdout();
  const auto loaded = acc.load_state();
  const auto said = ::testing::internal::GetCapturedStdout();
  EXPECT_EQ(fs::path(loaded).filename(), "checkpoint_0");
  EXPECT_NE(said.find("checkpoint_1 cannot be loaded"), std::string::npos) << said;
  EXPECT_NE(said.find("falling back to checkpoint_0"), std::string::npos) << said;
  EXPECT_TRUE(torch::all(model->weight == 1.0).item<bool>());
}

// A current checkpoint that lost its checksums.json (or whose manifest lists nothing) is not loaded unverified: a
// CheckpointError naming the file, and the automatic load falls back. One written before checksums existed loads.
TEST(Checkpoints, ACurrentCheckpointWithoutItsChecksumsIsRefused) {
  TempDir tmp{"accelerate_ckpt"};
  auto model = std::make_shared<torch::nn::LinearImpl>(8, 8);
  Accelerator acc(project_options(tmp.path));
  acc.prepare(model);
  torch::NoGradGuard no_grad;
  model->weight.fill_(1.0);
  acc.save_state();  // checkpoint_0
  model->weight.fill_(2.0);
  const fs::path newest = acc.save_state();  // checkpoint_1
  fs::remove(newest / "checksums.json");
  auto e = error_of<CheckpointError>([&] { acc.load_state(newest.string()); });
  EXPECT_NE(e.find("checksums.json is missing"), std::string::npos) << e;
  std::ofstream(newest / "checksums.json") << R"({"files": {}})";
  e = error_of<CheckpointError>([&] { acc.load_state(newest.string()); });
  EXPECT_NE(e.find("checksums.json lists no files"), std::string::npos) << e;
  std::ofstream(newest / "checksums.json", std::ios::trunc) << "";
  e = error_of<CheckpointError>([&] { acc.load_state(newest.string()); });
  EXPECT_NE(e.find("checksums.json"), std::string::npos) << e;
  ::testing::internal::CaptureStdout();
  const auto loaded = acc.load_state();
  const auto said = ::testing::internal::GetCapturedStdout();
  EXPECT_EQ(fs::path(loaded).filename(), "checkpoint_0") << said;
  EXPECT_TRUE(torch::all(model->weight == 1.0).item<bool>());
  as_written_before_checksums(newest);
  EXPECT_NO_THROW(acc.load_state(newest.string()));
  EXPECT_TRUE(torch::all(model->weight == 2.0).item<bool>());
}

// An automatic checkpoint folder left without COMPLETE (a crash between the rename and the marker) is skipped by
// load_state and replaced by the next automatic save, instead of blocking every save after the resume.
TEST(Checkpoints, AnInterruptedAutomaticSaveIsReplacedNotInTheWay) {
  TempDir tmp{"accelerate_ckpt"};
  auto model = torch::nn::Linear(2, 2);
  {
    Accelerator acc(project_options(tmp.path));
    acc.prepare(model);
    acc.save_state();  // checkpoint_0
    const fs::path second = acc.save_state();
    fs::remove(second / "COMPLETE");  // checkpoint_1: interrupted
  }
  Accelerator acc(project_options(tmp.path));
  acc.prepare(model);
  EXPECT_NE(acc.load_state().find("checkpoint_0"), std::string::npos);
  const fs::path written = acc.save_state();
  EXPECT_EQ(written.filename(), "checkpoint_1");
  EXPECT_TRUE(fs::exists(written / "COMPLETE"));
}

// A damaged file is found before anything is loaded: the model keeps its weights when the optimizer's file is
// truncated, and a scheduler step below -1 is refused.
TEST(Checkpoints, ADamagedFileLeavesTheModelUntouched) {
  TempDir tmp{"accelerate_ckpt"};
  auto model = torch::nn::Linear(3, 2);
  torch::optim::AdamW adamw(model->parameters(), 1e-2);
  Accelerator acc(project_options(tmp.path));
  acc.prepare(model);
  auto& opt = acc.prepare(adamw);
  model->forward(torch::ones({1, 3})).sum().backward();
  opt.step();
  const fs::path dir = acc.save_state((tmp.path / "ckpt").string());
  {
    torch::NoGradGuard no_grad;
    for (auto& p : model->parameters()) p.fill_(7);
  }
  fs::resize_file(dir / "optimizer.safetensors", fs::file_size(dir / "optimizer.safetensors") / 2);
  const auto e = error_of<CheckpointError>([&] { acc.load_state(dir.string()); });
  EXPECT_NE(e.find("optimizer.safetensors"), std::string::npos) << e;
  for (const auto& p : model->parameters()) EXPECT_TRUE(torch::all(p == 7).item<bool>()) << "the model was loaded";
}

// ProjectConfiguration::resume_from_checkpoint = "latest": nothing (and no error) on a first run, then the newest
// complete checkpoint; the model's weights come back.
TEST(Checkpoints, ResumeFromLatestStartsFreshThenLoadsTheNewest) {
  TempDir tmp{"accelerate_ckpt"};
  auto options = project_options(tmp.path);
  options.project.resume_from_checkpoint = "latest";
  torch::Tensor saved;
  {
    Accelerator first(options);
    auto model = first.prepare(torch::nn::Linear(2, 2));
    EXPECT_FALSE(first.resume_from_checkpoint().has_value());
    first.save_state();
    torch::NoGradGuard no_grad;
    model->weight.fill_(0.5);
    saved = model->weight.clone();
    first.save_state();
  }
  fs::create_directories(tmp.path / "checkpoints" / "checkpoint_2");  // interrupted: no COMPLETE
  Accelerator second(options);
  auto model = second.prepare(torch::nn::Linear(2, 2));
  ::testing::internal::CaptureStdout();
  const auto from = second.resume_from_checkpoint();
  const auto said = ::testing::internal::GetCapturedStdout();
  ASSERT_TRUE(from.has_value());
  EXPECT_EQ(fs::path(*from).filename(), "checkpoint_1");
  const auto first_note = said.find("skipping incomplete checkpoint");
  ASSERT_NE(first_note, std::string::npos) << said;
  EXPECT_EQ(said.find("skipping incomplete checkpoint", first_note + 1), std::string::npos) << "reported twice:\n"
                                                                                            << said;
  EXPECT_TRUE(torch::equal(model->weight, saved));
  options.project.resume_from_checkpoint = (tmp.path / "missing").string();
  Accelerator third(options);
  EXPECT_NE(error_of<CheckpointError>([&] { third.resume_from_checkpoint(); }).find("does not exist"),
            std::string::npos);
}

// An unwritable project folder would only fail at the first save, after the training it was meant to keep.
TEST(Checkpoints, AProjectDirThatCannotBeWrittenFailsBeforeTraining) {
  TempDir tmp{"accelerate_ckpt"};
  std::ofstream(tmp.path / "a_file") << "not a folder";
  try {
    Accelerator acc(project_options(tmp.path / "a_file" / "runs"));
    FAIL() << "no error for a project_dir under a regular file";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("a_file/runs' cannot be written"), std::string::npos) << e.what();
  }
  Accelerator fine(project_options(tmp.path / "new" / "runs"));
  EXPECT_TRUE(fs::is_directory(tmp.path / "new" / "runs"));
  EXPECT_TRUE(fs::is_empty(tmp.path / "new" / "runs")) << "the probe file was left behind";
}

// HF spells the folder two ways (project_dir and ProjectConfiguration.project_dir): either is the folder, the same
// folder twice is fine, two folders are refused before anything is written to either.
TEST(Checkpoints, TheProjectDirIsGivenInEitherSpellingAndTwoFoldersAreRefused) {
  TempDir tmp{"accelerate_ckpt"};
  AcceleratorOptions top;
  top.project_dir = (tmp.path / "top").string();
  EXPECT_EQ(Accelerator(top).project_configuration().project_dir, top.project_dir);
  auto both = project_options(tmp.path / "nested");
  both.project_dir = both.project.project_dir;
  EXPECT_EQ(Accelerator(both).project_configuration().project_dir, both.project_dir);
  both.project_dir = (tmp.path / "other").string();
  EXPECT_NE(error_of<ConfigError>([&] { Accelerator refused(both); }).find("differ; give one of them"),
            std::string::npos);
  EXPECT_FALSE(fs::exists(tmp.path / "other"));
}
