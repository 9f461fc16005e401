// The Accelerator's checkpoints: what it has prepared becomes the registry of parts (detail/checkpoint_parts.hpp);
// the folders and their protocol are the Checkpointer's (detail/checkpointer.hpp).
#include <accelerate/accelerator.hpp>

#include <accelerate/error.hpp>
#include <accelerate/model_io.hpp>

#include "detail/accelerator_parallel.hpp"
#include "detail/checkpoint_parts.hpp"
#include "detail/checkpointer.hpp"
#include "detail/communicator.hpp"
#include "detail/durable_file.hpp"
#include "detail/model_state.hpp"
#include "detail/sharded_units.hpp"

namespace accelerate {

detail::CheckpointParts Accelerator::checkpoint_parts() {
  std::vector<torch::nn::Module*> models;
  std::vector<detail::ShardedUnits*> units;
  for (const auto& model : prepared_models_) {
    models.push_back(model.get());
    units.push_back(parallel_->units_of(model.get()));
  }
  std::vector<torch::optim::Optimizer*> optimizers;
  std::vector<detail::ZeroOptimizer*> sharded;
  for (auto& optimizer : optimizers_) {
    sharded.push_back(parallel_->sharding_of(optimizers.size()));
    optimizers.push_back(&optimizer.optimizer());
  }
  // Only what still exists: a loader or object the user destroyed is never read, and the counts in metadata.json
  // say what was saved.
  std::vector<LRScheduler*> schedulers;
  for (auto& scheduler : schedulers_) {
    if (scheduler.alive()) schedulers.push_back(&scheduler.scheduler());
  }
  std::erase_if(loaders_, [](const auto& l) { return !l.alive(); });
  std::vector<DataLoader*> loaders;
  for (const auto& loader : loaders_) loaders.push_back(&loader.get());
  std::erase_if(custom_objects_, [](const auto& o) { return !o.alive(); });
  std::vector<Checkpointable*> objects;
  for (const auto& object : custom_objects_) objects.push_back(&object.get());
  // ZeRO stage 3 saves each rank's shards in parallel (HF's SHARDED_STATE_DICT) unless asked for whole files.
  const bool pieces =
      options_.fsdp.sharded_state_dict && std::any_of(units.begin(), units.end(), [](auto* u) { return u != nullptr; });
  return {detail::models_part(std::move(models), std::move(units), is_main_process(), pieces),
          detail::optimizers_part(std::move(optimizers), std::move(sharded), pieces),
          detail::schedulers_part(std::move(schedulers)),
          detail::scaler_part(scaler_.get()),
          detail::loaders_part(std::move(loaders)),
          detail::custom_objects_part(std::move(objects))};
}

detail::LoadContext Accelerator::load_context() const {
  return {.process_index = process_index(), .device = device(), .report = [this](const std::string& message) {
            print(message);
          }};
}

void Accelerator::save_model(const std::shared_ptr<torch::nn::Module>& model, const std::string& dir,
                             int64_t max_shard_size, std::source_location where) {
  auto* units = parallel_->units_of(model.get());
  // HF's order, save_model after end_training, has no collectives left to agree with: the main process writes.
  if (state_->process_group_destroyed()) {
    ACCELERATE_CHECK(!units, StateError, "save_model at ZeRO stage 3 gathers the model's shards from every process, ",
                     "but end_training() already left the process group: call save_model before end_training.");
    if (is_main_process()) accelerate::save_model(*model, dir, max_shard_size);
    return;
  }
  detail::CallScope call(detail::communicator_of(*state_), "save_model", where);
  if (!units) {
    detail::run_agreed(*state_, [&] {
      if (is_main_process()) accelerate::save_model(*model, dir, max_shard_size);
    });
    return;
  }
  // Stage 3: streamed, one unit gathered at a time on every process while the main process writes it, so that no
  // process holds the whole model. The folder is checked writable first, agreed, so that no process is left in a
  // gather that the main process never reaches.
  detail::run_agreed(*state_, [&] {
    if (!is_main_process()) return;
    const auto probe = std::filesystem::path(dir) / ".accelerate-write-test";
    std::filesystem::create_directories(dir);
    detail::write_text_file(probe, "ok", detail::Replace::InPlace);
    std::filesystem::remove(probe);
  });
  detail::UnitStream stream(*model);
  detail::save_model_streamed(
      detail::model_state(*model), dir, max_shard_size, [&](const std::string& name) { return stream.fetch(name); },
      is_main_process());
}

std::string Accelerator::save_state(const std::string& output_dir, std::source_location where) {
  detail::CallScope call(detail::communicator_of(*state_), "save_state", where);
  const detail::CheckpointWriter writer{.process_index = process_index(),
                                        .num_processes = num_processes(),
                                        .device = device(),
                                        .step = step_,
                                        .precision = precision_};
  return checkpointer_->save(output_dir, checkpoint_parts(), writer).string();
}

std::string Accelerator::load_state(const std::string& input_dir, std::source_location where) {
  detail::CallScope call(detail::communicator_of(*state_), "load_state", where);
  const auto loaded = checkpointer_->load(input_dir, checkpoint_parts(), load_context());
  step_ = loaded.step;
  return loaded.folder.string();
}

std::optional<std::string> Accelerator::resume_from_checkpoint(std::source_location where) {
  const std::string& from = checkpointer_->project().resume_from_checkpoint;
  if (from.empty()) return std::nullopt;
  if (from != "latest") return load_state(from, where);
  detail::CallScope call(detail::communicator_of(*state_), "resume_from_checkpoint", where);
  const auto loaded = checkpointer_->load_latest(checkpoint_parts(), load_context());
  if (!loaded) return std::nullopt;
  step_ = loaded->step;
  return loaded->folder.string();
}

std::optional<std::string> Accelerator::latest_checkpoint(std::source_location where) const {
  detail::CallScope call(detail::communicator_of(*state_), "latest_checkpoint", where);
  const auto found = checkpointer_->latest();
  if (!found) return std::nullopt;
  return found->string();
}

ProjectConfiguration& Accelerator::project_configuration() { return checkpointer_->project(); }

}  // namespace accelerate
