// The base script of examples/by_feature: Fashion-MNIST with a small CNN, the same loop on one process, N CPU
// processes or GPUs. Every other file here is this one plus one feature.
//   accelerate-cpp launch --num_processes 2 --cpu build/bin/by_feature_base --limit 6000
#include "base.hpp"

int main(int argc, char** argv) {
  return accelerate::run_main("by_feature_base: ", [&] {
    by_feature::BaseArgs args;
    example::Flags flags("by_feature_base: --epochs --batch_size --lr --seed --data_dir --limit");
    by_feature::add_base_flags(flags, args).parse(argc, argv);

    accelerate::Accelerator acc({.seed = args.seed});
    const auto data = by_feature::load_data(acc, args);
    accelerate::DataLoader train(data.train, {.batch_size = args.batch_size, .shuffle = true});
    accelerate::DataLoader test(data.test, {.batch_size = 256});
    fashion_mnist::Net model;
    torch::optim::AdamW optimizer(model->parameters(), torch::optim::AdamWOptions(args.lr));
    auto [net, opt, train_loader, test_loader] = acc.prepare(model, optimizer, train, test);

    for (int epoch = 0; epoch < args.epochs; ++epoch) {
      for (auto& batch : train_loader) by_feature::train_step(acc, net, opt, batch);
      acc.print("epoch", epoch, "accuracy", by_feature::evaluate(acc, net, test_loader));
    }
    acc.end_training();
    return 0;
  });
}
