// save_state / load_state: HF's folder layout with no pickle (tensors in safetensors, the rest in JSON), written
// atomically. Protocol: rank 0 creates <dir>.tmp; every rank writes its files (fsync'd); all agree; rank 0
// renames the folder into place, fsyncs, and writes COMPLETE last. A folder without COMPLETE is never loaded.
// The files themselves are written and read by detail/accelerator_state.hpp; this file chooses the folder and
// runs the protocol.
#include <accelerate/accelerator.hpp>

#include <accelerate/error.hpp>
#include <accelerate/model_io.hpp>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <unistd.h>

#include "detail/accelerator_state.hpp"
#include "detail/checkpoint_layout.hpp"
#include "detail/communicator.hpp"
#include "detail/durable_file.hpp"

#include <nlohmann/json.hpp>

namespace accelerate {
namespace fs = std::filesystem;
using detail::concat;
using namespace detail::checkpoint;

namespace {

/// Where the automatic checkpoints live: <project_dir>/checkpoints (HF's layout).
fs::path checkpoints_folder(const ProjectConfiguration& project) {
  return fs::path(project.project_dir) / "checkpoints";
}

/// Every rank reports its error (empty when fine); all ranks throw the same message if any failed, so no rank
/// goes on alone. Ranks with the same error share one entry ("ranks 0, 1: ..."; "every rank: ..." in a world of
/// more than one), so a missing file is said once, not once per process.
void agree(const ProcessState& state, const std::string& my_error) {
  std::vector<std::pair<std::string, std::vector<int64_t>>> errors;  // in rank order of first appearance
  int64_t rank = 0;
  for (const auto& e : gather_object(state, c10::IValue(my_error))) {
    const auto& text = e.toStringRef();
    if (!text.empty()) {
      auto same = std::find_if(errors.begin(), errors.end(), [&](const auto& x) { return x.first == text; });
      if (same == errors.end()) same = errors.insert(errors.end(), {text, {}});
      same->second.push_back(rank);
    }
    ++rank;
  }
  std::string all;
  for (const auto& [text, ranks] : errors) {
    std::string who;
    if (ranks.size() == 1) {
      who = concat("rank ", ranks[0]);
    } else if (static_cast<int64_t>(ranks.size()) == rank) {
      who = "every rank";
    } else {
      who = "ranks ";
      for (size_t i = 0; i < ranks.size(); ++i) who += concat(i ? ", " : "", ranks[i]);
    }
    all += concat(all.empty() ? "" : "; ", who, ": ", text);
  }
  ACCELERATE_CHECK(all.empty(), CheckpointError, all);
}

template <class F>
void run_agreed(const ProcessState& state, F&& f) {
  std::string error;
  try {
    f();
  } catch (const std::exception& e) {
    error = e.what();
  }
  agree(state, error);
}

fs::path partial_folder(const fs::path& dir) { return dir.string() + kPartialSuffix; }

/// Renamed first (atomic), deleted second: a crash mid-deletion never leaves a "complete" folder with files
/// missing, because the half-deleted one no longer has a checkpoint's name.
void delete_checkpoint(const fs::path& folder) {
  if (!fs::exists(folder)) return;
  const fs::path doomed = folder.string() + kDeletingSuffix;
  fs::rename(folder, doomed);
  detail::fsync_path(doomed.parent_path());
  fs::remove_all(doomed);
}

/// Rank 0 prepares the folder; a machine that does not see it there (a node-local output folder, no shared
/// filesystem) prepares its own through its local main process, as HF creates the folder on every process.
/// Returns whether this rank sees rank 0's folder.
bool prepare_checkpoint_folder(const ProcessState& state, const fs::path& dir, bool automatic) {
  const fs::path tmp = partial_folder(dir);
  auto prepare = [&] {
    // A NODE_LOCAL folder of this name is a stale part of an earlier save (machine 0's decides what exists).
    if (fs::exists(dir / kNodeLocal) && !fs::exists(dir / kComplete)) fs::remove_all(dir);
    // An automatic checkpoint folder without COMPLETE is an interrupted save that load_state() skipped: this save
    // takes its number.
    if (automatic && fs::exists(dir) && !fs::is_empty(dir) && !fs::exists(dir / kComplete)) {
      std::cerr << "accelerate: replacing " << dir.string() << ", an interrupted save (no " << kComplete << ")."
                << std::endl;
      delete_checkpoint(dir);
    }
    ACCELERATE_CHECK(!fs::exists(dir) || fs::is_empty(dir), CheckpointError, "save_state: ", dir.string(),
                     " already exists and is not empty; choose another folder, or delete that one if it is an "
                     "interrupted save (it has no ",
                     kComplete, " marker). Nothing was written.");
    fs::remove_all(tmp);  // a leftover of an interrupted save of this very folder
    fs::create_directories(tmp);
  };
  const std::string token = concat(::getpid(), "-", std::chrono::steady_clock::now().time_since_epoch().count());
  run_agreed(state, [&] {
    if (!state.is_main_process()) return;
    prepare();
    detail::write_text_file(tmp / kOwner, token, detail::Replace::InPlace);
  });
  std::vector<c10::IValue> owner{c10::IValue(token)};
  broadcast_object_list(state, owner, 0);
  std::ifstream in(tmp / kOwner);
  std::string seen;
  std::getline(in, seen);
  const bool shared = seen == owner[0].toStringRef();
  run_agreed(state, [&] {
    if (!shared && state.is_local_main_process()) prepare();
  });
  wait_for_everyone(state);  // each machine's folder exists before anyone writes into it
  return shared;
}

/// checksums.json: the CRC-32 of every file in the folder (safetensors has no checksum of its own, so a flipped
/// byte in tensor data would load silently); load_state checks them.
void write_checksums(const fs::path& folder) {
  nlohmann::json files = nlohmann::json::object();
  for (const auto& entry : fs::directory_iterator(folder)) {
    if (entry.is_regular_file()) files[entry.path().filename().string()] = detail::file_crc32(entry.path());
  }
  detail::write_text_file(folder / kChecksums, nlohmann::json{{"algorithm", "crc32"}, {"files", files}}.dump(2),
                          detail::Replace::InPlace);
}

/// Renames each machine's partial folder into place and marks it: COMPLETE on machine 0's, NODE_LOCAL on another
/// machine's own folder (it holds only its ranks' random states, so load_state() must not take it for a
/// checkpoint).
void commit_checkpoint_folder(const ProcessState& state, const fs::path& dir, bool shared) {
  run_agreed(state, [&] {
    if (!state.is_main_process() && (shared || !state.is_local_main_process())) return;
    const fs::path tmp = partial_folder(dir);
    fs::remove(tmp / kOwner);
    write_checksums(tmp);
    detail::fsync_path(tmp);
    if (fs::exists(dir)) fs::remove(dir);  // an empty folder, checked when it was prepared
    fs::rename(tmp, dir);
    detail::fsync_path(dir.parent_path());
    const bool main = state.is_main_process();
    detail::write_text_file(dir / (main ? kComplete : kNodeLocal),
                            main ? concat("format_version ", kFormatVersion, "\n")
                                 : "this machine's random states only; the checkpoint is on machine 0\n",
                            detail::Replace::InPlace);
    detail::fsync_path(dir);
  });
}

}  // namespace

detail::CheckpointContents Accelerator::checkpoint_contents() {
  detail::CheckpointContents c;
  for (const auto& model : prepared_models_) c.models.push_back(model.get());
  for (auto& optimizer : optimizers_) {
    c.optimizers.push_back(&optimizer.optimizer());
    c.sharded.push_back(optimizer.sharded());
  }
  // Only what still exists: a loader or object the user destroyed is never read, and the counts in metadata.json
  // say what was saved.
  for (auto& scheduler : schedulers_) {
    if (scheduler.alive()) c.schedulers.push_back(&scheduler.scheduler());
  }
  std::erase_if(loaders_, [](const auto& l) { return !l.alive(); });
  for (const auto& loader : loaders_) c.loaders.push_back(&loader.get());
  std::erase_if(custom_objects_, [](const auto& o) { return !o.alive(); });
  for (const auto& object : custom_objects_) c.custom_objects.push_back(&object.get());
  c.scaler = scaler_.get();
  return c;
}

void Accelerator::save_model(const std::shared_ptr<torch::nn::Module>& model, const std::string& dir,
                             int64_t max_shard_size, std::source_location where) {
  // HF's order, save_model after end_training, has no collectives left to agree with: the main process writes.
  if (state_->process_group_destroyed()) {
    if (is_main_process()) accelerate::save_model(*model, dir, max_shard_size);
    return;
  }
  detail::CallScope call(state_->communicator(), "save_model", where);
  run_agreed(*state_, [&] {
    if (is_main_process()) accelerate::save_model(*model, dir, max_shard_size);
  });
}

std::string Accelerator::save_state(const std::string& output_dir, std::source_location where) {
  detail::CallScope call(state_->communicator(), "save_state", where);
  auto& project = options_.project;
  fs::path dir = output_dir;
  if (dir.empty()) {
    ACCELERATE_CHECK(
        project.automatic_checkpoint_naming && !project.project_dir.empty(), ConfigError,
        "save_state: give a folder, or set ProjectConfiguration{project_dir, automatic_checkpoint_naming}.");
    if (!numbering_checked_) continue_numbering();
    dir = checkpoints_folder(project) / folder_name(project.iteration);
  }
  const bool shared = prepare_checkpoint_folder(*state_, dir, output_dir.empty());
  const detail::CheckpointWriter writer{.process_index = process_index(),
                                        .num_processes = num_processes(),
                                        .device = device(),
                                        .step = step_,
                                        .iteration = project.iteration,
                                        .precision = precision_};
  run_agreed(*state_, [&] { detail::save_accelerator_state(partial_folder(dir), checkpoint_contents(), writer); });
  commit_checkpoint_folder(*state_, dir, shared);
  if (output_dir.empty()) {
    if (project.total_limit) rotate(dir, shared);
    ++project.iteration;
  }
  wait_for_everyone();
  return dir.string();
}

void Accelerator::rotate(const fs::path& written, bool shared) {
  // Rotation happens only now that the new checkpoint is complete. Rank 0 decides from machine 0's folder; a
  // machine with a folder of its own removes the same names there (its NODE_LOCAL parts).
  std::vector<c10::IValue> doomed;
  if (is_main_process()) {
    std::vector<std::pair<int64_t, fs::path>> complete;
    for (const auto& entry : fs::directory_iterator(written.parent_path())) {
      const auto name = entry.path().filename().string();
      if (name.size() > 9 && name.ends_with(kDeletingSuffix)) fs::remove_all(entry.path());  // an interrupted rotation
      auto n = folder_index(name);
      if (n && fs::exists(entry.path() / kComplete)) complete.emplace_back(*n, entry.path());
    }
    std::sort(complete.begin(), complete.end());
    // The checkpoint just written is never a candidate, whatever its number.
    std::erase_if(complete, [&](const auto& c) { return c.second.filename() == written.filename(); });
    while (static_cast<int>(complete.size()) >= *options_.project.total_limit && !complete.empty()) {
      delete_checkpoint(complete.front().second);
      doomed.emplace_back(complete.front().second.filename().string());
      complete.erase(complete.begin());
    }
  }
  accelerate::broadcast_object_list(*state_, doomed, 0);
  if (shared || !is_local_main_process()) return;
  for (const auto& name : doomed) delete_checkpoint(written.parent_path() / name.toStringRef());
}

void Accelerator::continue_numbering() {
  auto& project = options_.project;
  numbering_checked_ = true;
  int64_t highest = -1;
  if (is_main_process()) {
    std::error_code ec;
    for (fs::directory_iterator it(checkpoints_folder(project), ec), end; !ec && it != end; it.increment(ec)) {
      if (auto n = folder_index(it->path().filename().string())) highest = std::max(highest, *n);
    }
  }
  std::vector<c10::IValue> shared{c10::IValue(highest)};
  accelerate::broadcast_object_list(*state_, shared, 0);  // every rank numbers its files alike
  highest = shared[0].toInt();
  if (highest < project.iteration) return;
  print(concat("accelerate: ", checkpoints_folder(project).string(), " already holds checkpoints up to checkpoint_",
               highest,
               " (from an earlier run); this run's automatic "
               "checkpoints continue at checkpoint_",
               highest + 1, ". Call load_state() first to resume that run."));
  project.iteration = highest + 1;
}

namespace {

/// The complete automatic checkpoints under `root`, newest first, as rank 0 sees them: every rank takes the same
/// list, so machines with their own folders (or a stale leftover on one of them) never resume from different ones.
std::vector<int64_t> complete_checkpoints(const ProcessState& state, const fs::path& root) {
  std::vector<c10::IValue> found;
  if (state.is_main_process() && fs::exists(root)) {
    std::vector<int64_t> indices;
    for (const auto& entry : fs::directory_iterator(root)) {
      const auto n = folder_index(entry.path().filename().string());
      if (!n) continue;
      if (!fs::exists(entry.path() / kComplete)) {
        print(state, "accelerate: skipping incomplete checkpoint", entry.path().string());
        continue;
      }
      indices.push_back(*n);
    }
    std::sort(indices.rbegin(), indices.rend());
    for (const auto n : indices) found.emplace_back(n);
  }
  std::vector<c10::IValue> shared{c10::IValue(c10::List<int64_t>())};
  if (state.is_main_process()) {
    c10::List<int64_t> list;
    for (const auto& n : found) list.push_back(n.toInt());
    shared[0] = c10::IValue(list);
  }
  broadcast_object_list(state, shared, 0);
  return shared[0].toIntVector();
}

}  // namespace

std::optional<std::string> Accelerator::latest_checkpoint(std::source_location where) const {
  detail::CallScope call(state_->communicator(), "latest_checkpoint", where);
  const auto& project = options_.project;
  if (project.project_dir.empty()) return std::nullopt;
  const fs::path root = checkpoints_folder(project);
  const auto all = complete_checkpoints(*state_, root);
  if (all.empty()) return std::nullopt;
  return (root / folder_name(all.front())).string();
}

std::optional<fs::path> Accelerator::newest_checkpoint() {
  auto& project = options_.project;
  ACCELERATE_CHECK(!project.project_dir.empty(), ConfigError,
                   "load_state: give a folder, or set ProjectConfiguration::project_dir.");
  const fs::path root = checkpoints_folder(project);
  const auto all = complete_checkpoints(*state_, root);
  if (all.empty()) return std::nullopt;
  project.iteration = all.front() + 1;  // the next save never takes the number of one that exists
  numbering_checked_ = true;
  return root / folder_name(all.front());
}

std::optional<std::string> Accelerator::resume_from_checkpoint(std::source_location where) {
  const std::string& from = options_.project.resume_from_checkpoint;
  if (from.empty()) return std::nullopt;
  if (from != "latest") return load_state(from, where);
  detail::CallScope call(state_->communicator(), "resume_from_checkpoint", where);
  ACCELERATE_CHECK(!options_.project.project_dir.empty(), ConfigError,
                   "resume_from_checkpoint \"latest\" needs ProjectConfiguration::project_dir, where the automatic "
                   "checkpoints are.");
  const auto newest = newest_checkpoint();  // one listing: its notes on skipped folders print once
  if (!newest) {
    print("accelerate: no complete checkpoint in", checkpoints_folder(options_.project).string(),
          "yet: starting from scratch.");
    return std::nullopt;
  }
  return load_state_from(*newest, /*automatic=*/true, where);
}

std::string Accelerator::load_state(const std::string& input_dir, std::source_location where) {
  detail::CallScope call(state_->communicator(), "load_state", where);
  if (!input_dir.empty()) return load_state_from(input_dir, /*automatic=*/false, where);
  const auto newest = newest_checkpoint();
  ACCELERATE_CHECK(newest, CheckpointError, "load_state: no complete checkpoint in ",
                   checkpoints_folder(options_.project).string(), " (on the main process's machine).");
  return load_state_from(*newest, /*automatic=*/true, where);
}

std::string Accelerator::load_state_from(const fs::path& dir, bool automatic, std::source_location where) {
  run_agreed(*state_, [&] {
    ACCELERATE_CHECK(fs::is_directory(dir), CheckpointError, "load_state: ", dir.string(),
                     " does not exist or is not a folder; give a checkpoint folder (<project_dir>/checkpoints/"
                     "checkpoint_<n>), or nothing for the newest.");
    ACCELERATE_CHECK(fs::exists(dir / kComplete) || fs::exists(dir / kMetadata) || fs::exists(dir / kNodeLocal),
                     CheckpointError, "load_state: ", dir.string(),
                     " is not a checkpoint folder (it has neither metadata.json nor COMPLETE); give one of the "
                     "checkpoint_<n> folders under <project_dir>/checkpoints, or nothing for the newest.");
    ACCELERATE_CHECK(fs::exists(dir / kComplete), CheckpointError, "load_state: ", dir.string(),
                     fs::exists(dir / kNodeLocal)
                         ? " holds only this machine's random states (NODE_LOCAL): copy machine 0's checkpoint folder "
                           "here (this machine's files may stay), or use a folder all machines share."
                         : concat(" is not a complete checkpoint (no ", kComplete,
                                  " marker): it was interrupted while being written."));
  });
  const auto contents = checkpoint_contents();
  int saved_world = 0;  // every rank checks the files before any rank loads one
  try {
    run_agreed(*state_, [&] { saved_world = detail::check_checkpoint_metadata(dir, contents, process_index()); });
  } catch (const CheckpointError& e) {
    if (!automatic) throw;
    // The automatic choice falls back to the newest older checkpoint that passes the same checks.
    const auto newest = folder_index(dir.filename().string()).value_or(-1);
    for (const auto n : complete_checkpoints(*state_, dir.parent_path())) {
      if (n >= newest) continue;
      const auto older = dir.parent_path() / folder_name(n);
      print(concat("accelerate: ", dir.filename().string(), " cannot be loaded (", e.what(), "); falling back to ",
                   older.filename().string(), "."));
      try {
        return load_state_from(older, /*automatic=*/false, where);
      } catch (const CheckpointError& again) {
        print(concat("accelerate: ", older.filename().string(), " cannot be loaded either (", again.what(), ")."));
      }
    }
    throw;
  }
  if (saved_world != num_processes()) {
    print("accelerate: resuming with", num_processes(), "process(es) from a checkpoint of", saved_world,
          "processes: model, optimizer and scheduler state are replicated and load as they are; ranks without a"
          " random-state file of their own take rank 0's; data positions are mapped by global sample index.");
  }
  run_agreed(*state_, [&] {
    step_ = detail::load_accelerator_state(dir, contents, process_index(), device(), saved_world,
                                           [&](const std::string& message) { print(message); });
  });
  return dir.string();
}

}  // namespace accelerate
