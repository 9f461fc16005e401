// The example's small CNN (also used by bench/training_bench.cpp).
#pragma once

#include <torch/nn/module.h>
#include <torch/nn/modules/conv.h>
#include <torch/nn/modules/linear.h>
#include <torch/nn/functional.h>

namespace fashion_mnist {

struct NetImpl : torch::nn::Module {
  NetImpl()
      : conv1(register_module("conv1", torch::nn::Conv2d(torch::nn::Conv2dOptions(1, 32, 3)))),
        conv2(register_module("conv2", torch::nn::Conv2d(torch::nn::Conv2dOptions(32, 64, 3)))),
        fc1(register_module("fc1", torch::nn::Linear(64 * 5 * 5, 128))),
        fc2(register_module("fc2", torch::nn::Linear(128, 10))) {}
  torch::Tensor forward(torch::Tensor x) {            // (B, 1, 28, 28)
    x = torch::max_pool2d(torch::relu(conv1(x)), 2);  // (B, 32, 13, 13)
    x = torch::max_pool2d(torch::relu(conv2(x)), 2);  // (B, 64, 5, 5)
    x = torch::relu(fc1(x.flatten(1)));               // (B, 128)
    return fc2(x);                                    // (B, 10)
  }
  torch::nn::Conv2d conv1, conv2;
  torch::nn::Linear fc1, fc2;
};
TORCH_MODULE(Net);

}  // namespace fashion_mnist
