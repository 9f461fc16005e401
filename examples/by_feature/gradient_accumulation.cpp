// base.cpp plus gradient accumulation: each optimizer step sums the gradients of --gradient_accumulation_steps
// micro-batches, so the global batch is batch_size x processes x steps; the micro-steps in between neither
// all-reduce gradients nor step the optimizer (accumulate() decides, HF's accumulate context manager).
//   accelerate-cpp launch --num_processes 2 --cpu build/bin/by_feature_gradient_accumulation --limit 6000
//       --gradient_accumulation_steps 4
#include "base.hpp"

int main(int argc, char** argv) {
  return accelerate::run_main("by_feature_gradient_accumulation: ", [&] {
    by_feature::BaseArgs args;
    int gradient_accumulation_steps = 2;
    example::Flags flags("by_feature_gradient_accumulation: the base flags and --gradient_accumulation_steps N");
    by_feature::add_base_flags(flags, args).add("--gradient_accumulation_steps", gradient_accumulation_steps);
    flags.parse(argc, argv);

    accelerate::Accelerator acc({.gradient_accumulation_steps = gradient_accumulation_steps, .seed = args.seed});
    acc.print("global batch:", args.batch_size * acc.num_processes() * acc.gradient_accumulation_steps(), "samples");
    const auto data = by_feature::load_data(acc, args);
    accelerate::DataLoader train(data.train, {.batch_size = args.batch_size, .shuffle = true});
    accelerate::DataLoader test(data.test, {.batch_size = 256});
    fashion_mnist::Net model;
    torch::optim::AdamW optimizer(model->parameters(), torch::optim::AdamWOptions(args.lr));
    auto [net, opt, train_loader, test_loader] = acc.prepare(model, optimizer, train, test);

    for (int epoch = 0; epoch < args.epochs; ++epoch) {
      int64_t optimizer_steps = 0;
      for (auto& batch : train_loader) {
        auto step = acc.accumulate(net);  // the feature: one guard per micro-step
        by_feature::train_step(acc, net, opt, batch);
        optimizer_steps += acc.sync_gradients();
      }
      acc.print("epoch", epoch, "optimizer_steps", optimizer_steps, "accuracy",
                by_feature::evaluate(acc, net, test_loader));
    }
    acc.end_training();
    return 0;
  });
}
