// accelerate-cpp-check: the program `accelerate-cpp test` launches on every process (HF's test_script.py), and
// `--report`, the LibTorch/CUDA half of `accelerate-cpp env` (the CLI itself does not load LibTorch).
// Each check returns this rank's complaint (empty when fine); all ranks agree on every verdict, so a failure on
// one rank fails the check everywhere and nothing hangs on a rank that went its own way.
// ACCELERATE_CPP_TEST_BREAK=<check> breaks that check on the last rank: proof that the check can fail.
#include <accelerate/accelerate.hpp>
#include <accelerate/system_info.hpp>

#include <torch/torch.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iostream>

using namespace accelerate;
namespace fs = std::filesystem;

namespace {

bool broken(const Accelerator& acc, const std::string& check) {
  const char* b = std::getenv(env_var::kTestBreak);
  return b && check == b && acc.process_index() == acc.num_processes() - 1;
}

std::string expect(bool ok, const std::string& what) { return ok ? "" : what; }

std::string check_process_state(Accelerator& acc) {
  auto index = torch::full({1}, acc.process_index() + (broken(acc, "process_state") ? 1 : 0), torch::kLong);
  auto all = acc.gather(index.to(acc.device())).cpu();
  return expect(torch::equal(all, torch::arange(acc.num_processes(), torch::kLong)),
                "gathered process indexes are not 0..n-1");
}

std::string check_collectives(Accelerator& acc) {
  const int n = acc.num_processes(), r = acc.process_index();
  const auto opts = torch::TensorOptions().device(acc.device());
  // Every collective runs before any verdict: a rank that returned early would leave the others waiting.
  auto mine = torch::full({r + 1, 2}, static_cast<float>(r), opts);  // uneven first dimension
  auto gathered = acc.gather(mine).cpu();
  auto sum =
      acc.reduce(torch::full({3}, static_cast<float>(r + (broken(acc, "collectives") ? 5 : 0)), opts), Reduction::Sum)
          .cpu();
  auto from_last = broadcast(acc.state(), torch::full({2}, static_cast<float>(r), opts), n - 1).cpu();
  auto padded = acc.pad_across_processes(mine, 0).cpu();
  auto objects = gather_object(acc.state(), c10::IValue(std::string("rank") + std::to_string(r)));
  if (gathered.size(0) != n * (n + 1) / 2) return "gather returned the wrong number of rows";
  if (!torch::equal(sum, torch::full({3}, static_cast<float>(n * (n - 1) / 2)))) return "reduce(sum) is wrong";
  if (!torch::equal(from_last, torch::full({2}, static_cast<float>(n - 1))))
    return "broadcast from the last rank is wrong";
  if (padded.size(0) != n) return "pad_across_processes did not pad to the longest";
  for (int i = 0; i < n; ++i) {
    if (objects[i].toStringRef() != "rank" + std::to_string(i)) return "gather_object is out of order";
  }
  return "";
}

std::string check_main_process_first(Accelerator& acc) {
  std::vector<c10::IValue> path{c10::IValue(std::string())};
  if (acc.is_main_process()) {
    path[0] = (fs::temp_directory_path() / ("accelerate_test_order_" + std::to_string(::getpid()))).string();
    fs::remove(path[0].toStringRef());
  }
  broadcast_object_list(acc.state(), path, 0);
  const auto file = path[0].toStringRef();
  {
    auto first = acc.main_process_first();
    std::ofstream(file, std::ios::app) << acc.process_index() << "\n";
  }
  if (broken(acc, "main_process_first")) std::ofstream(file, std::ios::app) << "extra\n";
  acc.wait_for_everyone();
  std::string complaint;
  if (acc.is_main_process()) {
    std::ifstream in(file);
    std::string first, line;
    std::getline(in, first);
    int lines = first.empty() ? 0 : 1;
    while (std::getline(in, line)) ++lines;
    if (first != "0" || lines != acc.num_processes()) complaint = "the main process did not go first";
  }
  acc.wait_for_everyone();
  if (acc.is_main_process()) fs::remove(file);
  return complaint;
}

std::string check_split_between_processes(Accelerator& acc) {
  std::vector<int64_t> items(17);
  for (int64_t i = 0; i < 17; ++i) items[i] = i;
  auto mine = split_between_processes(acc.state(), items);
  if (broken(acc, "split_between_processes") && !mine.empty()) mine.pop_back();
  auto all = gather_object(acc.state(), mine);
  return expect(all == items, "split_between_processes + gather_object did not give back the input");
}

std::string check_data_loader(Accelerator& acc) {
  const int64_t n = acc.num_processes();
  std::string complaint;
  std::vector<std::unique_ptr<DataLoader>> loaders;  // alive while the Accelerator is: it keeps their addresses
  for (bool shuffle : {false, true}) {
    auto data = torch::arange(32 * n, torch::kFloat).unsqueeze(1);
    auto& loader =
        *loaders.emplace_back(std::make_unique<DataLoader>(std::make_shared<TensorDataset>(data, torch::arange(32 * n)),
                                                           DataLoaderOptions{.batch_size = 8, .shuffle = shuffle}));
    acc.prepare(loader);
    std::vector<torch::Tensor> seen;
    for (auto& batch : loader) seen.push_back(acc.gather(batch.target));
    auto all = torch::cat(seen).cpu();
    if (broken(acc, "data_loader")) all[0] = -1;
    // No early return: every rank must reach the same collectives.
    if (!shuffle && !torch::equal(all, torch::arange(32 * n))) complaint = "unshuffled batches are not in order";
    if (!torch::equal(std::get<0>(all.sort()), torch::arange(32 * n)))
      complaint = "the shards do not cover the data once";
  }
  return complaint;
}

/// HF's training_check: y = 2x + 3 (+ noise), parameters a and b, SGD; n processes with 8 samples each per
/// step must end where one process with 8n per step ends.
std::string check_training(Accelerator& acc) {
  const int64_t n = acc.num_processes();
  torch::manual_seed(42);
  auto x = torch::randn({32 * n, 1});
  auto y = 2 * x + 3 + 0.1 * torch::randn({32 * n, 1});
  auto train = [&](int64_t batch, bool distributed) {
    auto a = torch::zeros({1}, torch::requires_grad()), b = torch::zeros({1}, torch::requires_grad());
    torch::optim::SGD sgd({a, b}, 0.1);
    DataLoader loader(std::make_shared<TensorDataset>(x, y), {.batch_size = batch});
    if (distributed) {
      struct Regression : torch::nn::Module {
        torch::Tensor a, b;
      };
      auto model = std::make_shared<Regression>();
      model->a = model->register_parameter("a", a);
      model->b = model->register_parameter("b", b);
      acc.prepare_model(model);
      auto& opt = acc.prepare(sgd);
      acc.prepare(loader);
      for (int epoch = 0; epoch < 3; ++epoch) {
        for (auto& batch_data : loader) {
          acc.backward(torch::mse_loss(model->a * batch_data.data + model->b, batch_data.target));
          opt.step();
          opt.zero_grad();
        }
      }
      return std::make_pair(model->a.item<double>(), model->b.item<double>());
    }
    for (int epoch = 0; epoch < 3; ++epoch) {
      for (int64_t start = 0; start < x.size(0); start += batch) {
        auto xb = x.slice(0, start, start + batch), yb = y.slice(0, start, start + batch);
        sgd.zero_grad();
        torch::mse_loss(a * xb + b, yb).backward();
        sgd.step();
      }
    }
    return std::make_pair(a.item<double>(), b.item<double>());
  };
  const auto [a1, b1] = train(8 * n, false);
  auto [an, bn] = train(8, true);
  if (broken(acc, "training")) an += 1;
  if (std::abs(an - a1) > 1e-5 || std::abs(bn - b1) > 1e-5) {
    return accelerate::detail::concat("trained a, b = ", an, ", ", bn, " but one process gives ", a1, ", ", b1);
  }
  return "";
}

std::string check_rng_sync(Accelerator& acc) {
  acc.set_seed(42);
  auto draw = torch::rand({4});
  if (broken(acc, "rng_sync")) draw += 1;
  auto all = acc.gather(draw.to(acc.device())).cpu().view({acc.num_processes(), 4});
  acc.set_seed(42, /*device_specific=*/true);
  auto specific = acc.gather(torch::rand({4}).to(acc.device())).cpu().view({acc.num_processes(), 4});
  for (int64_t i = 1; i < all.size(0); ++i) {
    if (!torch::equal(all[i], all[0])) return "set_seed(42) left the processes with different random numbers";
  }
  for (int64_t i = 1; i < specific.size(0); ++i) {
    if (torch::equal(specific[i], specific[0])) return "device_specific seeds gave equal random numbers";
  }
  return "";
}

int run_checks() {
  // One process group for all checks; a fresh Accelerator for each, as objects are prepared once per Accelerator.
  auto state = std::make_shared<ProcessState>();
  Accelerator acc(state);
  acc.print("accelerate-cpp test:", acc.num_processes(), "process(es)\n" + acc.state_report());
  const std::vector<std::pair<std::string, std::function<std::string(Accelerator&)>>> checks = {
      {"process_state", check_process_state},
      {"collectives", check_collectives},
      {"main_process_first", check_main_process_first},
      {"split_between_processes", check_split_between_processes},
      {"data_loader", check_data_loader},
      {"training", check_training},
      {"rng_sync", check_rng_sync}};
  std::vector<std::string> failed;
  for (const auto& [name, check] : checks) {
    std::string complaint;
    try {
      Accelerator fresh(state);
      complaint = check(fresh);
    } catch (const Error& e) {
      complaint = e.what();  // a collective error: the group is unusable, so stop here
      std::cerr << "rank " << acc.process_index() << ": " << name << ": " << complaint << std::endl;
      return 1;
    }
    std::string verdict;
    for (const auto& c : gather_object(acc.state(), c10::IValue(complaint))) {
      if (!c.toStringRef().empty() && verdict.empty()) verdict = c.toStringRef();
    }
    acc.print(verdict.empty() ? "[ ok ]" : "[FAIL]", name, verdict.empty() ? "" : "-- " + verdict);
    if (!verdict.empty()) failed.push_back(name);
  }
  if (failed.empty()) {
    acc.print("Test is a success! You are ready for your distributed training!");
  } else {
    std::string names;
    for (const auto& f : failed) names += (names.empty() ? "" : ", ") + f;
    acc.print("accelerate-cpp test FAILED:", failed.size(), "of", checks.size(), "checks failed:", names);
  }
  acc.end_training();
  return failed.empty() ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    if (argc > 1 && std::string(argv[1]) == "--report") {
      std::cout << to_markdown(runtime_info());
      // The peak that CPU MFU is measured against (throughput.hpp): this machine's, with LibTorch's threads.
      std::cout << "- CPU GEMM peak (measured, fp32, " << at::get_num_threads()
                << " threads): " << static_cast<int64_t>(measure_cpu_gemm_flops(c10::kFloat, 0.3) / 1e9)
                << " GFLOP/s\n";
      return 0;
    }
    return run_checks();
  } catch (const Error& e) {
    std::cerr << "accelerate-cpp-check: " << e.what() << std::endl;
    return 1;
  }
}
