// A worker that fails on purpose, for the launcher's failure tests. Usage: failure_worker MODE
//   exit3      rank 1 exits 3 while the others wait in a collective
//   sigkill    rank 1 kills itself with SIGKILL while the others wait in a collective
//   hang       rank 1 stays alive but never calls the collective; the others time out (ACCELERATE_CPP_TIMEOUT)
//   skip       rank 1 skips the reduce and goes on to wait_for_everyone (ranks out of step)
//   gather_vs_reduce  rank 0 gathers a [3, 5] tensor while rank 1 reduces 4 floats (Gloo sees data of another size)
//   shapes     rank 1 gathers a [1, 2, 5] tensor where rank 0 gathers [1, 5] (run with ACCELERATE_DEBUG_MODE=1)
//   sleep      every rank sleeps (for signal-forwarding tests)
//   rendezvous join the group and exit 0 (also the launch benchmark's probe)
//   train      every rank trains a tiny DDP model until killed (each backward all-reduces gradients); prints
//              "training" once, after the first step (the tests then SIGSTOP a rank from outside)
//   train_die  as train, but rank 1 kills itself with SIGKILL after 20 steps
//   save_main_only DIR  the common mistake: save_state(DIR) inside `if (is_main_process())`, then
//              wait_for_everyone (a certain deadlock, reported within seconds)
//   check_one_rank  DDP with gradient accumulation 2; after the first optimizer step only rank 0 calls
//              check_preemption(), while rank 1 goes on to the next backward: no all-reduce there, but DDP's one
//              bucket rebuild, a broadcast (a certain deadlock)
//   return_early  rank 1 returns 0 from main while rank 0 calls a reduce
//   slow       rank 1 sleeps 5 s before the same wait_for_everyone as the others (healthy, only slow)
//   preempt_self  every rank calls check_preemption() every 10 ms and exits 75 when it is true; rank 1 sends
//              itself SIGTERM at step 5 while TORCHELASTIC_RESTART_COUNT < 2; at step 50 every rank exits 0
//   preempt_ignore  check_preemption() once (the handlers are installed), then sleep without checking again
//   preempt_wait  every rank calls check_preemption() every 10 ms for 20 s and exits 75 when it is true
//   save_after_end DIR  a trained model saved with save_model(DIR) after end_training (HF's order; must work)
// With PID_DIR set, each rank writes its pid to PID_DIR/rank<N>.pid first.
#include <accelerate/accelerate.hpp>

#include <ATen/ATen.h>
#include <torch/nn/modules/linear.h>
#include <chrono>
#include <csignal>
#include <fstream>
#include <thread>
#include <unistd.h>

int main(int argc, char** argv) try {
  const std::string mode = argc > 1 ? argv[1] : "";
  accelerate::ProcessStateOptions options;
  options.cpu = true;
  auto shared_state = std::make_shared<accelerate::ProcessState>(options);
  accelerate::ProcessState& state = *shared_state;
  if (const char* dir = std::getenv("PID_DIR")) {
    std::ofstream(std::string(dir) + "/rank" + std::to_string(state.process_index()) + ".pid") << ::getpid();
  }
  if (mode == "rendezvous") {
    std::cout << "rendezvous done" << std::endl;
    return 0;
  }
  if (mode == "sleep") {
    std::this_thread::sleep_for(std::chrono::seconds(120));
    return 0;
  }
  if (mode == "save_main_only" || mode == "preempt_self" || mode == "preempt_ignore" || mode == "preempt_wait") {
    accelerate::Accelerator acc(shared_state, {.cpu = true});
    if (mode == "save_main_only") {
      if (acc.is_main_process()) acc.save_state(argc > 2 ? argv[2] : "");
      acc.wait_for_everyone();
      std::cout << "save_main_only finished (unexpected)" << std::endl;
      return 0;
    }
    if (mode == "preempt_ignore") {
      acc.check_preemption();
      std::cout << "checked once" << std::endl;
      std::this_thread::sleep_for(std::chrono::seconds(120));
      return 0;
    }
    const char* restart = std::getenv("TORCHELASTIC_RESTART_COUNT");
    const bool wait = mode == "preempt_wait";
    for (int step = 1; step <= (wait ? 2000 : 50); ++step) {
      if (!wait && step == 5 && state.process_index() == 1 && restart && std::atoi(restart) < 2) {
        ::kill(::getpid(), SIGTERM);
      }
      if (acc.check_preemption()) {
        std::cout << "preempted at step " << step << std::endl;
        return accelerate::kExitPreempted;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    std::cout << "finished " << (wait ? 2000 : 50) << " steps" << std::endl;
    return 0;
  }
  if (mode == "check_one_rank") {
    accelerate::Accelerator acc(shared_state, {.gradient_accumulation_steps = 2, .cpu = true});
    auto model = acc.prepare(torch::nn::Linear(8, 8));
    const auto x = at::randn({4, 8});
    for (int step = 1; step <= 3; ++step) {
      if (step == 3 && acc.is_main_process()) acc.check_preemption();
      auto accumulating = acc.accumulate(model);
      acc.backward(model->forward(x).pow(2).mean());
    }
    std::cout << "check_one_rank finished (unexpected)" << std::endl;
    return 0;
  }
  if (mode == "save_after_end") {
    accelerate::Accelerator acc(shared_state, {.cpu = true});
    auto model = acc.prepare(torch::nn::Linear(8, 8));
    acc.backward(model->forward(at::randn({4, 8})).pow(2).mean());
    acc.end_training();
    acc.save_model(model, argc > 2 ? argv[2] : "");
    std::cout << "saved after end_training" << std::endl;
    return 0;
  }
  if (mode == "slow") {
    accelerate::wait_for_everyone(state);
    if (state.process_index() == 1) std::this_thread::sleep_for(std::chrono::seconds(5));
    accelerate::wait_for_everyone(state);
    std::cout << "slow: wait_for_everyone finished" << std::endl;
    return 0;
  }
  if (mode == "train" || mode == "train_die") {
    accelerate::Accelerator acc(shared_state, {.cpu = true});
    auto model = acc.prepare(torch::nn::Linear(64, 64));
    const auto x = at::randn({16, 64});
    for (int step = 1;; ++step) {
      model->zero_grad();
      acc.backward(model->forward(x).pow(2).mean());
      if (step == 1) std::cout << "training" << std::endl;
      if (mode == "train_die" && step == 20 && state.process_index() == 1) ::raise(SIGKILL);
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
  }
  accelerate::wait_for_everyone(state);  // every rank is up before anyone fails
  if (state.process_index() == 1) {
    if (mode == "exit3") {
      std::cerr << "rank 1: failing on purpose with exit code 3" << std::endl;
      std::exit(3);
    }
    if (mode == "sigkill") ::raise(SIGKILL);
    if (mode == "hang") {
      std::this_thread::sleep_for(std::chrono::seconds(120));
      return 0;
    }
    if (mode == "return_early") return 0;
    if (mode == "skip") {
      accelerate::wait_for_everyone(state);
      return 0;
    }
  }
  if (mode == "gather_vs_reduce") {
    if (state.process_index() == 0) {
      accelerate::gather(state, at::ones({3, 5}));
    } else {
      accelerate::reduce(state, at::ones({argc > 2 ? std::atoi(argv[2]) : 4}), accelerate::Reduction::Sum);
    }
    std::cout << "mismatched collective finished (unexpected)" << std::endl;
    return 0;
  }
  if (mode == "shapes") {
    const auto shape = state.process_index() == 1 ? std::vector<int64_t>{1, 2, 5} : std::vector<int64_t>{1, 5};
    accelerate::gather(state, at::ones(shape));
    std::cout << "gather finished (unexpected)" << std::endl;
    return 0;
  }
  accelerate::reduce(state, at::ones({4}), accelerate::Reduction::Sum);
  std::cout << "collective finished (unexpected in failure modes)" << std::endl;
  return 0;
} catch (const accelerate::Error& e) {
  std::cerr << "failure_worker: " << e.what() << std::endl;
  return 1;
}
