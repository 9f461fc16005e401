// base.cpp plus checkpoints: save_state every --checkpointing_steps optimizer steps and at each epoch's end, into
// <output_dir>/checkpoints/checkpoint_<n> (the newest --total_limit kept); --resume_from_checkpoint (a folder, or
// latest) continues where one left off, mid-epoch included.
//   build/bin/by_feature_checkpointing --limit 6000 --output_dir runs/ck --checkpointing_steps 20
//   build/bin/by_feature_checkpointing --limit 6000 --output_dir runs/ck --resume_from_checkpoint latest --epochs 2
#include "base.hpp"

int main(int argc, char** argv) {
  return accelerate::run_main("by_feature_checkpointing: ", [&] {
    by_feature::BaseArgs args;
    std::string output_dir = "runs/checkpointing", resume_from_checkpoint;
    int64_t checkpointing_steps = 0;
    std::optional<int> total_limit;
    example::Flags flags(
        "by_feature_checkpointing: the base flags and --output_dir --checkpointing_steps N "
        "--resume_from_checkpoint (PATH|latest) --total_limit");
    by_feature::add_base_flags(flags, args)
        .add("--output_dir", output_dir)
        .add("--checkpointing_steps", checkpointing_steps)
        .add("--resume_from_checkpoint", resume_from_checkpoint)
        .add("--total_limit", total_limit)
        .parse(argc, argv);
    ACCELERATE_CHECK(checkpointing_steps >= 0, ConfigError,
                     "--checkpointing_steps needs a whole number >= 0 (0: at "
                     "each epoch's end only), not ",
                     checkpointing_steps);
    ACCELERATE_CHECK(!total_limit || *total_limit >= 1, ConfigError, "--total_limit needs a whole number >= 1, not ",
                     *total_limit);

    accelerate::Accelerator acc({.project = {.project_dir = output_dir,
                                             .automatic_checkpoint_naming = true,
                                             .total_limit = total_limit,
                                             .resume_from_checkpoint = resume_from_checkpoint},
                                 .seed = args.seed});
    const auto data = by_feature::load_data(acc, args);
    accelerate::DataLoader train(data.train, {.batch_size = args.batch_size, .shuffle = true});
    accelerate::DataLoader test(data.test, {.batch_size = 256});
    fashion_mnist::Net model;
    torch::optim::AdamW optimizer(model->parameters(), torch::optim::AdamWOptions(args.lr));
    auto [net, opt, train_loader, test_loader] = acc.prepare(model, optimizer, train, test);
    // After prepare: the model, optimizer, loader positions and random states come back as they were saved.
    if (const auto from = acc.resume_from_checkpoint()) {
      acc.print("resumed from", *from, "at epoch", train_loader.epoch(), "batch", train_loader.position().batches);
    }

    int64_t steps = 0;
    for (int64_t epoch = train_loader.epoch(); epoch < args.epochs; ++epoch) {
      for (auto& batch : train_loader) {
        by_feature::train_step(acc, net, opt, batch);
        if (checkpointing_steps > 0 && ++steps % checkpointing_steps == 0) acc.print("saved", acc.save_state());
      }
      acc.print("epoch", epoch, "accuracy", by_feature::evaluate(acc, net, test_loader), "saved", acc.save_state());
    }
    acc.end_training();
    return 0;
  });
}
