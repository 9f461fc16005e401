// For scripts/kill-test-checkpoints.sh: `save DIR` writes automatic checkpoints in a loop (total_limit 2), the
// weights of checkpoint N all equal N, and prints "saved N" once checkpoint N is complete; `verify DIR` loads every
// complete checkpoint and checks its weights, then load_state() of the newest. Exit 1 on any corrupt load.
#include <accelerate/accelerate.hpp>

#include <torch/torch.h>

#include <filesystem>
#include <iostream>

namespace fs = std::filesystem;

namespace {
accelerate::AcceleratorOptions options(const std::string& dir) {
  accelerate::AcceleratorOptions o;
  o.cpu = true;
  o.project = {.project_dir = dir, .automatic_checkpoint_naming = true, .total_limit = 2};
  return o;
}
}  // namespace

int main(int argc, char** argv) try {
  const std::string mode = argc > 2 ? argv[1] : "", dir = argc > 2 ? argv[2] : "";
  auto state = std::make_shared<accelerate::ProcessState>(accelerate::ProcessStateOptions{.cpu = true});
  torch::nn::Linear model(1024, 512);  // 2 MB of weights: a save takes long enough to be interrupted
  if (mode == "save") {
    accelerate::Accelerator acc(state, options(dir));
    acc.prepare(model);
    for (int64_t i = 0;; ++i) {
      {
        torch::NoGradGuard no_grad;
        for (auto& p : model->parameters()) p.fill_(static_cast<double>(i));
      }
      acc.save_state();
      std::cout << "saved " << i << std::endl;
    }
  }
  if (mode == "verify") {
    int complete = 0, incomplete = 0;
    for (const auto& entry : fs::directory_iterator(fs::path(dir) / "checkpoints")) {
      const auto name = entry.path().filename().string();
      const auto digits = name.substr(name.find('_') + 1);
      if (name.rfind("checkpoint_", 0) != 0 || digits.empty() ||
          digits.find_first_not_of("0123456789") != std::string::npos) {
        continue;  // checkpoint_N.tmp / .deleting: not checkpoints (the library never loads them either)
      }
      if (!fs::exists(entry.path() / "COMPLETE")) {
        ++incomplete;
        continue;
      }
      const double expected = std::stod(name.substr(name.rfind('_') + 1));
      accelerate::Accelerator acc(state, options(dir));
      acc.prepare(model);
      acc.load_state(entry.path().string());
      for (auto& p : model->parameters()) {
        if (!torch::all(p == expected).item<bool>()) {
          std::cout << "CORRUPT " << name << ": weights are not " << expected << std::endl;
          return 1;
        }
      }
      ++complete;
    }
    if (complete > 0) {
      accelerate::Accelerator acc(state, options(dir));
      acc.prepare(model);
      acc.load_state();  // the newest complete one
    }
    std::cout << "complete " << complete << " incomplete " << incomplete << std::endl;
    return 0;
  }
  std::cerr << "usage: checkpoint_kill_worker save|verify DIR" << std::endl;
  return 2;
} catch (const accelerate::Error& e) {
  std::cout << "ERROR " << e.what() << std::endl;
  return 1;
}
