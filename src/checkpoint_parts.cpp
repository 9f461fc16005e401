// The kinds of object a save_state checkpoint holds, one registry entry each (detail/checkpoint_parts.hpp), with
// HF's file names (detail/checkpoint_layout.hpp) and safetensors and JSON in place of pickles.
#include "detail/checkpoint_parts.hpp"

#include <accelerate/accelerator.hpp>
#include <accelerate/error.hpp>
#include <accelerate/model_io.hpp>
#include <accelerate/safetensors.hpp>

#include <ATen/ATen.h>
#include <memory>
#include <torch/optim/optimizer.h>

#include "detail/checkpoint_json.hpp"
#include "detail/checkpoint_layout.hpp"
#include "detail/loader_position.hpp"
#include "detail/model_state.hpp"
#include "detail/optimizer_state.hpp"
#include "detail/sharded_units.hpp"
#include "detail/tensor_pieces.hpp"
#include "detail/zero_optimizer.hpp"

namespace accelerate::detail {
namespace fs = std::filesystem;
using nlohmann::json;
using namespace checkpoint;

namespace {

/// The tensors of a safetensors file, copied out of its mapping.
std::map<std::string, at::Tensor> read_tensors(const fs::path& path) {
  safetensors::File f(path.string());
  std::map<std::string, at::Tensor> tensors;
  for (const auto& name : f.keys()) tensors[name] = f.get(name).clone();
  return tensors;
}

void load_optimizer(torch::optim::Optimizer& opt, ZeroOptimizer* sharded, const fs::path& dir,
                    const std::string& stem) {
  const auto json_path = dir / (stem + ".json");
  std::unique_ptr<TensorSource> tensors;
  std::string where;
  if (has_pieces(dir, stem)) {
    tensors = std::make_unique<PieceReader>(dir, stem);
    where = concat("checkpoint files ", (dir / stem).string(), ".{json,rank_*.safetensors}");
  } else {
    safetensors::File file((dir / (stem + ".safetensors")).string());
    safetensors::TensorMap whole;
    for (const auto& name : file.keys()) whole[name] = file.get(name);
    tensors = std::make_unique<WholeTensors>(std::move(whole));
    where = concat("checkpoint files ", (dir / stem).string(), ".{json,safetensors}");
  }
  if (sharded) {
    sharded->load_state(*tensors, read_json(json_path), where);
    return;
  }
  safetensors::TensorMap whole;  // an unsharded optimizer holds every tensor whole
  for (const auto& name : tensors->names()) whole[name] = tensors->read_whole(name);
  load_optimizer_state(opt, whole, read_json(json_path), where);
}

/// A scheduler file's last_epoch, checked (HF's LambdaLR starts at -1).
int64_t last_epoch_of(const fs::path& file) {
  const auto last_epoch = field<int64_t>(read_json(file), "last_epoch", file);
  ACCELERATE_CHECK(last_epoch >= -1, CheckpointError, "checkpoint file ", file.string(), ": 'last_epoch' is ",
                   last_epoch, ", below -1; the file is damaged or was edited. Resume from another checkpoint.");
  return last_epoch;
}

}  // namespace

namespace {

/// This rank's pieces of `model`: its slices of the ZeRO-3 units' parameters; the main process also the tensors
/// kept whole (parameters outside units, buffers). StateError naming a unit without weights.
std::vector<TensorPiece> model_pieces(torch::nn::Module& model, bool main_process) {
  const auto units = units_of(model);
  for (auto* unit : units) unit->check_materialised();
  std::vector<TensorPiece> pieces;
  for (const auto& [name, tensor] : model_state(model)) {
    std::optional<ShardedUnit::KeptSlice> kept;
    for (auto* unit : units) {
      if ((kept = unit->kept_slice(tensor))) break;
    }
    if (kept) {
      pieces.push_back({name, tensor.sizes().vec(), kept->begin, kept->values});
    } else if (main_process) {
      pieces.push_back({name, tensor.sizes().vec(), 0, tensor});
    }
  }
  return pieces;
}

PiecesWriter pieces_writer(const CheckpointWriter& w) { return {w.process_index, w.num_processes, w.save_id}; }

/// The tensors of a model or optimizer in `dir`: in pieces (a reader), or one file (checked; nullptr).
std::unique_ptr<TensorSource> saved_pieces(const fs::path& dir, const std::string& stem, const std::string& file) {
  if (has_pieces(dir, stem)) return std::make_unique<PieceReader>(dir, stem);
  ACCELERATE_CHECK(fs::exists(dir / file) || !fs::exists(dir / pieces_file(stem, 0)), CheckpointError, "checkpoint ",
                   dir.string(), " holds ", stem, ".rank_*.safetensors (ZeRO stage 3's shards) but not their index ",
                   pieces_index_file(stem), ": it was deleted. Resume from another checkpoint.");
  check_tensors_file(dir / file);
  return nullptr;
}

}  // namespace

CheckpointPart models_part(std::vector<torch::nn::Module*> models, std::vector<ShardedUnits*> units, bool main_process,
                           bool pieces) {
  units.resize(models.size(), nullptr);
  auto in_pieces = [units, pieces](size_t i) { return pieces && units[i]; };
  const bool any_in_pieces = pieces && std::any_of(units.begin(), units.end(), [](auto* u) { return u != nullptr; });
  // Stage 3 without pieces: the main process's copy of each sharded model, gathered one unit at a time on every
  // rank by `gather`.
  auto gathered = std::make_shared<std::vector<std::map<std::string, at::Tensor>>>();
  CheckpointPart part{.kind = "models",
                      .count = models.size(),
                      .gather =
                          [models, units, gathered, main_process, in_pieces] {
                            gathered->assign(models.size(), {});
                            for (size_t i = 0; i < models.size(); ++i) {
                              if (units[i] && !in_pieces(i))
                                (*gathered)[i] = gathered_model_state(*models[i], main_process);
                            }
                          },
                      .save =
                          [models, units, gathered, in_pieces](const fs::path& dir) {
                            for (size_t i = 0; i < models.size(); ++i) {
                              if (in_pieces(i)) continue;  // save_own
                              save_tensors(dir / model_file(i), units[i] ? (*gathered)[i] : model_state(*models[i]),
                                           {{"format", "pt"}});
                            }
                          },
                      .verify =
                          [n = models.size()](const fs::path& dir) {
                            for (size_t i = 0; i < n; ++i) saved_pieces(dir, model_stem(i), model_file(i));
                          },
                      .load =
                          [models](const fs::path& dir, const LoadContext&) {
                            // At stage 3 every rank copies only its shard of each unit from the mapped files.
                            for (size_t i = 0; i < models.size(); ++i) {
                              if (auto source = saved_pieces(dir, model_stem(i), model_file(i))) {
                                load_model_state(
                                    *models[i], *source,
                                    concat("load_state: ", (dir / model_stem(i)).string(), ".rank_*.safetensors"));
                              } else {
                                load_checkpoint_in_model(*models[i], (dir / model_file(i)).string());
                              }
                            }
                          }};
  // ZeRO stage 3's shards: every rank writes its own file (only then does save_state need a shared folder).
  if (any_in_pieces) {
    part.save_own = [models, main_process, in_pieces](const fs::path& dir, const CheckpointWriter& w) {
      const auto writer = pieces_writer(w);
      for (size_t i = 0; i < models.size(); ++i) {
        if (!in_pieces(i)) continue;
        write_pieces(dir, model_stem(i), writer, model_pieces(*models[i], main_process));
        if (main_process) write_pieces_index(dir, model_stem(i), writer);
      }
    };
  }
  return part;
}

CheckpointPart optimizers_part(std::vector<torch::optim::Optimizer*> optimizers, std::vector<ZeroOptimizer*> sharded,
                               bool pieces) {
  sharded.resize(optimizers.size(), nullptr);
  auto in_pieces = [sharded, pieces](size_t i) { return pieces && sharded[i]; };
  const bool any_in_pieces =
      pieces && std::any_of(sharded.begin(), sharded.end(), [](auto* z) { return z != nullptr; });
  // Filled by `gather` on every rank, written by `save` on the main process (only the JSON when in pieces).
  auto consolidated = std::make_shared<std::vector<OptimizerState>>();
  CheckpointPart part{
      .kind = "optimizers",
      .count = optimizers.size(),
      .gather =
          [sharded, consolidated, in_pieces] {
            consolidated->assign(sharded.size(), {});
            for (size_t i = 0; i < sharded.size(); ++i) {
              if (in_pieces(i)) {
                (*consolidated)[i].meta = sharded[i]->state_meta();
              } else if (sharded[i]) {
                (*consolidated)[i] = sharded[i]->consolidated_state();
              }
            }
          },
      .save =
          [optimizers, sharded, consolidated, in_pieces](const fs::path& dir) {
            for (size_t i = 0; i < optimizers.size(); ++i) {
              const auto state = sharded[i] ? (*consolidated)[i] : optimizer_state(*optimizers[i]);
              if (!in_pieces(i)) {
                save_tensors(dir / (optimizer_stem(i) + ".safetensors"), state.tensors, {{"format", "pt"}});
              }
              write_json(dir / (optimizer_stem(i) + ".json"), state.meta);
            }
          },
      .verify =
          [n = optimizers.size()](const fs::path& dir) {
            for (size_t i = 0; i < n; ++i) {
              saved_pieces(dir, optimizer_stem(i), optimizer_stem(i) + ".safetensors");
              read_json(dir / (optimizer_stem(i) + ".json"));
            }
          },
      .load =
          [optimizers, sharded](const fs::path& dir, const LoadContext&) {
            for (size_t i = 0; i < optimizers.size(); ++i) {
              load_optimizer(*optimizers[i], sharded[i], dir, optimizer_stem(i));
            }
          }};
  if (any_in_pieces) {
    part.save_own = [sharded, in_pieces](const fs::path& dir, const CheckpointWriter& w) {
      const auto writer = pieces_writer(w);
      for (size_t i = 0; i < sharded.size(); ++i) {
        if (!in_pieces(i)) continue;
        write_pieces(dir, optimizer_stem(i), writer, sharded[i]->state_pieces());
        if (w.process_index == 0) write_pieces_index(dir, optimizer_stem(i), writer);
      }
    };
  }
  return part;
}

CheckpointPart schedulers_part(std::vector<LRScheduler*> schedulers) {
  return {.kind = "schedulers",
          .count = schedulers.size(),
          .save =
              [schedulers](const fs::path& dir) {
                for (size_t i = 0; i < schedulers.size(); ++i) {
                  write_json(dir / scheduler_file(i), json{{"last_epoch", schedulers[i]->last_epoch()}});
                }
              },
          .verify =
              [n = schedulers.size()](const fs::path& dir) {
                for (size_t i = 0; i < n; ++i) last_epoch_of(dir / scheduler_file(i));
              },
          .load =
              [schedulers](const fs::path& dir, const LoadContext&) {
                for (size_t i = 0; i < schedulers.size(); ++i) {
                  schedulers[i]->set_last_epoch(last_epoch_of(dir / scheduler_file(i)));
                }
              }};
}

CheckpointPart scaler_part(GradScaler* scaler) {
  // A checkpoint saved without fp16 has no scaler.json: the scaler keeps its initial state (as HF).
  return {.kind = "scaler",
          .count = scaler ? size_t{1} : size_t{0},
          .counted = false,
          .save =
              [scaler](const fs::path& dir) {
                if (!scaler) return;
                write_json(dir / kScaler,
                           json{{"scale", scaler->get_scale()}, {"growth_tracker", scaler->growth_tracker()}});
              },
          .verify =
              [scaler](const fs::path& dir) {
                if (scaler && fs::exists(dir / kScaler)) read_json(dir / kScaler);
              },
          .load =
              [scaler](const fs::path& dir, const LoadContext&) {
                const auto file = dir / kScaler;
                if (!scaler || !fs::exists(file)) return;
                const auto s = read_json(file);
                scaler->load_state(field<double>(s, "scale", file), field<int64_t>(s, "growth_tracker", file));
              }};
}

CheckpointPart loaders_part(std::vector<DataLoader*> loaders) {
  const size_t n = loaders.size();
  return {
      .kind = "data_loaders",
      .count = n,
      .on_more_saved =
          [n](size_t saved) {
            return concat("holds ", saved, " data loader positions and ", n, " loader(s) are prepared: the first ", n,
                          " are restored, in prepare() order; the others (loaders prepared later in the saved "
                          "run, such as an evaluation loader) are not used.");
          },
      .save =
          [loaders](const fs::path& dir) {
            for (size_t i = 0; i < loaders.size(); ++i) {
              const auto p = loaders[i]->position();
              save_tensors(dir / sampler_file(i), {{"generator", p.generator_state}}, loader_metadata(*loaders[i], p));
            }
          },
      .verify =
          [n](const fs::path& dir) {
            for (size_t i = 0; i < n; ++i) check_tensors_file(dir / sampler_file(i));
          },
      .load =
          [loaders](const fs::path& dir, const LoadContext& context) {
            for (size_t i = 0; i < loaders.size(); ++i) {
              const auto file = dir / sampler_file(i);
              safetensors::File f(file.string());
              const auto mapped = map_loader_position(f.metadata(), *loaders[i], file.string());
              if (!mapped.report.empty()) context.report(concat("accelerate: data loader ", i, ": ", mapped.report));
              from_file(file, [&] { loaders[i]->restore({mapped.epoch, mapped.batches, f.get("generator").clone()}); });
            }
          }};
}

CheckpointPart custom_objects_part(std::vector<Checkpointable*> objects) {
  return {.kind = "custom_objects",
          .count = objects.size(),
          .added_by = "registered (register_for_checkpointing)",
          .save =
              [objects](const fs::path& dir) {
                for (size_t i = 0; i < objects.size(); ++i) {
                  save_tensors(dir / custom_file(i), objects[i]->state_tensors(), {{"json", objects[i]->state_json()}});
                }
              },
          .verify =
              [n = objects.size()](const fs::path& dir) {
                for (size_t i = 0; i < n; ++i) check_tensors_file(dir / custom_file(i));
              },
          .load =
              [objects](const fs::path& dir, const LoadContext&) {
                for (size_t i = 0; i < objects.size(); ++i) {
                  const auto file = dir / custom_file(i);
                  const auto json_state = safetensors::File(file.string()).metadata();
                  objects[i]->load_state(read_tensors(file),
                                         json_state.count("json") ? json_state.at("json") : std::string("{}"));
                }
              }};
}

}  // namespace accelerate::detail
