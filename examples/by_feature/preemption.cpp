// base.cpp plus preemption: a notice (SIGTERM or SIGUSR1 from Kubernetes, SLURM's --signal or the launcher) makes
// every process save a checkpoint at the same optimizer step and exit with kExitPreempted (75), which
// `accelerate-cpp launch --max_restarts` and SLURM's requeue treat as "resume me"; the next run continues from it.
//   build/bin/by_feature_preemption --limit 6000 --epochs 3 & sleep 5; kill -TERM $!; wait $!; echo $?  # 75
//   build/bin/by_feature_preemption --limit 6000 --epochs 3                     # resumes (always "latest")
#include "base.hpp"

int main(int argc, char** argv) {
  return accelerate::run_main("by_feature_preemption: ", [&] {
    by_feature::BaseArgs args;
    std::string output_dir = "runs/preemption";
    example::Flags flags("by_feature_preemption: the base flags and --output_dir");
    by_feature::add_base_flags(flags, args).add("--output_dir", output_dir).parse(argc, argv);

    accelerate::Accelerator acc({.project = {.project_dir = output_dir,
                                             .automatic_checkpoint_naming = true,
                                             .total_limit = 2,
                                             .resume_from_checkpoint = "latest"},  // a first run starts fresh
                                 .seed = args.seed});
    const auto data = by_feature::load_data(acc, args);
    accelerate::DataLoader train(data.train, {.batch_size = args.batch_size, .shuffle = true});
    accelerate::DataLoader test(data.test, {.batch_size = 256});
    fashion_mnist::Net model;
    torch::optim::AdamW optimizer(model->parameters(), torch::optim::AdamWOptions(args.lr));
    auto [net, opt, train_loader, test_loader] = acc.prepare(model, optimizer, train, test);
    if (const auto from = acc.resume_from_checkpoint()) acc.print("resumed from", *from);
    acc.print("training from epoch", train_loader.epoch());

    for (int64_t epoch = train_loader.epoch(); epoch < args.epochs; ++epoch) {
      for (auto& batch : train_loader) {
        by_feature::train_step(acc, net, opt, batch);
        if (!acc.check_preemption()) continue;  // true on every process at the same step
        acc.print("preempted: saved", acc.save_state(), "; exiting with", accelerate::kExitPreempted);
        acc.end_training();
        return accelerate::kExitPreempted;
      }
      acc.print("epoch", epoch, "accuracy", by_feature::evaluate(acc, net, test_loader));
    }
    acc.end_training();
    return 0;
  });
}
