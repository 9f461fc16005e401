// save_state / load_state's folders and their protocol (detail/checkpointer.hpp): HF's folder layout with no
// pickle, written atomically. A folder without COMPLETE is never loaded.
#include "detail/checkpointer.hpp"

#include <accelerate/collectives.hpp>
#include <accelerate/error.hpp>

#include <algorithm>
#include <chrono>
#include <fstream>
#include <iostream>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include "detail/checkpoint_layout.hpp"
#include "detail/durable_file.hpp"

namespace accelerate::detail {
namespace fs = std::filesystem;
using namespace checkpoint;

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

std::vector<CheckpointFolder> list_checkpoint_folders(const fs::path& root, std::vector<fs::path>* interrupted) {
  std::vector<CheckpointFolder> found;
  std::error_code ec;
  for (fs::directory_iterator it(root, ec), end; !ec && it != end; it.increment(ec)) {
    const auto name = it->path().filename().string();
    if (interrupted && name.size() > 9 && name.ends_with(kDeletingSuffix)) interrupted->push_back(it->path());
    if (auto n = folder_index(name)) found.push_back({*n, it->path(), fs::exists(it->path() / kComplete)});
  }
  std::sort(found.begin(), found.end(), [](const auto& a, const auto& b) { return a.index < b.index; });
  return found;
}

namespace {

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
/// Returns whether this rank sees rank 0's folder, and rank 0's token (the same on every rank: this save's id).
std::pair<bool, std::string> prepare_checkpoint_folder(const ProcessState& state, const fs::path& dir, bool automatic) {
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
                     " already exists and is not empty (",
                     fs::exists(dir / kComplete) ? concat("a complete checkpoint: it has the ", kComplete, " marker")
                                                 : concat("no ", kComplete,
                                                          " marker: an interrupted save, or "
                                                          "another program's folder"),
                     "); choose another folder, or delete that one. Nothing was written.");
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
  return {shared, owner[0].toStringRef()};
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

Checkpointer::Checkpointer(const ProcessState& state, ProjectConfiguration project)
    : state_(state), project_(std::move(project)) {}

fs::path Checkpointer::folder() const { return fs::path(project_.project_dir) / "checkpoints"; }

fs::path Checkpointer::save(const std::string& output_dir, const CheckpointParts& parts, CheckpointWriter writer) {
  const bool automatic = output_dir.empty();
  fs::path dir = output_dir;
  if (automatic) {
    ACCELERATE_CHECK(
        project_.automatic_checkpoint_naming, ConfigError,
        "save_state: give a folder, or set ProjectConfiguration{project_dir, automatic_checkpoint_naming}.");
    if (!numbering_checked_) continue_numbering();
    dir = folder() / folder_name(project_.iteration);
  }
  const auto [shared, save_id] = prepare_checkpoint_folder(state_, dir, automatic);
  // Files every rank writes itself (ZeRO stage 3's shards) must land in machine 0's folder to be a checkpoint.
  const bool own_files = std::any_of(parts.begin(), parts.end(), [](const auto& p) { return bool(p.save_own); });
  run_agreed(state_, [&, shared = shared] {
    ACCELERATE_CHECK(shared || !own_files, CheckpointError, "save_state: this machine does not see machine 0's ",
                     dir.string(),
                     " (a folder on a disk of each machine), but at ZeRO stage 3 every process writes its shards into "
                     "the checkpoint folder, so machine 0's would lack this machine's. Save to a folder every machine "
                     "shares, or set FsdpOptions::sharded_state_dict = false (the main process then writes whole "
                     "files). Nothing was saved.");
  });
  writer.iteration = project_.iteration;
  writer.save_id = save_id;
  run_agreed(state_, [&] { save_checkpoint_files(partial_folder(dir), parts, writer); });
  commit_checkpoint_folder(state_, dir, shared);
  if (automatic) {
    if (project_.total_limit) rotate(dir, shared);
    ++project_.iteration;
  }
  wait_for_everyone(state_);
  return dir;
}

void Checkpointer::rotate(const fs::path& written, bool shared) {
  // Rotation happens only now that the new checkpoint is complete. Rank 0 decides from machine 0's folder; a
  // machine with a folder of its own removes the same names there (its NODE_LOCAL parts).
  std::vector<c10::IValue> doomed;
  if (state_.is_main_process()) {
    std::vector<fs::path> interrupted;
    auto complete = list_checkpoint_folders(written.parent_path(), &interrupted);
    for (const auto& path : interrupted) fs::remove_all(path);
    // The checkpoint just written is never a candidate, whatever its number.
    std::erase_if(complete, [&](const auto& c) { return !c.complete || c.path.filename() == written.filename(); });
    for (size_t i = 0; static_cast<int>(complete.size() - i) >= *project_.total_limit && i < complete.size(); ++i) {
      delete_checkpoint(complete[i].path);
      doomed.emplace_back(complete[i].path.filename().string());
    }
  }
  broadcast_object_list(state_, doomed, 0);
  if (shared || !state_.is_local_main_process()) return;
  for (const auto& name : doomed) delete_checkpoint(written.parent_path() / name.toStringRef());
}

void Checkpointer::continue_numbering() {
  numbering_checked_ = true;
  int64_t highest = -1;
  if (state_.is_main_process()) {
    for (const auto& f : list_checkpoint_folders(folder())) highest = std::max(highest, f.index);
  }
  std::vector<c10::IValue> shared{c10::IValue(highest)};
  broadcast_object_list(state_, shared, 0);  // every rank numbers its files alike
  highest = shared[0].toInt();
  if (highest < project_.iteration) return;
  print(state_,
        concat("accelerate: ", folder().string(), " already holds checkpoints up to checkpoint_", highest,
               loaded_ ? "" : " (from an earlier run)", "; this run's automatic checkpoints continue at checkpoint_",
               highest + 1, loaded_ ? "." : ". Call load_state() first to resume that run."));
  project_.iteration = highest + 1;
}

std::vector<int64_t> Checkpointer::complete_checkpoints() const {
  // Every rank takes rank 0's list, so machines with their own folders (or a stale leftover on one of them) never
  // resume from different ones.
  c10::List<int64_t> newest_first;
  if (state_.is_main_process()) {
    const auto all = list_checkpoint_folders(folder());
    for (auto f = all.rbegin(); f != all.rend(); ++f) {
      if (f->complete) {
        newest_first.push_back(f->index);
      } else {
        print(state_, "accelerate: skipping incomplete checkpoint", f->path.string());
      }
    }
  }
  std::vector<c10::IValue> shared{c10::IValue(newest_first)};
  broadcast_object_list(state_, shared, 0);
  return shared[0].toIntVector();
}

std::optional<fs::path> Checkpointer::latest() const {
  const auto all = complete_checkpoints();
  if (all.empty()) return std::nullopt;
  return folder() / folder_name(all.front());
}

std::optional<fs::path> Checkpointer::newest() {
  const auto all = complete_checkpoints();
  if (all.empty()) return std::nullopt;
  project_.iteration = all.front() + 1;  // the next save never takes the number of one that exists
  numbering_checked_ = true;
  return folder() / folder_name(all.front());
}

Checkpointer::Loaded Checkpointer::load(const std::string& input_dir, const CheckpointParts& parts,
                                        const LoadContext& context) {
  if (!input_dir.empty()) return load_from(input_dir, /*automatic=*/false, parts, context);
  const auto found = newest();
  ACCELERATE_CHECK(found, CheckpointError, "load_state: no complete checkpoint in ", folder().string(),
                   " (on the main process's machine).");
  return load_from(*found, /*automatic=*/true, parts, context);
}

std::optional<Checkpointer::Loaded> Checkpointer::load_latest(const CheckpointParts& parts,
                                                              const LoadContext& context) {
  const auto found = newest();  // one listing: its notes on skipped folders print once
  if (!found) {
    print(state_, "accelerate: no complete checkpoint in", folder().string(), "yet: starting from scratch.");
    return std::nullopt;
  }
  return load_from(*found, /*automatic=*/true, parts, context);
}

namespace {

/// `dir` is a complete checkpoint folder, on every rank; CheckpointError saying what it is instead.
void check_is_checkpoint(const ProcessState& state, const fs::path& dir) {
  run_agreed(state, [&] {
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
}

}  // namespace

Checkpointer::Loaded Checkpointer::load_from(const fs::path& dir, bool automatic, const CheckpointParts& parts,
                                             const LoadContext& context) {
  check_is_checkpoint(state_, dir);
  SavedCheckpoint saved;  // every rank checks the files before any rank loads one
  try {
    run_agreed(state_, [&] { saved = check_checkpoint_files(dir, parts, state_.process_index()); });
  } catch (const CheckpointError& e) {
    if (!automatic) throw;
    // The automatic choice falls back to the newest older checkpoint that passes the same checks.
    const auto failed = folder_index(dir.filename().string()).value_or(-1);
    for (const auto n : complete_checkpoints()) {
      if (n >= failed) continue;
      const auto older = dir.parent_path() / folder_name(n);
      print(state_, concat("accelerate: ", dir.filename().string(), " cannot be loaded (", e.what(),
                           "); falling back to ", older.filename().string(), "."));
      try {
        return load_from(older, /*automatic=*/false, parts, context);
      } catch (const CheckpointError& again) {
        print(state_,
              concat("accelerate: ", older.filename().string(), " cannot be loaded either (", again.what(), ")."));
      }
    }
    throw;
  }
  if (saved.world_size != state_.num_processes()) {
    print(state_, "accelerate: resuming with", state_.num_processes(), "process(es) from a checkpoint of",
          saved.world_size,
          "processes: model and optimizer state load at any world size (ZeRO's shards are cut anew); ranks without a"
          " random-state file of their own take rank 0's; data positions are mapped by global sample index.");
  }
  Loaded loaded{dir, 0};
  run_agreed(state_, [&] { loaded.step = load_checkpoint_files(dir, parts, saved, context); });
  loaded_ = true;
  return loaded;
}

}  // namespace accelerate::detail
