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
#include <iostream>
#include <tuple>

#include "../common/flags.hpp"
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
  bool profile = false;
};

/// --checkpointing_steps: "epoch", or a whole number of optimizer steps >= 0 (0: never, as the GPT example).
std::string checkpointing_steps(const std::string& v) {
  if (v == "epoch") return v;
  const auto n = example::whole<int64_t>(v);
  ACCELERATE_CHECK(n >= 0, ConfigError, "--checkpointing_steps needs 'epoch' or a whole number >= 0, not '", v, "'");
  return n == 0 ? "" : std::to_string(n);
}

Args parse(int argc, char** argv) {
  Args a;
  example::Flags(
      "fashion_mnist: flags --epochs --batch_size (per process) --lr --mixed_precision --gradient_accumulation_steps "
      "--zero_stage (0|1|2) --seed --data_dir --cache_dir --limit --output_dir --checkpointing_steps (N|epoch) "
      "--resume_from_checkpoint (PATH|latest) --total_limit --report_to --with_tracking --debug --profile (optimizer "
      "steps 2-4 traced into <output_dir>/profile)")
      .add("--epochs", a.epochs)
      .add("--batch_size", a.batch_size)
      .add("--lr", a.lr)
      .add("--mixed_precision", a.mixed_precision)
      .add("--gradient_accumulation_steps", a.gradient_accumulation_steps)
      .add("--zero_stage", a.zero_stage)
      .add("--seed", a.seed)
      .add("--data_dir", a.data_dir)
      .add("--cache_dir", a.cache_dir)
      .add("--limit", a.limit)
      .add("--output_dir", a.output_dir)
      .add("--checkpointing_steps", a.checkpointing_steps, checkpointing_steps)
      .add("--resume_from_checkpoint", a.resume_from_checkpoint)
      .add("--total_limit", a.total_limit)
      .add("--report_to", a.report_to)
      .add_switch("--with_tracking", a.with_tracking)
      .add_switch("--debug", a.debug)
      .add_switch("--profile", a.profile)
      .parse(argc, argv);
  ACCELERATE_CHECK(a.checkpointing_steps.empty() || !a.output_dir.empty(), ConfigError,
                   "--checkpointing_steps needs --output_dir (where the checkpoints go).");
  ACCELERATE_CHECK(a.resume_from_checkpoint != "latest" || !a.output_dir.empty(), ConfigError,
                   "--resume_from_checkpoint latest needs --output_dir (whose checkpoints/ it looks in).");
  ACCELERATE_CHECK(a.epochs >= 1, ConfigError, "--epochs needs a whole number >= 1, not ", a.epochs);
  ACCELERATE_CHECK(a.lr > 0, ConfigError, "--lr needs a number > 0, not ", a.lr);
  ACCELERATE_CHECK(a.limit >= 0, ConfigError, "--limit needs a whole number >= 0 (0: all), not ", a.limit);
  ACCELERATE_CHECK(!a.total_limit || *a.total_limit >= 1, ConfigError, "--total_limit needs a whole number >= 1, not ",
                   a.total_limit.value_or(0));
  return a;
}

accelerate::AcceleratorOptions options_for(const Args& args) {
  accelerate::AcceleratorOptions options;
  options.mixed_precision = args.mixed_precision;
  options.gradient_accumulation_steps = args.gradient_accumulation_steps;
  options.zero_stage = args.zero_stage;
  options.seed = args.seed;
  options.project = {.project_dir = args.output_dir,
                     .automatic_checkpoint_naming = true,
                     .total_limit = args.total_limit,
                     .resume_from_checkpoint = args.resume_from_checkpoint};
  if (args.with_tracking) options.log_with = {args.report_to};
  return options;
}

/// --debug prints every process's state, in rank order: which device, backend and precision each one really got.
/// --with_tracking logs the run's hyper-parameters.
void report_start(accelerate::Accelerator& acc, const Args& args) {
  if (args.debug) {
    accelerate::get_logger(acc.state(), "fashion_mnist")
        .log(accelerate::LogLevel::Info, "\n" + acc.state_report(), {.main_process_only = false, .in_order = true});
  }
  if (!args.with_tracking) return;
  acc.init_trackers("fashion_mnist", {{"lr", args.lr},
                                      {"batch_size", args.batch_size},
                                      {"epochs", int64_t{args.epochs}},
                                      {"seed", static_cast<int64_t>(args.seed)},
                                      {"mixed_precision", accelerate::to_string(acc.mixed_precision())},
                                      {"num_processes", int64_t{acc.num_processes()}}});
}

/// Accuracy on the test set and the number of test images seen (each counted once over all processes).
std::pair<double, int64_t> evaluate(accelerate::Accelerator& acc, fashion_mnist::Net& net,
                                    accelerate::DataLoader& test_loader) {
  net->eval();
  int64_t correct = 0, seen = 0;
  torch::NoGradGuard no_grad;
  for (auto& batch : test_loader) {
    auto autocast = acc.autocast();
    // gather_for_metrics drops the samples that padded the last round, so every test image counts once.
    auto [predictions, targets] = acc.gather_for_metrics(net->forward(batch.data).argmax(1), batch.target);
    correct += predictions.eq(targets).sum().item<int64_t>();
    seen += targets.size(0);
  }
  return {static_cast<double>(correct) / static_cast<double>(std::max<int64_t>(seen, 1)), seen};
}

/// The prepared objects of the run and its progress.
struct Run {
  accelerate::Accelerator& acc;
  const Args& args;
  fashion_mnist::Net net;
  accelerate::AcceleratedOptimizer& opt;
  accelerate::DataLoader& train_loader;
  accelerate::DataLoader& test_loader;
  accelerate::AcceleratedScheduler& scheduler;
  int64_t save_every = 0;  // optimizer steps between checkpoints; 0: none by steps
  int64_t optimizer_steps = 0;
  std::optional<accelerate::Profiler> profiler;  // --profile
};

/// After an optimizer step: a checkpoint every --checkpointing_steps; on a preemption notice every process saves at
/// this same step (once) and the run ends as resumable. Returns whether it was preempted.
bool save_if_due(Run& r, int64_t epoch, accelerate::ProgressBar& bar) {
  const bool scheduled = r.save_every > 0 && ++r.optimizer_steps % r.save_every == 0;
  const bool preempted = !r.args.output_dir.empty() && r.acc.check_preemption();
  if (!scheduled && !preempted) return false;
  const auto dir = r.acc.save_state();
  if (preempted) {
    bar.close();
    r.acc.print("preempted: saved", dir, "at epoch", epoch, "after", r.train_loader.position().batches,
                "batches; exiting with code", accelerate::kExitPreempted,
                "(resume with --resume_from_checkpoint latest)");
  }
  return preempted;
}

/// One epoch of training; the mean loss over every process, or nullopt when the run was preempted.
std::optional<double> train_epoch(Run& r, int64_t epoch) {
  r.net->train();
  accelerate::ProgressBar bar(r.acc.state(),
                              static_cast<int64_t>(r.train_loader.size()) - r.train_loader.position().batches,
                              {.description = "epoch " + std::to_string(epoch)});
  double loss_sum = 0;
  int64_t batches = 0;
  for (auto& batch : r.train_loader) {
    auto step = r.acc.accumulate(r.net);
    torch::Tensor loss;
    {
      auto autocast = r.acc.autocast();
      loss = torch::cross_entropy_loss(r.net->forward(batch.data), batch.target);
    }
    r.acc.backward(loss);
    r.opt.step();
    r.scheduler.step();
    r.opt.zero_grad();
    loss_sum += loss.item<double>();
    bar.update();
    if (++batches % 50 == 0) bar.set_postfix({{"loss", loss.item<double>()}});
    if (r.acc.sync_gradients() && r.profiler) r.profiler->step();
    if (r.acc.sync_gradients() && save_if_due(r, epoch, bar)) return std::nullopt;
  }
  bar.close();
  if (r.args.checkpointing_steps == "epoch") r.acc.save_state();
  const auto mean = torch::tensor(loss_sum / static_cast<double>(std::max<int64_t>(batches, 1)), torch::kDouble);
  return r.acc.reduce(mean, accelerate::Reduction::Mean).item<double>();
}

/// Trains to --epochs (from where a resumed checkpoint left off); the exit code.
int train(Run& r) {
  double final_accuracy = -1;
  int64_t test_samples = 0;
  for (int64_t epoch = r.train_loader.epoch(); epoch < r.args.epochs; ++epoch) {
    const auto start = std::chrono::steady_clock::now();
    const auto mean_loss = train_epoch(r, epoch);
    if (!mean_loss) {
      r.acc.end_training();
      return accelerate::kExitPreempted;
    }
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    std::tie(final_accuracy, test_samples) = evaluate(r.acc, r.net, r.test_loader);
    const double lr = r.scheduler.get_last_lr()[0];
    r.acc.print("epoch", epoch, "train_loss", *mean_loss, "accuracy", final_accuracy, "lr", lr, "seconds", seconds);
    r.acc.log({{"train_loss", *mean_loss}, {"accuracy", final_accuracy}, {"lr", lr}, {"epoch", epoch}}, epoch);
  }
  if (final_accuracy < 0) std::tie(final_accuracy, test_samples) = evaluate(r.acc, r.net, r.test_loader);
  r.acc.print("test_samples", test_samples);
  if (r.acc.is_main_process()) std::cout << "test_accuracy=" << final_accuracy << std::endl;
  r.acc.end_training();
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  return accelerate::run_main("fashion_mnist: ", [&] {
    const Args args = parse(argc, argv);
    accelerate::Accelerator acc(options_for(args));
    report_start(acc, args);
    fashion_mnist::Splits data;
    {
      auto first = acc.main_process_first();  // rank 0 unpacks the data once, the others then read it
      data = fashion_mnist::load(args.data_dir, args.cache_dir, args.limit);
    }
    accelerate::DataLoader train_data(data.train, {.batch_size = args.batch_size, .shuffle = true});
    accelerate::DataLoader test_data(data.test, {.batch_size = 256});
    fashion_mnist::Net model;
    torch::optim::AdamW optimizer(model->parameters(), torch::optim::AdamWOptions(args.lr));
    const int64_t steps_per_epoch = (data.train->size() + args.batch_size - 1) / args.batch_size;  // unprepared
    auto schedule = accelerate::get_scheduler(
        "cosine", optimizer, {.num_warmup_steps = 50, .num_training_steps = args.epochs * steps_per_epoch});
    auto [net, opt, train_loader, test_loader, scheduler] =
        acc.prepare(model, optimizer, train_data, test_data, schedule);
    Run run{acc, args, net, opt, train_loader, test_loader, scheduler};
    if (args.profile) {  // optimizer steps 2 to 4 (after one step's wait and one of warm-up), one trace per rank
      const auto dir = std::filesystem::path(args.output_dir.empty() ? "." : args.output_dir) / "profile";
      run.profiler.emplace(
          acc.profile({.schedule_option = accelerate::ProfileSchedule{.wait = 1, .warmup = 1, .active = 3, .repeat = 1},
                       .output_trace_dir = dir.string()}));
    }
    if (!args.checkpointing_steps.empty() && args.checkpointing_steps != "epoch") {
      run.save_every = std::stoll(args.checkpointing_steps);
    }
    if (const auto from = acc.resume_from_checkpoint()) {
      acc.print("resumed from", *from, "at epoch", train_loader.epoch(), "after", train_loader.position().batches,
                "batches of it");
    }
    return train(run);
  });
}
