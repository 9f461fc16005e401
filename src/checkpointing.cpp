// save_state / load_state: HF's folder layout with no pickle (tensors in safetensors, the rest in JSON), written
// atomically. Protocol: rank 0 creates <dir>.tmp; every rank writes its files (fsync'd); all agree; rank 0
// renames the folder into place, fsyncs, and writes COMPLETE last. A folder without COMPLETE is never loaded.
#include <accelerate/accelerator.hpp>

#include <accelerate/error.hpp>
#include <accelerate/model_io.hpp>
#include <accelerate/safetensors.hpp>
#include <accelerate/version.hpp>

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <algorithm>
#include <chrono>
#include <limits>
#include <type_traits>
#include <filesystem>
#include <optional>
#include <string_view>
#include <fstream>
#include <iostream>
#include <torch/optim/optimizer.h>
#include <torch/version.h>

#include <fcntl.h>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include "detail/communicator.hpp"
#include "detail/data_parallel.hpp"
#include "detail/loader_position.hpp"
#include "detail/model_state.hpp"
#include "detail/optimizer_state.hpp"

namespace accelerate {
namespace fs = std::filesystem;
using detail::concat;
using nlohmann::json;

namespace {

constexpr int kFormatVersion = 1;
constexpr const char* kComplete = "COMPLETE";

std::string indexed(const std::string& stem, size_t i, const std::string& ext) {
  return i == 0 ? stem + ext : concat(stem, "_", i, ext);
}

void fsync_path(const fs::path& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd >= 0) {
    ::fsync(fd);
    ::close(fd);
  }
}

void write_text(const fs::path& path, const std::string& text) {
  {
    std::ofstream out(path, std::ios::binary);
    out << text;
    out.flush();
    ACCELERATE_CHECK(out.good(), CheckpointError, "could not write ", path.string(), " (disk full?).");
  }
  fsync_path(path);
}

json read_json(const fs::path& path) {
  std::ifstream in(path);
  ACCELERATE_CHECK(in.good(), CheckpointError, "checkpoint file ", path.string(), " is missing.");
  json j;
  try {
    j = json::parse(in);
  } catch (const json::exception& e) {
    throw CheckpointError(concat("checkpoint file ", path.string(), " is not valid JSON: ", e.what()));
  }
  ACCELERATE_CHECK(j.is_object(), CheckpointError, "checkpoint file ", path.string(),
                   " must hold a JSON object; it is damaged or was not written by accelerate-cpp.");
  return j;
}

/// `key` of a checkpoint's JSON file as a T; a missing key gives `fallback` when there is one, a value of another
/// type is a CheckpointError naming the file and the key (never nlohmann's bare type_error).
template <class T>
T field(const json& j, const char* key, const fs::path& file, std::optional<T> fallback = std::nullopt) {
  auto it = j.find(key);
  if (it == j.end()) {
    ACCELERATE_CHECK(fallback.has_value(), CheckpointError, "checkpoint file ", file.string(), " has no '", key,
                     "'; it is damaged or was not written by accelerate-cpp. Resume from another checkpoint.");
    return *fallback;
  }
  bool ok = true;
  if constexpr (std::is_integral_v<T>) {
    // nlohmann would truncate 2.5 to 2 and wrap -1 into a huge size_t: an integer in T's range or nothing.
    ok = it->is_number_integer();
    if (ok && it->is_number_unsigned()) {
      ok = it->template get<uint64_t>() <= static_cast<uint64_t>(std::numeric_limits<T>::max());
    } else if (ok) {
      const auto v = it->template get<int64_t>();
      ok = v >= static_cast<int64_t>(std::numeric_limits<T>::min()) &&
           (v < 0 || static_cast<uint64_t>(v) <= static_cast<uint64_t>(std::numeric_limits<T>::max()));
    }
  }
  if (ok) {
    try {
      return it->template get<T>();
    } catch (const json::exception&) {
    }
  }
  std::string value = it->dump();
  if (value.size() > 80) value = value.substr(0, 80) + "...";
  throw CheckpointError(concat("checkpoint file ", file.string(), ": '", key, "' is not a valid value (", value,
                               "); the file is damaged or was edited. Resume from another checkpoint."));
}

/// Every rank reports its error (empty when fine); all ranks throw the same message if any failed, so no rank
/// goes on alone.
void agree(const ProcessState& state, const std::string& my_error) {
  std::string all;
  for (const auto& e : gather_object(state, c10::IValue(my_error))) {
    if (!e.toStringRef().empty()) all += (all.empty() ? "" : "; ") + e.toStringRef();
  }
  ACCELERATE_CHECK(all.empty(), CheckpointError, all);
}

/// Runs `f`, which loads state from `file`; any failure becomes a CheckpointError that names the file (torch's own
/// messages, "Invalid mt19937 state", do not).
template <class F>
void from_file(const fs::path& file, F&& f) {
  try {
    f();
  } catch (const Error&) {
    throw;
  } catch (const std::exception& e) {
    throw CheckpointError(concat("checkpoint file ", file.string(), " could not be loaded (",
                                 detail::message_of(e).substr(0, 300),
                                 "); it is damaged. Resume from another checkpoint."));
  }
}

template <class F>
void run_agreed(const ProcessState& state, F&& f) {
  std::string error;
  try {
    f();
  } catch (const std::exception& e) {
    error = concat("rank ", state.process_index(), ": ", e.what());
  }
  agree(state, error);
}

void save_optimizer(torch::optim::Optimizer& opt, const fs::path& dir, const std::string& stem) {
  auto state = detail::optimizer_state(opt);
  safetensors::save_file(state.tensors, (dir / (stem + ".safetensors")).string(), {{"format", "pt"}});
  write_text(dir / (stem + ".json"), state.meta.dump(2));
}

void load_optimizer(torch::optim::Optimizer& opt, const fs::path& dir, const std::string& stem) {
  const auto json_path = dir / (stem + ".json");
  safetensors::File tensors((dir / (stem + ".safetensors")).string());
  detail::load_optimizer_state(opt, tensors, read_json(json_path), json_path.string());
}

/// N for a folder named exactly checkpoint_<digits>; anything else (checkpoint_3.tmp, checkpoint_3.deleting, ...)
/// is not a checkpoint.
std::optional<int64_t> checkpoint_index(const std::string& name) {
  constexpr std::string_view prefix = "checkpoint_";
  if (name.size() <= prefix.size() || name.compare(0, prefix.size(), prefix) != 0) return std::nullopt;
  const auto digits = name.substr(prefix.size());
  if (digits.size() > 18 || !std::all_of(digits.begin(), digits.end(), [](char c) { return c >= '0' && c <= '9'; })) {
    return std::nullopt;
  }
  return std::stoll(digits);
}

// ---- RNG ----
at::Generator cpu_generator() { return at::detail::getDefaultCPUGenerator(); }

}  // namespace

void Accelerator::save_model(const std::shared_ptr<torch::nn::Module>& model, const std::string& dir,
                             int64_t max_shard_size) {
  run_agreed(*state_, [&] {
    if (is_main_process()) accelerate::save_model(*model, dir, max_shard_size);
  });
}

std::string Accelerator::save_state(const std::string& output_dir) {
  auto& project = options_.project;
  fs::path dir = output_dir;
  if (dir.empty()) {
    ACCELERATE_CHECK(
        project.automatic_checkpoint_naming && !project.project_dir.empty(), ConfigError,
        "save_state: give a folder, or set ProjectConfiguration{project_dir, automatic_checkpoint_naming}.");
    if (!numbering_checked_) continue_numbering();
    dir = fs::path(project.project_dir) / "checkpoints" / concat("checkpoint_", project.iteration);
  }
  const fs::path tmp = dir.string() + ".tmp";
  // Rank 0 prepares the folder; a machine that does not see it there (a node-local output folder, no shared
  // filesystem) prepares its own through its local main process, as HF creates the folder on every process.
  auto prepare_folder = [&] {
    // A NODE_LOCAL folder of this name is a stale part of an earlier save (machine 0's decides what exists).
    if (fs::exists(dir / "NODE_LOCAL") && !fs::exists(dir / kComplete)) fs::remove_all(dir);
    ACCELERATE_CHECK(!fs::exists(dir) || fs::is_empty(dir), CheckpointError, "save_state: ", dir.string(),
                     " already exists and is not empty; choose another folder (nothing was written).");
    fs::remove_all(tmp);  // a leftover of an interrupted save of this very folder
    fs::create_directories(tmp);
  };
  const std::string token = concat(::getpid(), "-", std::chrono::steady_clock::now().time_since_epoch().count());
  run_agreed(*state_, [&] {
    if (!is_main_process()) return;
    prepare_folder();
    write_text(tmp / ".owner", token);
  });
  std::vector<c10::IValue> owner{c10::IValue(token)};
  broadcast_object_list(*state_, owner, 0);
  const bool shared = [&] {  // does this rank see rank 0's folder?
    std::ifstream in(tmp / ".owner");
    std::string seen;
    std::getline(in, seen);
    return seen == owner[0].toStringRef();
  }();
  run_agreed(*state_, [&] {
    if (!shared && is_local_main_process()) prepare_folder();
  });
  wait_for_everyone();  // each machine's folder exists before anyone writes into it
  run_agreed(*state_, [&] {
    if (is_main_process()) {
      for (size_t i = 0; i < prepared_models_.size(); ++i) {
        safetensors::save_file(detail::model_state(*prepared_models_[i]),
                               (tmp / indexed("model", i, ".safetensors")).string(), {{"format", "pt"}});
      }
      for (size_t i = 0; i < optimizers_.size(); ++i) {
        save_optimizer(optimizers_[i].optimizer(), tmp, indexed("optimizer", i, ""));
      }
      for (size_t i = 0; i < schedulers_.size(); ++i) {
        write_text(tmp / indexed("scheduler", i, ".json"),
                   json{{"last_epoch", schedulers_[i].scheduler().last_epoch()}}.dump(2));
      }
      if (scaler_) {
        write_text(tmp / "scaler.json",
                   json{{"scale", scaler_->get_scale()}, {"growth_tracker", scaler_->growth_tracker()}}.dump(2));
      }
      for (size_t i = 0; i < loaders_.size(); ++i) {
        const auto p = loaders_[i]->position();
        safetensors::save_file({{"generator", p.generator_state}},
                               (tmp / indexed("sampler", i, ".safetensors")).string(),
                               detail::loader_metadata(*loaders_[i], p));
      }
      for (size_t i = 0; i < custom_objects_.size(); ++i) {
        safetensors::save_file(custom_objects_[i]->state_tensors(),
                               (tmp / concat("custom_checkpoint_", i, ".safetensors")).string(),
                               {{"json", custom_objects_[i]->state_json()}});
      }
      write_text(tmp / "metadata.json", json{{"format", "accelerate-cpp checkpoint"},
                                             {"format_version", kFormatVersion},
                                             {"library_version", kVersion},
                                             {"torch_version", TORCH_VERSION},
                                             {"world_size", num_processes()},
                                             {"step", step_},
                                             {"iteration", project.iteration},
                                             {"models", prepared_models_.size()},
                                             {"optimizers", optimizers_.size()},
                                             {"schedulers", schedulers_.size()},
                                             {"data_loaders", loaders_.size()},
                                             {"custom_objects", custom_objects_.size()},
                                             {"mixed_precision", to_string(precision_)}}
                                            .dump(2));
    }
    safetensors::TensorMap rng{{"cpu", cpu_generator().get_state()}};
    if (device().is_cuda()) rng["cuda"] = at::globalContext().defaultGenerator(device()).get_state();
    safetensors::save_file(rng, (tmp / concat("random_states_", process_index(), ".safetensors")).string(),
                           {{"step", std::to_string(step_)}});
  });
  run_agreed(*state_, [&] {
    if (!is_main_process() && (shared || !is_local_main_process())) return;
    fs::remove(tmp / ".owner");
    fsync_path(tmp);
    if (fs::exists(dir)) fs::remove(dir);  // an empty folder, checked above
    fs::rename(tmp, dir);
    fsync_path(dir.parent_path());
    // Another machine's own folder holds only its ranks' random states: put in place, but never COMPLETE (the
    // model and optimizer are in machine 0's folder), so load_state() does not take it for a checkpoint.
    write_text(dir / (is_main_process() ? kComplete : "NODE_LOCAL"),
               is_main_process() ? concat("format_version ", kFormatVersion, "\n")
                                 : "this machine's random states only; the checkpoint is on machine 0\n");
    fsync_path(dir);
  });
  if (output_dir.empty()) {
    if (project.total_limit) rotate(dir, shared);
    ++project.iteration;
  }
  wait_for_everyone();
  return dir.string();
}

namespace {

/// Renamed first (atomic), deleted second: a crash mid-deletion never leaves a "complete" folder with files
/// missing, because the half-deleted one no longer has a checkpoint's name.
void delete_checkpoint(const fs::path& folder) {
  if (!fs::exists(folder)) return;
  const fs::path doomed = folder.string() + ".deleting";
  fs::rename(folder, doomed);
  fsync_path(doomed.parent_path());
  fs::remove_all(doomed);
}

}  // namespace

void Accelerator::rotate(const fs::path& written, bool shared) {
  // Rotation happens only now that the new checkpoint is complete. Rank 0 decides from machine 0's folder; a
  // machine with a folder of its own removes the same names there (its NODE_LOCAL parts).
  std::vector<c10::IValue> doomed;
  if (is_main_process()) {
    std::vector<std::pair<int64_t, fs::path>> complete;
    for (const auto& entry : fs::directory_iterator(written.parent_path())) {
      const auto name = entry.path().filename().string();
      if (name.size() > 9 && name.ends_with(".deleting")) fs::remove_all(entry.path());  // an interrupted rotation
      auto n = checkpoint_index(name);
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
  broadcast_object_list(*state_, doomed, 0);
  if (shared || !is_local_main_process()) return;
  for (const auto& name : doomed) delete_checkpoint(written.parent_path() / name.toStringRef());
}

void Accelerator::continue_numbering() {
  auto& project = options_.project;
  numbering_checked_ = true;
  int64_t highest = -1;
  if (is_main_process()) {
    std::error_code ec;
    for (fs::directory_iterator it(fs::path(project.project_dir) / "checkpoints", ec), end; !ec && it != end;
         it.increment(ec)) {
      if (auto n = checkpoint_index(it->path().filename().string())) highest = std::max(highest, *n);
    }
  }
  std::vector<c10::IValue> shared{c10::IValue(highest)};
  broadcast_object_list(*state_, shared, 0);  // every rank numbers its files alike
  highest = shared[0].toInt();
  if (highest < project.iteration) return;
  print(concat("accelerate: ", (fs::path(project.project_dir) / "checkpoints").string(),
               " already holds checkpoints up to checkpoint_", highest,
               " (from an earlier run); this run's automatic "
               "checkpoints continue at checkpoint_",
               highest + 1, ". Call load_state() first to resume that run."));
  project.iteration = highest + 1;
}

std::string Accelerator::load_state(const std::string& input_dir) {
  auto& project = options_.project;
  fs::path dir = input_dir;
  if (dir.empty()) {
    ACCELERATE_CHECK(!project.project_dir.empty(), ConfigError,
                     "load_state: give a folder, or set ProjectConfiguration::project_dir.");
    const fs::path root = fs::path(project.project_dir) / "checkpoints";
    // Rank 0 chooses and every rank takes the same name: machines with their own folders (or a stale leftover on
    // one of them) must never resume from different checkpoints.
    int64_t newest = -1;
    if (is_main_process() && fs::exists(root)) {
      for (const auto& entry : fs::directory_iterator(root)) {
        const auto n = checkpoint_index(entry.path().filename().string());
        if (!n) continue;
        if (!fs::exists(entry.path() / kComplete)) {
          print("accelerate: skipping incomplete checkpoint", entry.path().string());
          continue;
        }
        newest = std::max(newest, *n);
      }
    }
    std::vector<c10::IValue> chosen{c10::IValue(newest)};
    broadcast_object_list(*state_, chosen, 0);
    newest = chosen[0].toInt();
    ACCELERATE_CHECK(newest >= 0, CheckpointError, "load_state: no complete checkpoint in ", root.string(),
                     " (on the main process's machine).");
    dir = root / concat("checkpoint_", newest);
    project.iteration = newest + 1;
    numbering_checked_ = true;
  }
  run_agreed(*state_, [&] {
    ACCELERATE_CHECK(fs::exists(dir / kComplete), CheckpointError, "load_state: ", dir.string(),
                     fs::exists(dir / "NODE_LOCAL")
                         ? " holds only this machine's random states (NODE_LOCAL): copy machine 0's checkpoint folder "
                           "here (this machine's files may stay), or use a folder all machines share."
                         : concat(" is not a complete checkpoint (no ", kComplete,
                                  " marker): it was interrupted while being written."));
  });
  const auto meta_file = dir / "metadata.json";
  const auto meta = read_json(meta_file);
  const int format = field<int>(meta, "format_version", meta_file, 0);
  ACCELERATE_CHECK(format == kFormatVersion, CheckpointError, "load_state: ", dir.string(), " has format version ",
                   format, "; this library reads ", kFormatVersion, ".");
  const int saved_world = field<int>(meta, "world_size", meta_file, 0);
  ACCELERATE_CHECK(saved_world >= 1, CheckpointError, "load_state: ", (dir / "metadata.json").string(),
                   " has no valid world_size.");
  const bool resized = saved_world != num_processes();
  if (resized) {
    print("accelerate: resuming with", num_processes(), "process(es) from a checkpoint of", saved_world,
          "processes: model, optimizer and scheduler state are replicated and load as they are; ranks without a"
          " random-state file of their own take rank 0's; data positions are mapped by global sample index.");
  }
  auto expect_count = [&](const char* what, size_t have, const char* how) {
    const auto saved = field<size_t>(meta, what, meta_file, size_t{0});
    ACCELERATE_CHECK(saved == have, CheckpointError, "load_state: ", dir.string(), " holds ", saved, " ", what, " but ",
                     have, " are ", how, "; ", how == std::string("prepared") ? "prepare" : "register",
                     " the same objects in the same order.");
  };
  expect_count("models", prepared_models_.size(), "prepared");
  expect_count("optimizers", optimizers_.size(), "prepared");
  expect_count("schedulers", schedulers_.size(), "prepared");
  expect_count("data_loaders", loaders_.size(), "prepared");
  expect_count("custom_objects", custom_objects_.size(), "registered (register_for_checkpointing)");
  run_agreed(*state_, [&] {
    for (size_t i = 0; i < prepared_models_.size(); ++i) {
      load_checkpoint_in_model(*prepared_models_[i], (dir / indexed("model", i, ".safetensors")).string());
    }
    for (size_t i = 0; i < optimizers_.size(); ++i)
      load_optimizer(optimizers_[i].optimizer(), dir, indexed("optimizer", i, ""));
    for (size_t i = 0; i < schedulers_.size(); ++i) {
      const auto file = dir / indexed("scheduler", i, ".json");
      schedulers_[i].scheduler().set_last_epoch(field<int64_t>(read_json(file), "last_epoch", file));
    }
    if (scaler_ && fs::exists(dir / "scaler.json")) {
      const auto file = dir / "scaler.json";
      const auto s = read_json(file);
      scaler_->load_state(field<double>(s, "scale", file), field<int64_t>(s, "growth_tracker", file));
    }
    for (size_t i = 0; i < loaders_.size(); ++i) {
      const auto file = dir / indexed("sampler", i, ".safetensors");
      safetensors::File f(file.string());
      const auto mapped = detail::map_loader_position(f.metadata(), *loaders_[i], file.string());
      if (!mapped.report.empty()) print(concat("accelerate: data loader ", i, ": ", mapped.report));
      from_file(file, [&] { loaders_[i]->restore({mapped.epoch, mapped.batches, f.get("generator").clone()}); });
    }
    for (size_t i = 0; i < custom_objects_.size(); ++i) {
      safetensors::File f((dir / concat("custom_checkpoint_", i, ".safetensors")).string());
      std::map<std::string, at::Tensor> tensors;
      for (const auto& name : f.keys()) tensors[name] = f.get(name).clone();
      custom_objects_[i]->load_state(tensors, f.metadata().count("json") ? f.metadata().at("json") : "{}");
    }
    // This rank's random states, else rank 0's (another world size, or a machine that has only machine 0's files),
    // else none: the run goes on, not bitwise, as HF's "Could not load random states".
    int rng_rank = process_index() < saved_world ? process_index() : 0;
    if (!fs::exists(dir / concat("random_states_", rng_rank, ".safetensors"))) {
      std::cerr << "accelerate: warning: rank " << process_index() << ": " << dir.string() << " has no random_states_"
                << rng_rank << ".safetensors; "
                << (rng_rank != 0 ? "taking rank 0's" : "the generators are not restored")
                << " (the run continues, but not bitwise like an uninterrupted one)." << std::endl;
      rng_rank = rng_rank != 0 && fs::exists(dir / "random_states_0.safetensors") ? 0 : -1;
    }
    if (rng_rank < 0) {
      step_ = field<int64_t>(meta, "step", meta_file, int64_t{0});
      return;
    }
    const auto rng_file = dir / concat("random_states_", rng_rank, ".safetensors");
    safetensors::File rng(rng_file.string());
    from_file(rng_file, [&] {
      at::Generator cpu = cpu_generator();
      std::lock_guard<std::mutex> lock(cpu.mutex());
      cpu.set_state(rng.get("cpu").clone());
    });
    if (device().is_cuda() && rng.contains("cuda")) {
      from_file(rng_file, [&] {
        at::Generator cuda = at::globalContext().defaultGenerator(device());
        std::lock_guard<std::mutex> lock(cuda.mutex());
        cuda.set_state(rng.get("cuda").clone());
      });
    }
    step_ = detail::metadata_int(rng.metadata(), "step", rng_file.string());
  });
  return dir.string();
}

}  // namespace accelerate
