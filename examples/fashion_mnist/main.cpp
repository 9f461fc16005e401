// Fashion-MNIST with a small CNN: the same loop on one process, N CPU processes or GPUs.
//   accelerate-cpp launch --num_processes 2 --cpu build/bin/fashion_mnist
// Flags: --epochs --batch_size (per process) --lr --mixed_precision --gradient_accumulation_steps --seed
//        --data_dir (Debian's dataset-fashion-mnist by default) --cache_dir --limit (train samples, for smoke runs)
//        --output_dir --checkpointing_steps (N|epoch) --resume_from_checkpoint (PATH|latest) --total_limit
//        --with_tracking --report_to (tensorboard|jsonl|csv|all) --debug (prints each process's state)
// With --output_dir, SIGTERM/SIGUSR1 (a preemption notice) saves a checkpoint at the current step and exits with
// accelerate::kExitPreempted (75); --resume_from_checkpoint latest continues from it.
#include <accelerate/accelerate.hpp>

#include <torch/torch.h>  // the example itself may use the whole frontend

#include <chrono>
#include <cstdlib>
#include <iostream>
#include <limits>
#include <stdexcept>
#include <type_traits>
#include <tuple>

#include "fashion_mnist_data.hpp"
#include "net.hpp"

namespace {

struct Args {
  int epochs = 2;
  int64_t batch_size = 64;
  double lr = 2e-3;
  std::optional<std::string> mixed_precision;
  std::optional<int> gradient_accumulation_steps;
  std::optional<int> zero_stage;
  uint64_t seed = 42;
  std::string data_dir = "/usr/share/datasets/fashion-mnist";
  std::string cache_dir;
  int64_t limit = 0;
  std::string output_dir;
  std::string checkpointing_steps;  // "", "epoch" or a number of optimizer steps
  std::string resume_from_checkpoint;
  std::optional<int> total_limit;
  bool with_tracking = false;
  std::string report_to = "all";
  bool debug = false;
};

/// The whole of `v` as a number (std::stoll and friends stop at the first bad character: "2x" would be 2); throws
/// std::invalid_argument or std::out_of_range.
template <class T>
T whole(const std::string& v) {
  size_t used = 0;
  T x{};
  if constexpr (std::is_floating_point_v<T>) {
    x = static_cast<T>(std::stod(v, &used));
  } else if constexpr (std::is_unsigned_v<T>) {
    if (v.find('-') != std::string::npos) throw std::out_of_range(v);
    x = static_cast<T>(std::stoull(v, &used));
  } else {
    const long long parsed = std::stoll(v, &used);
    if (parsed < std::numeric_limits<T>::min() || parsed > std::numeric_limits<T>::max()) throw std::out_of_range(v);
    x = static_cast<T>(parsed);
  }
  if (used != v.size()) throw std::invalid_argument(v);  // caught as std::logic_error by parse()
  return x;
}

/// --checkpointing_steps: "epoch", or a whole number of optimizer steps >= 0 (0: never, as the GPT example).
std::string checkpointing_steps(const std::string& v) {
  if (v == "epoch") return v;
  const auto n = whole<int64_t>(v);
  ACCELERATE_CHECK(n >= 0, ConfigError, "--checkpointing_steps needs 'epoch' or a whole number >= 0, not '", v, "'");
  return n == 0 ? "" : std::to_string(n);
}

Args parse(int argc, char** argv) {
  Args a;
  for (int i = 1; i < argc; ++i) {
    const std::string flag = argv[i];
    if (flag == "--with_tracking") {
      a.with_tracking = true;
      continue;
    }
    if (flag == "--debug") {
      a.debug = true;
      continue;
    }
    if (flag == "--help" || flag == "-h") {
      std::cout
          << "fashion_mnist: flags --epochs --batch_size (per process) --lr --mixed_precision "
             "--gradient_accumulation_steps --zero_stage (0|1|2) --seed --data_dir --cache_dir --limit --output_dir "
             "--checkpointing_steps (N|epoch) --resume_from_checkpoint (PATH|latest) --total_limit --report_to "
             "--with_tracking --debug"
          << std::endl;
      std::exit(0);
    }
    ACCELERATE_CHECK(i + 1 < argc, ConfigError, "flag ", flag, " needs a value");
    const std::string v = argv[++i];
    try {
      if (flag == "--epochs")
        a.epochs = whole<int>(v);
      else if (flag == "--batch_size")
        a.batch_size = whole<int64_t>(v);
      else if (flag == "--lr")
        a.lr = whole<double>(v);
      else if (flag == "--mixed_precision")
        a.mixed_precision = v;
      else if (flag == "--gradient_accumulation_steps")
        a.gradient_accumulation_steps = whole<int>(v);
      else if (flag == "--zero_stage")
        a.zero_stage = whole<int>(v);
      else if (flag == "--seed")
        a.seed = whole<uint64_t>(v);
      else if (flag == "--data_dir")
        a.data_dir = v;
      else if (flag == "--cache_dir")
        a.cache_dir = v;
      else if (flag == "--limit")
        a.limit = whole<int64_t>(v);
      else if (flag == "--output_dir")
        a.output_dir = v;
      else if (flag == "--checkpointing_steps")
        a.checkpointing_steps = checkpointing_steps(v);
      else if (flag == "--resume_from_checkpoint")
        a.resume_from_checkpoint = v;
      else if (flag == "--total_limit")
        a.total_limit = whole<int>(v);
      else if (flag == "--report_to")
        a.report_to = v;
      else
        throw accelerate::ConfigError("unknown flag " + flag + " (see --help)");
    } catch (const std::logic_error&) {  // std::stoi and friends: not a number, or out of range
      throw accelerate::ConfigError("flag " + flag + ": '" + v.substr(0, 40) + "' is not a valid number");
    }
  }
  return a;
}

}  // namespace

int main(int argc, char** argv) try {
  const Args args = parse(argc, argv);
  accelerate::AcceleratorOptions options;
  options.mixed_precision = args.mixed_precision;
  options.gradient_accumulation_steps = args.gradient_accumulation_steps;
  options.zero_stage = args.zero_stage;
  options.seed = args.seed;
  ACCELERATE_CHECK(args.checkpointing_steps.empty() || !args.output_dir.empty(), ConfigError,
                   "--checkpointing_steps needs --output_dir (where the checkpoints go).");
  ACCELERATE_CHECK(args.resume_from_checkpoint != "latest" || !args.output_dir.empty(), ConfigError,
                   "--resume_from_checkpoint latest needs --output_dir (whose checkpoints/ it looks in).");
  options.project = {.project_dir = args.output_dir,
                     .automatic_checkpoint_naming = true,
                     .total_limit = args.total_limit,
                     .resume_from_checkpoint = args.resume_from_checkpoint};
  if (args.with_tracking) options.log_with = {args.report_to};
  accelerate::Accelerator acc(options);
  if (args.debug) {
    // Every process, in rank order: which device, backend and precision each one really got.
    accelerate::get_logger(acc.state(), "fashion_mnist")
        .log(accelerate::LogLevel::Info, "\n" + acc.state_report(), {.main_process_only = false, .in_order = true});
  }
  if (args.with_tracking) {
    acc.init_trackers("fashion_mnist", {{"lr", args.lr},
                                        {"batch_size", args.batch_size},
                                        {"epochs", int64_t{args.epochs}},
                                        {"seed", static_cast<int64_t>(args.seed)},
                                        {"mixed_precision", accelerate::to_string(acc.mixed_precision())},
                                        {"num_processes", int64_t{acc.num_processes()}}});
  }

  fashion_mnist::Splits data;
  {
    auto first = acc.main_process_first();  // rank 0 unpacks the data once, the others then read it
    data = fashion_mnist::load(args.data_dir, args.cache_dir, args.limit);
  }
  accelerate::DataLoader train(data.train, {.batch_size = args.batch_size, .shuffle = true});
  accelerate::DataLoader test(data.test, {.batch_size = 256});

  fashion_mnist::Net model;
  torch::optim::AdamW optimizer(model->parameters(), torch::optim::AdamWOptions(args.lr));
  const int64_t steps_per_epoch = (data.train->size() + args.batch_size - 1) / args.batch_size;  // unprepared length
  auto schedule = accelerate::get_scheduler(
      "cosine", optimizer, {.num_warmup_steps = 50, .num_training_steps = args.epochs * steps_per_epoch});
  auto [net, opt, train_loader, test_loader, scheduler] = acc.prepare(model, optimizer, train, test, schedule);

  if (const auto from = acc.resume_from_checkpoint()) {
    acc.print("resumed from", *from, "at epoch", train_loader.epoch(), "after", train_loader.position().batches,
              "batches of it");
  }
  const int64_t save_every = args.checkpointing_steps.empty() || args.checkpointing_steps == "epoch"
                                 ? 0
                                 : std::stoll(args.checkpointing_steps);
  auto evaluate = [&] {
    net->eval();
    int64_t correct = 0, seen = 0;
    torch::NoGradGuard no_grad;
    for (auto& batch : test_loader) {
      auto autocast = acc.autocast();
      auto predictions = net->forward(batch.data).argmax(1);
      // gather_for_metrics drops the samples that padded the last round, so every test image counts once.
      auto all_predictions = acc.gather_for_metrics(predictions);
      auto all_targets = acc.gather_for_metrics(batch.target);
      correct += all_predictions.eq(all_targets).sum().item<int64_t>();
      seen += all_targets.size(0);
    }
    return std::make_pair(static_cast<double>(correct) / static_cast<double>(std::max<int64_t>(seen, 1)), seen);
  };
  int64_t optimizer_steps = 0, test_samples = 0;
  double final_accuracy = -1;
  for (int64_t epoch = train_loader.epoch(); epoch < args.epochs; ++epoch) {
    const auto start = std::chrono::steady_clock::now();
    net->train();
    accelerate::ProgressBar bar(acc.state(),
                                static_cast<int64_t>(train_loader.size()) - train_loader.position().batches,
                                {.description = "epoch " + std::to_string(epoch)});
    double loss_sum = 0;
    int64_t batches = 0;
    for (auto& batch : train_loader) {
      auto step = acc.accumulate(net);
      torch::Tensor loss;
      {
        auto autocast = acc.autocast();
        loss = torch::cross_entropy_loss(net->forward(batch.data), batch.target);
      }
      acc.backward(loss);
      opt.step();
      scheduler.step();
      opt.zero_grad();
      loss_sum += loss.item<double>();
      ++batches;
      bar.update();
      if (batches % 50 == 0) bar.set_postfix({{"loss", loss.item<double>()}});
      if (!acc.sync_gradients()) continue;
      const bool scheduled = save_every > 0 && ++optimizer_steps % save_every == 0;
      // A preemption notice: every process saves at this same step (once), then the run ends as resumable.
      const bool preempted = !args.output_dir.empty() && acc.check_preemption();
      if (!scheduled && !preempted) continue;
      const auto dir = acc.save_state();
      if (preempted) {
        bar.close();
        acc.print("preempted: saved", dir, "at epoch", epoch, "after", train_loader.position().batches,
                  "batches; exiting with code", accelerate::kExitPreempted,
                  "(resume with --resume_from_checkpoint latest)");
        acc.end_training();
        return accelerate::kExitPreempted;
      }
    }
    bar.close();
    if (args.checkpointing_steps == "epoch") acc.save_state();
    const auto mean_loss = acc.reduce(torch::tensor(loss_sum / std::max<int64_t>(batches, 1), torch::kDouble),
                                      accelerate::Reduction::Mean);
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    const auto [accuracy, seen] = evaluate();
    acc.print("epoch", epoch, "train_loss", mean_loss.item<double>(), "accuracy", accuracy, "lr",
              scheduler.get_last_lr()[0], "seconds", seconds);
    acc.log({{"train_loss", mean_loss.item<double>()},
             {"accuracy", accuracy},
             {"lr", scheduler.get_last_lr()[0]},
             {"epoch", epoch}},
            epoch);
    final_accuracy = accuracy, test_samples = seen;
  }
  if (final_accuracy < 0) std::tie(final_accuracy, test_samples) = evaluate();  // resumed after the last epoch
  acc.print("test_samples", test_samples);
  if (acc.is_main_process()) std::cout << "test_accuracy=" << final_accuracy << std::endl;
  acc.end_training();
  return 0;
} catch (const accelerate::ConfigError& e) {
  std::cerr << "fashion_mnist: " << e.what() << std::endl;
  return 2;
} catch (const accelerate::Error& e) {
  std::cerr << "fashion_mnist: " << e.what() << std::endl;
  return 1;
} catch (const std::exception& e) {  // from LibTorch or the standard library: still a message, never an abort
  std::cerr << "fashion_mnist: " << e.what() << std::endl;
  return 1;
}
