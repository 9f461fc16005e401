// base.cpp plus the memory tools: find_executable_batch_size shrinks the batch size (x0.9) after an out-of-memory
// error until a run of the training function fits, agreeing on every process; --zero_stage 1 or 2 shards the
// optimizer state (and gradients) over the processes. Prints what each process holds.
//   accelerate-cpp launch --num_processes 2 --cpu build/bin/by_feature_memory --limit 6000 --zero_stage 2
#include "base.hpp"

int main(int argc, char** argv) {
  return accelerate::run_main("by_feature_memory: ", [&] {
    by_feature::BaseArgs args;
    args.batch_size = 256;          // the first attempt
    std::optional<int> zero_stage;  // unset: the launcher's (--zero_stage, a config file's), else 0
    example::Flags flags(
        "by_feature_memory: the base flags (--batch_size is the first attempt) and --zero_stage 0|1|2");
    by_feature::add_base_flags(flags, args).add("--zero_stage", zero_stage).parse(argc, argv);

    accelerate::Accelerator acc({.zero_stage = zero_stage, .seed = args.seed});
    const auto data = by_feature::load_data(acc, args);
    const auto used = accelerate::find_executable_batch_size(
        acc,
        [&](int64_t batch_size) {
          // Everything is made inside: each attempt starts fresh after free_memory().
          accelerate::DataLoader train(data.train, {.batch_size = batch_size, .shuffle = true});
          accelerate::DataLoader test(data.test, {.batch_size = 256});
          fashion_mnist::Net model;
          torch::optim::AdamW optimizer(model->parameters(), torch::optim::AdamWOptions(args.lr));
          auto [net, opt, train_loader, test_loader] = acc.prepare(model, optimizer, train, test);
          for (int epoch = 0; epoch < args.epochs; ++epoch) {
            for (auto& batch : train_loader) by_feature::train_step(acc, net, opt, batch);
            acc.print("epoch", epoch, "accuracy", by_feature::evaluate(acc, net, test_loader));
          }
          std::cout << "memory: rank=" << acc.process_index() << " zero_stage=" << acc.zero_stage()
                    << " optimizer_state_bytes=" << accelerate::optimizer_state_bytes(opt.optimizer())
                    << " peak_bytes=" << accelerate::peak_memory_bytes(acc.device()) << std::endl;
          return batch_size;
        },
        {.starting_batch_size = args.batch_size});
    acc.free_memory();
    acc.print("batch_size", used);
    acc.end_training();
    return 0;
  });
}
