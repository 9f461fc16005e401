// base.cpp plus experiment tracking: the run's hyper-parameters and each epoch's loss and accuracy go to the
// trackers of --report_to (tensorboard, jsonl, csv or all) under <project_dir>/<project name>, main process only.
//   build/bin/by_feature_tracking --limit 6000 --report_to tensorboard --project_dir runs
#include "base.hpp"

int main(int argc, char** argv) {
  return accelerate::run_main("by_feature_tracking: ", [&] {
    by_feature::BaseArgs args;
    std::string report_to = "all", project_dir = "runs";
    example::Flags flags(
        "by_feature_tracking: the base flags and --report_to (tensorboard|jsonl|csv|all) --project_dir");
    by_feature::add_base_flags(flags, args).add("--report_to", report_to).add("--project_dir", project_dir);
    flags.parse(argc, argv);

    accelerate::Accelerator acc({.log_with = report_to, .project_dir = project_dir, .seed = args.seed});
    acc.init_trackers("by_feature_tracking", {{"lr", args.lr},
                                              {"batch_size", args.batch_size},
                                              {"epochs", int64_t{args.epochs}},
                                              {"num_processes", int64_t{acc.num_processes()}}});
    const auto data = by_feature::load_data(acc, args);
    accelerate::DataLoader train(data.train, {.batch_size = args.batch_size, .shuffle = true});
    accelerate::DataLoader test(data.test, {.batch_size = 256});
    fashion_mnist::Net model;
    torch::optim::AdamW optimizer(model->parameters(), torch::optim::AdamWOptions(args.lr));
    auto [net, opt, train_loader, test_loader] = acc.prepare(model, optimizer, train, test);

    for (int epoch = 0; epoch < args.epochs; ++epoch) {
      auto loss_sum = torch::zeros({}, torch::kDouble);
      int64_t batches = 0;
      for (auto& batch : train_loader) {
        loss_sum += by_feature::train_step(acc, net, opt, batch).detach().to(torch::kDouble);
        ++batches;
      }
      // The mean over every process's batches, as every process computes the same value.
      const double train_loss = acc.reduce(loss_sum / std::max<int64_t>(batches, 1), "mean").item<double>();
      const double accuracy = by_feature::evaluate(acc, net, test_loader);
      acc.log({{"train_loss", train_loss}, {"accuracy", accuracy}, {"epoch", int64_t{epoch}}}, epoch);
      acc.print("epoch", epoch, "train_loss", train_loss, "accuracy", accuracy);
    }
    acc.end_training();  // flushes and closes every tracker
    return 0;
  });
}
