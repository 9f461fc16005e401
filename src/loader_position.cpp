#include "detail/loader_position.hpp"

#include <accelerate/error.hpp>

#include <vector>

namespace accelerate::detail {
namespace {

std::optional<int64_t> integer(const std::map<std::string, std::string>& meta, const std::string& key,
                               const std::string& file) {
  if (!meta.count(key)) return std::nullopt;
  return metadata_int(meta, key, file);
}

}  // namespace

int64_t metadata_int(const std::map<std::string, std::string>& meta, const std::string& key, const std::string& file,
                     std::optional<int64_t> fallback) {
  auto it = meta.find(key);
  if (it == meta.end()) {
    ACCELERATE_CHECK(fallback.has_value(), CheckpointError, "checkpoint file ", file, " has no '", key,
                     "' in its metadata; it is damaged or was not written by accelerate-cpp.");
    return *fallback;
  }
  try {
    size_t used = 0;
    const int64_t v = std::stoll(it->second, &used);
    if (used == it->second.size()) return v;
  } catch (const std::exception&) {
  }
  throw CheckpointError(concat("checkpoint file ", file, ": metadata '", key, "' is not an integer ('",
                               it->second.substr(0, 40), "'); the file is damaged."));
}

std::map<std::string, std::string> loader_metadata(const DataLoader& loader, const DataLoader::Position& position) {
  const auto& o = loader.options();
  const auto& s = loader.shard();
  std::map<std::string, std::string> out = {{"epoch", std::to_string(position.epoch)},
                                            {"batches", std::to_string(position.batches)},
                                            {"total_batch_size", std::to_string(loader.total_batch_size())},
                                            {"batch_size", std::to_string(o.batch_size)},
                                            {"num_processes", std::to_string(s.num_processes)},
                                            {"dataset_size", std::to_string(loader.dataset_size())},
                                            {"shuffle", o.shuffle ? "1" : "0"},
                                            {"drop_last", o.drop_last ? "1" : "0"},
                                            {"split_batches", s.split_batches ? "1" : "0"},
                                            {"even_batches", s.even_batches ? "1" : "0"}};
  if (loader.is_stream()) out.erase("dataset_size");  // unknown; a stream's position is counted in batches
  return out;
}

namespace {

/// The saved metadata is sane and the data it describes is the loader's data (size, shuffle).
void check_saved_position(const std::map<std::string, std::string>& saved, const DataLoader& loader,
                          const std::string& file) {
  for (const char* key : {"batch_size", "num_processes", "dataset_size"}) {
    const auto v = integer(saved, key, file);
    ACCELERATE_CHECK(!v || *v >= 1, CheckpointError, "checkpoint file ", file, ": metadata '", key, "' is ", *v,
                     ", not a positive count; the file is damaged.");
  }
  for (const char* key : {"shuffle", "drop_last", "split_batches", "even_batches"}) {
    const auto v = integer(saved, key, file);
    ACCELERATE_CHECK(!v || *v == 0 || *v == 1, CheckpointError, "checkpoint file ", file, ": metadata '", key, "' is ",
                     *v, ", not 0 or 1; the file is damaged.");
  }
  // Checkpoints of format 1 before this metadata existed hold only the position and the global batch.
  if (auto size = integer(saved, "dataset_size", file); size && *size != loader.dataset_size()) {
    throw CheckpointError(concat(
        "load_state: ", file, " was saved while iterating a dataset of ", *size, " samples; the data loader now has ",
        loader.dataset_size(),
        ". The position in the epoch cannot be mapped onto other data. Resume with the same "
        "dataset, or load the model and optimizer alone (load_checkpoint_in_model) and start the epoch afresh."));
  }
  if (auto shuffle = integer(saved, "shuffle", file); shuffle && (*shuffle != 0) != loader.options().shuffle) {
    throw CheckpointError(concat("load_state: ", file, " was saved with shuffle=", *shuffle ? "true" : "false",
                                 " and the data loader now has shuffle=", loader.options().shuffle ? "true" : "false",
                                 ": the epoch's sample order differs, so the position cannot be mapped. Use the "
                                 "same shuffle setting to resume."));
  }
}

/// What changed between the saved loader and this one ("batch_size 8 -> 4, ..."); empty when nothing did.
std::string loader_changes(const std::map<std::string, std::string>& saved, const DataLoader& loader,
                           int64_t saved_total, const std::string& file) {
  std::string list;
  auto add = [&](const std::string& change) { list += (list.empty() ? "" : ", ") + change; };
  auto compare = [&](const char* key, int64_t now, const char* label) {
    if (auto v = integer(saved, key, file); v && *v != now) add(concat(label, " ", *v, " -> ", now));
  };
  compare("batch_size", loader.options().batch_size, "batch_size");
  compare("num_processes", loader.shard().num_processes, "processes");
  compare("drop_last", loader.options().drop_last, "drop_last");
  compare("split_batches", loader.shard().split_batches, "split_batches");
  compare("even_batches", loader.shard().even_batches, "even_batches");
  if (saved_total != loader.total_batch_size()) {
    add(concat("global batch ", saved_total, " -> ", loader.total_batch_size()));
  }
  return list;
}

}  // namespace

MappedPosition map_loader_position(const std::map<std::string, std::string>& saved, const DataLoader& loader,
                                   const std::string& file) {
  MappedPosition out;
  out.epoch = metadata_int(saved, "epoch", file);
  const int64_t saved_batches = metadata_int(saved, "batches", file);
  const int64_t saved_total = metadata_int(saved, "total_batch_size", file);
  ACCELERATE_CHECK(out.epoch >= 0 && saved_batches >= 0 && saved_total >= 1, CheckpointError, "checkpoint file ", file,
                   " holds an impossible position (epoch ", out.epoch, ", batch ", saved_batches, ", global batch ",
                   saved_total, "); the file is damaged.");
  if (loader.is_stream()) {
    // A stream can only be read past what was handed out: the same global batch, the same position.
    ACCELERATE_CHECK(saved_total == loader.total_batch_size(), CheckpointError, "load_state: ", file,
                     " was saved with a global batch of ", saved_total, " samples and the stream's loader now has ",
                     loader.total_batch_size(),
                     "; a stream's position cannot be mapped. Resume with the same batch "
                     "size and number of processes.");
    out.batches = saved_batches;
    return out;
  }
  check_saved_position(saved, loader, file);
  // Past the end of an epoch by more than the last, completed round: no loader hands out that many samples.
  ACCELERATE_CHECK(saved_batches <= (loader.dataset_size() + saved_total - 1) / saved_total + 1, CheckpointError,
                   "checkpoint file ", file, " says ", saved_batches, " global batches of ", saved_total,
                   " were handed out, more than an epoch of ", loader.dataset_size(),
                   " samples holds; the file is damaged or belongs to other data.");
  const int64_t total = loader.total_batch_size();
  const int64_t samples = saved_batches * saved_total;
  out.batches = samples / total;
  const std::string changes = loader_changes(saved, loader, saved_total, file);
  if (changes.empty() || samples == 0) return out;  // nothing handed out yet: nothing to map
  out.report =
      concat("the data loader changed since the checkpoint (", changes,
             "): its position is mapped by global "
             "sample index. The checkpoint had handed out ",
             samples, " samples of epoch ", out.epoch, " (", saved_batches, " global batches of ", saved_total,
             "); it continues at sample ", out.batches * total, " (", out.batches, " global batches of ", total, ")");
  if (samples % total != 0) {
    out.report += concat("; samples ", out.batches * total, "..", samples - 1, " of the epoch's order (",
                         samples - out.batches * total, " samples) are seen a second time, because ", samples,
                         " is not a multiple of the new global batch");
  }
  out.report += ".";
  return out;
}

}  // namespace accelerate::detail
