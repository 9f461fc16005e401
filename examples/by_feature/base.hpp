// What every by_feature example shares with base.cpp: the flags of the base job, its data, its training step and
// its evaluation. Each example is base.cpp plus one feature: `diff base.cpp checkpointing.cpp` shows that feature
// alone (as HF Accelerate's examples/by_feature/).
#pragma once

#include <accelerate/accelerate.hpp>

#include <torch/torch.h>

#include "../common/flags.hpp"
#include "../fashion_mnist/fashion_mnist_data.hpp"
#include "../fashion_mnist/net.hpp"

namespace by_feature {

struct BaseArgs {
  int epochs = 1;
  int64_t batch_size = 64;  // per process
  double lr = 2e-3;
  uint64_t seed = 42;
  std::string data_dir = "/usr/share/datasets/fashion-mnist";  // Debian's dataset-fashion-mnist
  int64_t limit = 0;                                           // training samples (0: all 60,000)
};

/// The base flags' ranges, after parsing; ConfigError (exit code 2) naming the flag otherwise.
inline void check_base_args(const BaseArgs& a) {
  ACCELERATE_CHECK(a.epochs >= 1, ConfigError, "--epochs needs a whole number >= 1, not ", a.epochs);
  ACCELERATE_CHECK(a.lr > 0, ConfigError, "--lr needs a number > 0, not ", a.lr);
  ACCELERATE_CHECK(a.limit >= 0, ConfigError, "--limit needs a whole number >= 0 (0: all), not ", a.limit);
}

/// --epochs --batch_size --lr --seed --data_dir --limit.
inline example::Flags& add_base_flags(example::Flags& flags, BaseArgs& a) {
  return flags.add("--epochs", a.epochs)
      .add("--batch_size", a.batch_size)
      .add("--lr", a.lr)
      .add("--seed", a.seed)
      .add("--data_dir", a.data_dir)
      .add("--limit", a.limit);
}

/// Both splits; the main process unpacks the files once, the others then read them.
inline fashion_mnist::Splits load_data(accelerate::Accelerator& acc, const BaseArgs& a) {
  check_base_args(a);
  auto first = acc.main_process_first();
  return fashion_mnist::load(a.data_dir, "", a.limit);
}

/// One micro-step: the forward under autocast, then backward, step and zero_grad (which skip their work on a
/// micro-step that does not synchronise). Returns the loss.
inline torch::Tensor train_step(accelerate::Accelerator& acc, fashion_mnist::Net& net,
                                accelerate::AcceleratedOptimizer& opt, const accelerate::Batch& batch) {
  torch::Tensor loss;
  {
    auto autocast = acc.autocast();
    loss = torch::cross_entropy_loss(net->forward(batch.data), batch.target);
  }
  acc.backward(loss);
  opt.step();
  opt.zero_grad();
  return loss;
}

/// Accuracy over the whole test set, every image counted once over all processes (gather_for_metrics drops the
/// samples that padded the last round).
inline double evaluate(accelerate::Accelerator& acc, fashion_mnist::Net& net, accelerate::DataLoader& test_loader) {
  net->eval();
  torch::NoGradGuard no_grad;
  int64_t correct = 0, seen = 0;
  for (auto& batch : test_loader) {
    auto autocast = acc.autocast();
    auto [predictions, targets] = acc.gather_for_metrics(net->forward(batch.data).argmax(1), batch.target);
    correct += predictions.eq(targets).sum().item<int64_t>();
    seen += targets.size(0);
  }
  net->train();
  return static_cast<double>(correct) / static_cast<double>(std::max<int64_t>(seen, 1));
}

}  // namespace by_feature
