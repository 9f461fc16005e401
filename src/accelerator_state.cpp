// The files of one checkpoint folder: HF's save_accelerator_state / load_accelerator_state, with safetensors and
// JSON in place of pickles (layout in detail/checkpoint_layout.hpp).
#include "detail/accelerator_state.hpp"

#include <accelerate/accelerator.hpp>
#include <accelerate/error.hpp>
#include <accelerate/model_io.hpp>
#include <accelerate/safetensors.hpp>
#include <accelerate/version.hpp>

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <fstream>
#include <iostream>
#include <limits>
#include <optional>
#include <torch/optim/optimizer.h>
#include <torch/version.h>
#include <type_traits>

#include <nlohmann/json.hpp>

#include "detail/checkpoint_layout.hpp"
#include "detail/communicator.hpp"  // message_of
#include "detail/durable_file.hpp"
#include "detail/loader_position.hpp"
#include "detail/model_state.hpp"
#include "detail/optimizer_state.hpp"
#include "detail/zero_optimizer.hpp"

namespace accelerate::detail {
namespace fs = std::filesystem;
using nlohmann::json;
using namespace checkpoint;

namespace {

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

void write_json(const fs::path& path, const json& j) { write_text_file(path, j.dump(2), Replace::InPlace); }

void save_tensors(const fs::path& path, const safetensors::TensorMap& tensors, const safetensors::Metadata& meta) {
  save_safetensors(tensors, path.string(), meta, Replace::InPlace);
}

void save_optimizer(const OptimizerState& state, const fs::path& dir, const std::string& stem) {
  save_tensors(dir / (stem + ".safetensors"), state.tensors, {{"format", "pt"}});
  write_json(dir / (stem + ".json"), state.meta);
}

void load_optimizer(torch::optim::Optimizer& opt, ZeroOptimizer* sharded, const fs::path& dir,
                    const std::string& stem) {
  const auto json_path = dir / (stem + ".json");
  safetensors::File file((dir / (stem + ".safetensors")).string());
  safetensors::TensorMap tensors;
  for (const auto& name : file.keys()) tensors[name] = file.get(name);
  const auto where = concat("checkpoint files ", (dir / stem).string(), ".{json,safetensors}");
  if (sharded) {
    sharded->load_state(tensors, read_json(json_path), where);
  } else {
    load_optimizer_state(opt, tensors, read_json(json_path), where);
  }
}

ZeroOptimizer* sharded_of(const CheckpointContents& c, size_t i) {
  return i < c.sharded.size() ? c.sharded[i] : nullptr;
}

at::Generator cpu_generator() { return at::detail::getDefaultCPUGenerator(); }

void save_main_process_files(const fs::path& dir, const CheckpointContents& c, const CheckpointWriter& w,
                             std::vector<OptimizerState>& consolidated) {
  for (size_t i = 0; i < c.models.size(); ++i) {
    save_tensors(dir / model_file(i), model_state(*c.models[i]), {{"format", "pt"}});
  }
  for (size_t i = 0; i < c.optimizers.size(); ++i) {
    save_optimizer(sharded_of(c, i) ? consolidated[i] : optimizer_state(*c.optimizers[i]), dir, optimizer_stem(i));
  }
  for (size_t i = 0; i < c.schedulers.size(); ++i) {
    write_json(dir / scheduler_file(i), json{{"last_epoch", c.schedulers[i]->last_epoch()}});
  }
  if (c.scaler) {
    write_json(dir / kScaler, json{{"scale", c.scaler->get_scale()}, {"growth_tracker", c.scaler->growth_tracker()}});
  }
  for (size_t i = 0; i < c.loaders.size(); ++i) {
    const auto p = c.loaders[i]->position();
    save_tensors(dir / sampler_file(i), {{"generator", p.generator_state}}, loader_metadata(*c.loaders[i], p));
  }
  for (size_t i = 0; i < c.custom_objects.size(); ++i) {
    save_tensors(dir / custom_file(i), c.custom_objects[i]->state_tensors(),
                 {{"json", c.custom_objects[i]->state_json()}});
  }
  write_json(dir / kMetadata, json{{"format", "accelerate-cpp checkpoint"},
                                   {"format_version", kFormatVersion},
                                   {"library_version", kVersion},
                                   {"torch_version", TORCH_VERSION},
                                   {"world_size", w.num_processes},
                                   {"step", w.step},
                                   {"iteration", w.iteration},
                                   {"models", c.models.size()},
                                   {"optimizers", c.optimizers.size()},
                                   {"schedulers", c.schedulers.size()},
                                   {"data_loaders", c.loaders.size()},
                                   {"custom_objects", c.custom_objects.size()},
                                   {"mixed_precision", to_string(w.precision)}});
}

void load_loaders(const fs::path& dir, const CheckpointContents& c,
                  const std::function<void(const std::string&)>& report) {
  for (size_t i = 0; i < c.loaders.size(); ++i) {
    const auto file = dir / sampler_file(i);
    safetensors::File f(file.string());
    const auto mapped = map_loader_position(f.metadata(), *c.loaders[i], file.string());
    if (!mapped.report.empty()) report(concat("accelerate: data loader ", i, ": ", mapped.report));
    from_file(file, [&] { c.loaders[i]->restore({mapped.epoch, mapped.batches, f.get("generator").clone()}); });
  }
}

/// This rank's random states, else rank 0's (another world size, or a machine that has only machine 0's files),
/// else none: the run goes on, not bitwise, as HF's "Could not load random states". Returns the saved step, or
/// nullopt when no file was there.
std::optional<int64_t> load_random_states(const fs::path& dir, int process_index, int saved_world, c10::Device device) {
  int rng_rank = process_index < saved_world ? process_index : 0;
  if (!fs::exists(dir / random_states_file(rng_rank))) {
    std::cerr << "accelerate: warning: rank " << process_index << ": " << dir.string() << " has no "
              << random_states_file(rng_rank) << "; "
              << (rng_rank != 0 ? "taking rank 0's" : "the generators are not restored")
              << " (the run continues, but not bitwise like an uninterrupted one)." << std::endl;
    rng_rank = rng_rank != 0 && fs::exists(dir / random_states_file(0)) ? 0 : -1;
  }
  if (rng_rank < 0) return std::nullopt;
  const auto rng_file = dir / random_states_file(rng_rank);
  safetensors::File rng(rng_file.string());
  auto restore = [&](at::Generator generator, const char* name) {
    from_file(rng_file, [&] {
      std::lock_guard<std::mutex> lock(generator.mutex());
      generator.set_state(rng.get(name).clone());
    });
  };
  restore(cpu_generator(), "cpu");
  if (device.is_cuda() && rng.contains("cuda")) restore(at::globalContext().defaultGenerator(device), "cuda");
  return metadata_int(rng.metadata(), "step", rng_file.string());
}

}  // namespace

void save_accelerator_state(const fs::path& dir, const CheckpointContents& contents, const CheckpointWriter& writer) {
  // Sharded optimizer state is consolidated first, on every rank (all-gathers), into the unsharded format.
  std::vector<OptimizerState> consolidated(contents.optimizers.size());
  for (size_t i = 0; i < contents.optimizers.size(); ++i) {
    if (auto* sharded = sharded_of(contents, i)) consolidated[i] = sharded->consolidated_state();
  }
  if (writer.process_index == 0) save_main_process_files(dir, contents, writer, consolidated);
  safetensors::TensorMap rng{{"cpu", cpu_generator().get_state()}};
  if (writer.device.is_cuda()) rng["cuda"] = at::globalContext().defaultGenerator(writer.device).get_state();
  save_tensors(dir / random_states_file(writer.process_index), rng, {{"step", std::to_string(writer.step)}});
}

namespace {

/// Every file load_accelerator_state will read is there and well-formed (safetensors headers and sizes, JSON,
/// the scheduler's step), so that a damaged checkpoint is refused before anything is overwritten.
void verify_files(const fs::path& dir, const CheckpointContents& c) {
  auto tensors = [&](const std::string& name) { safetensors::File f((dir / name).string()); };
  for (size_t i = 0; i < c.models.size(); ++i) tensors(model_file(i));
  for (size_t i = 0; i < c.optimizers.size(); ++i) {
    tensors(optimizer_stem(i) + ".safetensors");
    read_json(dir / (optimizer_stem(i) + ".json"));
  }
  for (size_t i = 0; i < c.schedulers.size(); ++i) {
    const auto file = dir / scheduler_file(i);
    const auto last_epoch = field<int64_t>(read_json(file), "last_epoch", file);
    ACCELERATE_CHECK(last_epoch >= -1, CheckpointError, "checkpoint file ", file.string(), ": 'last_epoch' is ",
                     last_epoch, ", below -1; the file is damaged or was edited. Resume from another checkpoint.");
  }
  if (c.scaler && fs::exists(dir / kScaler)) read_json(dir / kScaler);
  for (size_t i = 0; i < c.loaders.size(); ++i) tensors(sampler_file(i));
  for (size_t i = 0; i < c.custom_objects.size(); ++i) tensors(custom_file(i));
}

/// The CRC-32 of each file in checksums.json: the main process checks every file, the others their own random
/// states. From format version 2 the manifest is part of the checkpoint, so a missing or empty one, or a file it
/// does not list, is refused (format 1 was written before it existed: checked when present). CheckpointError naming
/// the first file that differs or is not covered.
void verify_checksums(const fs::path& dir, int process_index, int format) {
  const auto file = dir / kChecksums;
  const char* fix = " Resume from another checkpoint.";
  if (!fs::exists(file)) {
    ACCELERATE_CHECK(format < 2, CheckpointError, "checkpoint file ", file.string(),
                     " is missing: this checkpoint (format version ", format,
                     ") was written with one, so it was deleted or lost, and its files cannot be verified.", fix);
    return;
  }
  const auto files = read_json(file).value("files", json::object());
  ACCELERATE_CHECK(files.is_object() && (format < 2 || !files.empty()), CheckpointError, "checkpoint file ",
                   file.string(), files.is_object() ? " lists no files" : " has no 'files' object", "; it is damaged.",
                   fix);
  for (const auto& entry : fs::directory_iterator(dir)) {
    const auto name = entry.path().filename().string();
    const bool mine = process_index == 0 ? name != kChecksums && name != kComplete && name != kNodeLocal
                                         : name == random_states_file(process_index);
    if (!mine || !entry.is_regular_file()) continue;
    const auto recorded = files.find(name);
    if (recorded == files.end()) {
      // A file the load reads (tensors, JSON) must be covered; a note someone left in the folder is not read.
      const bool read = name.ends_with(".safetensors") || name.ends_with(".json");
      ACCELERATE_CHECK(format < 2 || !read, CheckpointError, "checkpoint file ", entry.path().string(),
                       " is not listed in ", kChecksums,
                       ", so it cannot be verified (added or renamed after the save).", fix);
      continue;
    }
    const auto actual = file_crc32(entry.path());
    ACCELERATE_CHECK(recorded->is_number_unsigned() && recorded->get<uint32_t>() == actual, CheckpointError,
                     "checkpoint file ", entry.path().string(), " fails its checksum (CRC-32 ", actual, ", recorded ",
                     recorded->dump(), "): its bytes changed after it was written (a disk or copy error).", fix);
  }
}

}  // namespace

int check_checkpoint_metadata(const fs::path& dir, const CheckpointContents& contents, int process_index) {
  const auto meta_file = dir / kMetadata;
  const auto meta = read_json(meta_file);
  const int format = field<int>(meta, "format_version", meta_file, 0);
  ACCELERATE_CHECK(format >= kOldestFormatVersion && format <= kFormatVersion, CheckpointError,
                   "load_state: ", dir.string(), " has format version ", format, "; this library reads versions ",
                   kOldestFormatVersion, " to ", kFormatVersion, ".");
  const int saved_world = field<int>(meta, "world_size", meta_file, 0);
  ACCELERATE_CHECK(saved_world >= 1, CheckpointError, "load_state: ", meta_file.string(), " has no valid world_size.");
  // `more_saved`: HF keeps every loader ever prepared and restores the first ones, so a checkpoint that also holds
  // a loader not prepared now (an evaluation loader prepared per epoch) loads, its extra positions unused.
  auto expect_count = [&](const char* what, size_t have, const char* how, bool more_saved = false) {
    const auto saved = field<size_t>(meta, what, meta_file, size_t{0});
    ACCELERATE_CHECK(saved == have || (more_saved && saved > have), CheckpointError, "load_state: ", dir.string(),
                     " holds ", saved, " ", what, " but ", have, " are ", how, "; ",
                     how == std::string("prepared") ? "prepare" : "register", " the same objects in the same order.");
  };
  expect_count("models", contents.models.size(), "prepared");
  expect_count("optimizers", contents.optimizers.size(), "prepared");
  expect_count("schedulers", contents.schedulers.size(), "prepared");
  expect_count("data_loaders", contents.loaders.size(), "prepared", /*more_saved=*/true);
  expect_count("custom_objects", contents.custom_objects.size(), "registered (register_for_checkpointing)");
  verify_files(dir, contents);
  verify_checksums(dir, process_index, format);
  return saved_world;
}

int64_t load_accelerator_state(const fs::path& dir, const CheckpointContents& c, int process_index, c10::Device device,
                               int saved_world_size, const std::function<void(const std::string&)>& report) {
  for (size_t i = 0; i < c.models.size(); ++i) load_checkpoint_in_model(*c.models[i], (dir / model_file(i)).string());
  for (size_t i = 0; i < c.optimizers.size(); ++i)
    load_optimizer(*c.optimizers[i], sharded_of(c, i), dir, optimizer_stem(i));
  for (size_t i = 0; i < c.schedulers.size(); ++i) {
    const auto file = dir / scheduler_file(i);
    c.schedulers[i]->set_last_epoch(field<int64_t>(read_json(file), "last_epoch", file));
  }
  if (c.scaler && fs::exists(dir / kScaler)) {
    const auto file = dir / kScaler;
    const auto s = read_json(file);
    c.scaler->load_state(field<double>(s, "scale", file), field<int64_t>(s, "growth_tracker", file));
  }
  load_loaders(dir, c, report);
  const auto meta_file = dir / kMetadata;
  const auto meta = read_json(meta_file);
  if (const auto saved = field<size_t>(meta, "data_loaders", meta_file, size_t{0}); saved > c.loaders.size()) {
    report(concat("accelerate: ", dir.string(), " holds ", saved, " data loader positions and ", c.loaders.size(),
                  " loader(s) are prepared: the first ", c.loaders.size(),
                  " are restored, in prepare() order; the others (loaders prepared later in the saved run, such as "
                  "an evaluation loader) are not used."));
  }
  for (size_t i = 0; i < c.custom_objects.size(); ++i) {
    safetensors::File f((dir / custom_file(i)).string());
    std::map<std::string, at::Tensor> tensors;
    for (const auto& name : f.keys()) tensors[name] = f.get(name).clone();
    c.custom_objects[i]->load_state(tensors, f.metadata().count("json") ? f.metadata().at("json") : "{}");
  }
  if (auto step = load_random_states(dir, process_index, saved_world_size, device)) return *step;
  return field<int64_t>(meta, "step", meta_file, int64_t{0});
}

}  // namespace accelerate::detail
