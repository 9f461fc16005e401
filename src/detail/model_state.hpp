// Internal: a module's parameters and buffers by state-dict name (what save_model and save_state write).
#pragma once

#include <map>
#include <string>

#include <ATen/core/Tensor.h>

namespace torch::nn {
class Module;
}

namespace accelerate::detail {
std::map<std::string, at::Tensor> model_state(torch::nn::Module& model);
}
