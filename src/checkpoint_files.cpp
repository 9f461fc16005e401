// The files of one checkpoint folder around its parts: HF's save_accelerator_state / load_accelerator_state, with
// metadata.json (counts derived from the parts), one random-state file per rank, and checksums.json checked at load
// (layout in detail/checkpoint_layout.hpp; the parts in checkpoint_parts.cpp).
#include "detail/checkpoint_parts.hpp"

#include <accelerate/error.hpp>
#include <accelerate/safetensors.hpp>
#include <accelerate/version.hpp>

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <fstream>
#include <iostream>
#include <mutex>
#include <optional>
#include <torch/version.h>

#include "detail/checkpoint_json.hpp"
#include "detail/checkpoint_layout.hpp"
#include "detail/durable_file.hpp"
#include "detail/loader_position.hpp"

namespace accelerate::detail {
namespace fs = std::filesystem;
using nlohmann::json;
using namespace checkpoint;

namespace checkpoint {

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

void write_json(const fs::path& path, const json& j) { write_text_file(path, j.dump(2), Replace::InPlace); }

void save_tensors(const fs::path& path, const safetensors::TensorMap& tensors, const safetensors::Metadata& meta) {
  save_safetensors(tensors, path.string(), meta, Replace::InPlace);
}

void check_tensors_file(const fs::path& path) { safetensors::File f(path.string()); }

}  // namespace checkpoint

namespace {

at::Generator cpu_generator() { return at::detail::getDefaultCPUGenerator(); }

void write_metadata(const fs::path& dir, const CheckpointParts& parts, const CheckpointWriter& w) {
  json meta{{"format", "accelerate-cpp checkpoint"},
            {"format_version", kFormatVersion},
            {"library_version", kVersion},
            {"torch_version", TORCH_VERSION},
            {"world_size", w.num_processes},
            {"step", w.step},
            {"iteration", w.iteration},
            {"mixed_precision", to_string(w.precision)}};
  for (const auto& part : parts) {
    if (part.counted) meta[part.kind] = part.count;
  }
  write_json(dir / kMetadata, meta);
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

void save_checkpoint_files(const fs::path& dir, const CheckpointParts& parts, const CheckpointWriter& writer) {
  for (const auto& part : parts) {
    if (part.gather) part.gather();  // on every rank, before the main process writes
  }
  if (writer.process_index == 0) {
    for (const auto& part : parts) part.save(dir);
    write_metadata(dir, parts, writer);
  }
  for (const auto& part : parts) {
    if (part.save_own) part.save_own(dir, writer);
  }
  safetensors::TensorMap rng{{"cpu", cpu_generator().get_state()}};
  if (writer.device.is_cuda()) rng["cuda"] = at::globalContext().defaultGenerator(writer.device).get_state();
  save_tensors(dir / random_states_file(writer.process_index), rng, {{"step", std::to_string(writer.step)}});
}

SavedCheckpoint check_checkpoint_files(const fs::path& dir, const CheckpointParts& parts, int process_index) {
  const auto meta_file = dir / kMetadata;
  const auto meta = read_json(meta_file);
  SavedCheckpoint saved;
  saved.format_version = field<int>(meta, "format_version", meta_file, 0);
  ACCELERATE_CHECK(saved.format_version >= kOldestFormatVersion && saved.format_version <= kFormatVersion,
                   CheckpointError, "load_state: ", dir.string(), " has format version ", saved.format_version,
                   "; this library reads versions ", kOldestFormatVersion, " to ", kFormatVersion, ".");
  saved.world_size = field<int>(meta, "world_size", meta_file, 0);
  ACCELERATE_CHECK(saved.world_size >= 1, CheckpointError, "load_state: ", meta_file.string(),
                   " has no valid world_size.");
  saved.step = field<int64_t>(meta, "step", meta_file, int64_t{0});
  for (const auto& part : parts) {
    if (!part.counted) continue;
    const auto count = field<size_t>(meta, part.kind.c_str(), meta_file, size_t{0});
    saved.counts[part.kind] = count;
    ACCELERATE_CHECK(count == part.count || (part.on_more_saved && count > part.count), CheckpointError,
                     "load_state: ", dir.string(), " holds ", count, " ", part.kind, " but ", part.count, " are ",
                     part.added_by, "; the run must have the same objects, in the same order, as the saved one.");
  }
  for (const auto& part : parts) part.verify(dir);
  verify_checksums(dir, process_index, saved.format_version);
  return saved;
}

int64_t load_checkpoint_files(const fs::path& dir, const CheckpointParts& parts, const SavedCheckpoint& saved,
                              const LoadContext& context) {
  for (const auto& part : parts) {
    part.load(dir, context);
    const auto count = saved.counts.find(part.kind);
    if (part.on_more_saved && count != saved.counts.end() && count->second > part.count) {
      context.report(concat("accelerate: ", dir.string(), " ", part.on_more_saved(count->second)));
    }
  }
  if (auto step = load_random_states(dir, context.process_index, saved.world_size, context.device)) {
    return *step;
  }
  return saved.step;
}

}  // namespace accelerate::detail
