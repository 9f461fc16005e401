// Internal: a data loader's place in a checkpoint, and how it maps onto a loader configured differently on
// resume. Positions are kept as a global sample index (samples of the epoch's order already handed out): the
// epoch's order does not depend on the batch size or the number of processes (HF's BatchSamplerShard deals
// consecutive batches of one order to the ranks), so any such change maps exactly, up to a partial global batch.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>

#include <accelerate/data_loader.hpp>

namespace accelerate::detail {

/// An integer from a checkpoint file's string metadata; a missing key gives `fallback`, or a CheckpointError naming
/// `file` without one; a value that is not an integer is a CheckpointError naming the key.
int64_t metadata_int(const std::map<std::string, std::string>& meta, const std::string& key, const std::string& file,
                     std::optional<int64_t> fallback = std::nullopt);

/// The string metadata stored beside the shuffle generator in sampler_<i>.safetensors.
std::map<std::string, std::string> loader_metadata(const DataLoader& loader, const DataLoader::Position& position);

struct MappedPosition {
  int64_t epoch = 0;
  int64_t batches = 0;  ///< of this process, in this configuration
  std::string report;   ///< what changed and what it means (samples seen again); empty when nothing changed
};

/// Where `loader` continues, from the metadata a checkpoint saved (`file` names it in errors). Throws
/// CheckpointError when the position cannot be mapped: another dataset size, or shuffling turned on or off.
MappedPosition map_loader_position(const std::map<std::string, std::string>& saved, const DataLoader& loader,
                                   const std::string& file);

}  // namespace accelerate::detail
