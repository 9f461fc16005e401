// The names the C++ blocks of README.md and docs/ use without declaring them: a user's model, dataset, optimizer
// and the objects of the loop around a block. Declared only (the blocks are compiled, not run); a block's own
// declarations shadow these.
#pragma once

#include <accelerate/accelerate.hpp>
#include <torch/torch.h>

#include <memory>
#include <vector>

namespace accelerate::docs {

struct NetImpl : torch::nn::Module {
  at::Tensor forward(const at::Tensor& x);
};
TORCH_MODULE(Net);

// Before prepare.
extern std::shared_ptr<Dataset> dataset;
extern Net model;
extern torch::optim::AdamW optimizer;
extern DataLoader train;
extern LRScheduler schedule;
extern int64_t total, epochs, epoch;

// The loop around a block, after prepare.
extern Accelerator acc;
extern Net net;
extern AcceleratedOptimizer& opt;
extern DataLoader& loader;
extern DataLoader& prepared_loader;
extern at::Tensor loss, x, a, b;
extern double acc1;
extern bool should_save;
extern std::vector<torch::nn::Linear> blocks;
at::Tensor loss_of(const Batch& batch);
at::Tensor f(const at::Tensor& a, const at::Tensor& b);

}  // namespace accelerate::docs
