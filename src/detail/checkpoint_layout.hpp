// The layout of a save_state folder: its file names (HF Accelerate's, with safetensors and JSON in place of
// pickles) and the format version, in one place for the writer and the reader.
//
//   checkpoint_<n>/
//     metadata.json                      format_version, world size, step, counts of each kind of object
//     model.safetensors, model_<i>...    prepared models, in prepare() order
//     optimizer.{safetensors,json}, optimizer_<i>.{...}
//     model.pieces.json, model.rank_<r>.safetensors, optimizer.rank_<r>...  instead at ZeRO stage 3: each
//                                        rank's shards, written in parallel (detail/tensor_pieces.hpp)
//     scheduler.json, scheduler_<i>.json
//     sampler.safetensors, sampler_<i>...  data-loader positions (generator state + metadata)
//     custom_checkpoint_<i>.safetensors  register_for_checkpointing objects
//     scaler.json                        the fp16 GradScaler
//     random_states_<rank>.safetensors   one per rank
//     checksums.json                     CRC-32 of every file above, checked at load (safetensors has none)
//     COMPLETE                           written last; a folder without it is never loaded
//     NODE_LOCAL                         instead of COMPLETE on a machine holding only its own ranks' files
#pragma once

#include <cstdint>
#include <optional>
#include <string>

namespace accelerate::detail::checkpoint {

/// 3: ZeRO stage 3 writes models and optimizer state in per-rank pieces. 2: checksums.json is part of the format (a
/// current checkpoint without it lost it, and is refused); 1: written before it existed (it may have one, checked when
/// present).
inline constexpr int kFormatVersion = 3;
inline constexpr int kOldestFormatVersion = 1;
inline constexpr const char* kComplete = "COMPLETE";
inline constexpr const char* kNodeLocal = "NODE_LOCAL";
inline constexpr const char* kMetadata = "metadata.json";
inline constexpr const char* kScaler = "scaler.json";
inline constexpr const char* kChecksums = "checksums.json";
/// Rank 0's token in the folder being written: a rank that reads it back shares rank 0's filesystem.
inline constexpr const char* kOwner = ".owner";
/// The folder being written; renamed to its name once every rank has written its files.
inline constexpr const char* kPartialSuffix = ".tmp";
/// A folder being deleted by rotation: renamed first, so it no longer has a checkpoint's name.
inline constexpr const char* kDeletingSuffix = ".deleting";

/// HF's numbering of several objects of one kind: "model", "model_1", "model_2", ...
inline std::string indexed(const std::string& stem, size_t i, const std::string& extension) {
  return (i == 0 ? stem : stem + "_" + std::to_string(i)) + extension;
}
inline std::string model_file(size_t i) { return indexed("model", i, ".safetensors"); }
/// ZeRO stage 3's shards of a model or optimizer: <stem>.pieces.json and <stem>.rank_<r>.safetensors.
inline std::string model_stem(size_t i) { return indexed("model", i, ""); }
/// The optimizer's two files share this stem: <stem>.safetensors (tensors) and <stem>.json (the rest).
inline std::string optimizer_stem(size_t i) { return indexed("optimizer", i, ""); }
inline std::string scheduler_file(size_t i) { return indexed("scheduler", i, ".json"); }
inline std::string sampler_file(size_t i) { return indexed("sampler", i, ".safetensors"); }
inline std::string custom_file(size_t i) { return "custom_checkpoint_" + std::to_string(i) + ".safetensors"; }
inline std::string random_states_file(int rank) { return "random_states_" + std::to_string(rank) + ".safetensors"; }

/// Automatic checkpoint folders under <project_dir>/checkpoints: checkpoint_<n>.
inline std::string folder_name(int64_t n) { return "checkpoint_" + std::to_string(n); }

/// n for a folder named exactly checkpoint_<digits>; anything else (checkpoint_3.tmp, checkpoint_3.deleting, ...)
/// is not a checkpoint.
inline std::optional<int64_t> folder_index(const std::string& name) {
  const std::string prefix = "checkpoint_";
  if (name.size() <= prefix.size() || name.compare(0, prefix.size(), prefix) != 0) return std::nullopt;
  const auto digits = name.substr(prefix.size());
  if (digits.size() > 18) return std::nullopt;
  for (char c : digits) {
    if (c < '0' || c > '9') return std::nullopt;
  }
  return std::stoll(digits);
}

}  // namespace accelerate::detail::checkpoint
