// A GPT-2-style byte-level language model trained on Shakespeare's plays and poems, the same loop on one process,
// N CPU processes or GPUs; the result loads in Python as transformers' GPT2LMHeadModel.
//   accelerate-cpp launch --num_processes 2 --cpu build/bin/gpt
// The token files come from scripts/setup.sh (train.bin, val.bin: one uint16 id per byte). See --help.
#include <accelerate/accelerate.hpp>

#include <torch/torch.h>

#include <CLI/CLI.hpp>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <cstdlib>
#include <iostream>
#include <optional>
#include <tuple>
#include <type_traits>

#include <nlohmann/json.hpp>

#include "gpt.hpp"

namespace {

struct Args {
  gpt::Config model;
  int64_t batch_size = 16;  // sequences per process and micro-step
  int64_t max_steps = 2000;
  int64_t eval_interval = 250, eval_batches = 20, log_interval = 10;
  double lr = 2e-3, weight_decay = 0.1, grad_clip = 1.0;
  int64_t warmup_steps = 100;
  std::optional<int> gradient_accumulation_steps;
  std::optional<std::string> mixed_precision;
  std::optional<int> zero_stage;
  bool no_prefetch = false;  // ZeRO-3: each block's all-gather waits where it is needed
  bool profile = false;
  int num_workers = 1;
  bool pin_memory = false;
  uint64_t seed = 1337;
  std::string data_dir;
  std::string output_dir;
  int64_t checkpointing_steps = 0;
  std::string resume_from_checkpoint;
  bool with_tracking = false;
  std::string report_to = "all";
  int64_t sample_tokens = 200;
  std::string init_from;                // a transformers GPT-2 folder: the architecture and the starting weights
  std::vector<std::string> init_notes;  // what of its config.json the model leaves out
};

/// The optimizer steps done so far, saved with each checkpoint (register_for_checkpointing).
struct Progress final : accelerate::Checkpointable {
  int64_t steps = 0;
  int processes = 1;  // of the run that saved it
  std::string state_json() const override { return nlohmann::json{{"steps", steps}, {"processes", processes}}.dump(); }
  void load_state(const std::map<std::string, at::Tensor>&, const std::string& json) override {
    const auto j = nlohmann::json::parse(json);
    steps = j.at("steps").get<int64_t>();
    processes = j.value("processes", processes);
  }
};

// CLI11's PositiveNumber prints the whole range of a double on a bad value; these say what is wanted.
/// Accepts a value that parses whole as T (std::stoll or std::stod) and for which `ok` holds.
template <class T>
CLI::Validator accepts(bool (*ok)(T), const std::string& wanted, const std::string& description) {
  return CLI::Validator(
      [ok, wanted](std::string& v) -> std::string {
        size_t used = 0;
        try {
          T x;
          if constexpr (std::is_integral_v<T>) {
            x = std::stoll(v, &used);
          } else {
            x = std::stod(v, &used);
          }
          if (used == v.size() && ok(x)) return {};
        } catch (const std::exception&) {
        }
        return "needs " + wanted + ", not '" + v + "'";
      },
      description);
}
const CLI::Validator kPositive = accepts<int64_t>([](int64_t x) { return x >= 1; }, "a whole number >= 1", "INT >= 1");
const CLI::Validator kNonNegative =
    accepts<int64_t>([](int64_t x) { return x >= 0; }, "a whole number >= 0", "INT >= 0");
const CLI::Validator kPositiveReal =
    accepts<double>([](double x) { return std::isfinite(x) && x > 0; }, "a finite number > 0", "REAL > 0");
const CLI::Validator kClip = accepts<double>([](double x) { return x == 0 || (std::isfinite(x) && x > 0); },
                                             "0 (off) or a finite number > 0", "0 or REAL > 0");

/// What the run reports besides its loss lines: trackers, a sample of text, a profiler trace.
void add_output_flags(CLI::App& app, Args& a) {
  app.add_flag("--with_tracking", a.with_tracking, "log to the trackers of --report_to");
  app.add_option("--report_to", a.report_to, "tensorboard, jsonl, csv, wandb, mlflow or all (the three file trackers)")
      ->capture_default_str();
  app.add_flag_callback(
      "--use_wandb", [&a] { a.with_tracking = true, a.report_to = "wandb"; },
      "log to Weights & Biases (--with_tracking --report_to wandb; WANDB_MODE=offline needs no account)");
  app.add_option("--sample_tokens", a.sample_tokens, "bytes of text the main process generates at the end")
      ->capture_default_str()
      ->check(kNonNegative);
  app.add_flag("--profile", a.profile,
               "trace optimizer steps 2-4 with LibTorch's profiler: <output_dir>/profile/profile_<rank>.json (Chrome / "
               "Perfetto)");
}

void add_flags(CLI::App& app, Args& a) {
  app.add_option("--n_layer", a.model.n_layer, "transformer blocks")->capture_default_str()->check(kPositive);
  app.add_option("--n_head", a.model.n_head, "attention heads")->capture_default_str()->check(kPositive);
  app.add_option("--n_embd", a.model.n_embd, "embedding width")->capture_default_str()->check(kPositive);
  app.add_option("--block_size", a.model.block_size, "context length (tokens)")
      ->capture_default_str()
      ->check(kPositive);
  app.add_option("--zero_stage", a.zero_stage,
                 "ZeRO stage: 0 replicated, 1 optimizer state sharded, 2 gradients too, 3 parameters too (default: "
                 "launch's, else 0)")
      ->check(accepts<int64_t>([](int64_t x) { return x >= 0 && x <= 3; }, "0, 1, 2 or 3", "0..3"));
  app.add_flag("--no_prefetch", a.no_prefetch,
               "ZeRO stage 3: do not start the next block's all-gather while a block runs (HF's forward_prefetch "
               "and backward_prefetch off)");
  app.add_flag("--gradient_checkpointing", a.model.gradient_checkpointing,
               "recompute each block's activations in backward (less memory, about a third more compute)");
  app.add_option("--batch_size", a.batch_size, "sequences per process and micro-step")
      ->capture_default_str()
      ->check(kPositive);
  app.add_option("--max_steps", a.max_steps, "optimizer steps")->capture_default_str()->check(kPositive);
  app.add_option("--eval_interval", a.eval_interval, "optimizer steps between validation losses")
      ->capture_default_str()
      ->check(kPositive);
  app.add_option("--eval_batches", a.eval_batches, "validation batches per interval (the final one uses all)")
      ->capture_default_str()
      ->check(kPositive);
  app.add_option("--log_interval", a.log_interval, "optimizer steps between step=/loss= lines")
      ->capture_default_str()
      ->check(kPositive);
  app.add_option("--lr", a.lr, "peak learning rate (warmup, then cosine decay)")
      ->capture_default_str()
      ->check(kPositiveReal);
  app.add_option("--warmup_steps", a.warmup_steps, "optimizer steps of linear warmup")
      ->capture_default_str()
      ->check(kNonNegative);
  app.add_option("--weight_decay", a.weight_decay, "AdamW's, on matrices only")->capture_default_str();
  app.add_option("--grad_clip", a.grad_clip, "max gradient norm (0: off)")->capture_default_str()->check(kClip);
  app.add_option("--gradient_accumulation_steps", a.gradient_accumulation_steps);
  app.add_option("--mixed_precision", a.mixed_precision, "no, fp16 (GPU), bf16");
  app.add_option("--num_workers", a.num_workers, "loader threads")->capture_default_str()->check(kNonNegative);
  app.add_flag("--pin_memory", a.pin_memory, "page-locked batches, copied to the GPU beside the compute");
  app.add_option("--seed", a.seed)->capture_default_str()->check(kNonNegative);
  app.add_option("--data_dir", a.data_dir, "folder with train.bin and val.bin (setup's data cache by default)");
  app.add_option("--output_dir", a.output_dir, "checkpoints, trackers and the final model (a transformers folder)");
  app.add_option("--checkpointing_steps", a.checkpointing_steps, "save_state every N optimizer steps (0: never)")
      ->check(kNonNegative);
  app.add_option("--resume_from_checkpoint", a.resume_from_checkpoint, "a checkpoint folder, or latest");
  app.add_option("--init_from", a.init_from,
                 "fine-tune a transformers GPT-2 folder (config.json + safetensors, as save_pretrained writes): its "
                 "architecture and weights; --block_size may shorten the context");
  add_output_flags(app, a);
}

std::string default_data_dir() {
  if (const char* d = std::getenv("ACCELERATE_CPP_DATA"); d && *d) return std::string(d) + "/shakespeare";
  const char* home = std::getenv("HOME");
  return std::string(home ? home : ".") + "/.cache/accelerate-cpp/data/shakespeare";
}

const char* const kDataHint = "scripts/setup.sh writes byte-level token files with scripts/prepare_shakespeare.py";

/// `name` in --data_dir as token windows, with a first check that its ids fit the byte vocabulary (a file of
/// another tokenizer, e.g. GPT-2's BPE up to 50256, would otherwise fail deep inside the embedding; the training
/// loop's catch names such an id found later).
std::shared_ptr<accelerate::TokenDataset> open_tokens(const Args& args, const std::string& name) {
  const auto path = args.data_dir + "/" + name;
  ACCELERATE_CHECK(std::filesystem::exists(path), ConfigError, path, " does not exist: pass --data_dir (a folder with ",
                   "train.bin and val.bin) or run scripts/setup.sh, which prepares the Shakespeare token files.");
  auto data = std::make_shared<accelerate::TokenDataset>(
      path, accelerate::TokenDatasetOptions{.block_size = args.model.block_size});
  const auto probe = data->get_batch({0, data->size() / 2, data->size() - 1}).at("input_ids");
  const int64_t largest = probe.max().item<int64_t>();
  ACCELERATE_CHECK(largest < args.model.vocab_size, ConfigError, path, " holds token ids up to ", largest,
                   ", outside this model's ", args.model.vocab_size, "-byte vocabulary: it needs one byte per token (",
                   kDataHint, ").");
  return data;
}

/// Mean next-token loss over the validation loader: per-sequence losses of every rank through gather_for_metrics
/// (which drops the samples that padded the last round), at most `max_batches` batches (0: all).
double validation_loss(accelerate::Accelerator& acc, gpt::Gpt model, accelerate::DataLoader& loader,
                       int64_t max_batches) {
  model->eval();
  torch::NoGradGuard no_grad;
  double sum = 0;
  int64_t count = 0, batches = 0;
  for (auto& batch : loader) {
    torch::Tensor losses;
    {
      auto autocast = acc.autocast();
      losses = model->sequence_loss(batch.at("input_ids"), batch.at("labels"));
    }
    auto all = acc.gather_for_metrics(losses);
    sum += all.sum().item<double>();
    count += all.size(0);
    if (max_batches > 0 && ++batches == max_batches) break;
  }
  model->train();
  return sum / static_cast<double>(std::max<int64_t>(count, 1));
}

/// --init_from: the architecture comes from the folder's config.json; an architecture flag given beside it must
/// agree with it, --block_size may only shorten the context (default: the model's n_positions).
void apply_init_from(const CLI::App& app, Args& args) {
  auto hf = gpt::read_hf_gpt2_config(args.init_from);
  const std::tuple<const char*, int64_t, int64_t> given[] = {{"--n_layer", args.model.n_layer, hf.config.n_layer},
                                                             {"--n_head", args.model.n_head, hf.config.n_head},
                                                             {"--n_embd", args.model.n_embd, hf.config.n_embd}};
  for (const auto& [flag, value, from_config] : given) {
    ACCELERATE_CHECK(app.count(flag) == 0 || value == from_config, ConfigError, flag, " ", value, " differs from ",
                     args.init_from, "/config.json's ", from_config, ": leave it out with --init_from.");
  }
  if (app.count("--block_size") > 0) hf.config.block_size = args.model.block_size;
  hf.config.gradient_checkpointing = args.model.gradient_checkpointing;
  args.model = hf.config;
  args.init_notes = std::move(hf.notes);
}

/// Reads the flags into `args`; an exit code when that ends the program (--help: 0; a bad flag: 2), else -1.
int parse(int argc, char** argv, Args& args) {
  CLI::App app{"GPT-2-style byte-level language model on Shakespeare (accelerate-cpp example)"};
  add_flags(app, args);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int code = app.exit(e);  // prints the help or the error; CLI11's own codes (105, ...) mean nothing to a shell
    return code == 0 ? 0 : accelerate::kExitUsage;
  }
  if (args.data_dir.empty()) args.data_dir = default_data_dir();
  if (!args.init_from.empty()) apply_init_from(app, args);
  ACCELERATE_CHECK(args.checkpointing_steps == 0 || !args.output_dir.empty(), ConfigError,
                   "--checkpointing_steps needs --output_dir (where the checkpoints go).");
  ACCELERATE_CHECK(args.resume_from_checkpoint != "latest" || !args.output_dir.empty(), ConfigError,
                   "--resume_from_checkpoint latest needs --output_dir (whose checkpoints/ it looks in).");
  return -1;
}

accelerate::AcceleratorOptions options_for(const Args& args) {
  accelerate::AcceleratorOptions options;
  options.mixed_precision = args.mixed_precision;
  options.gradient_accumulation_steps = args.gradient_accumulation_steps;
  options.zero_stage = args.zero_stage;
  options.fsdp = {.forward_prefetch = !args.no_prefetch, .backward_prefetch = !args.no_prefetch};
  options.project = {.project_dir = args.output_dir,
                     .automatic_checkpoint_naming = true,
                     .resume_from_checkpoint = args.resume_from_checkpoint};
  if (args.with_tracking) options.log_with = {args.report_to};
  options.seed = args.seed;
  return options;
}

/// The prepared objects of the run and its progress.
struct Run {
  accelerate::Accelerator& acc;
  const Args& args;
  gpt::Gpt net;
  accelerate::AcceleratedOptimizer& opt;
  accelerate::DataLoader& train_loader;
  accelerate::DataLoader& val_loader;
  accelerate::AcceleratedScheduler& scheduler;
  Progress& progress;
  torch::Tensor loss_sum;  // summed on the device: reading a loss every step would make a GPU wait for the CPU
  int64_t loss_count = 0;
  int64_t grad_bytes = 0;                            // gradient bytes held after the last sync backward
  std::optional<accelerate::ThroughputMeter> meter;  // tokens/s and MFU between two loss lines
};

/// The meter of tokens/s and MFU: 6N + 12·L·H·Q·T FLOPs per token against the device's peak in the compute dtype
/// (on a CPU, a GEMM probe of this process).
accelerate::ThroughputMeter make_meter(accelerate::Accelerator& acc, gpt::GptImpl& model) {
  const auto& c = model.config;
  int64_t n = 0;  // every parameter but the position table (a lookup); wte is also the output head (tied)
  for (const auto& p : model.parameters()) n += p.numel();
  n -= model.wpe->weight.numel();
  const double per_token = accelerate::transformer_flops_per_token({.parameters = n,
                                                                    .layers = c.n_layer,
                                                                    .heads = c.n_head,
                                                                    .head_dim = c.n_embd / c.n_head,
                                                                    .seq_len = c.block_size});
  const auto precision = acc.mixed_precision();
  const auto dtype = precision == accelerate::MixedPrecision::Bf16   ? torch::kBFloat16
                     : precision == accelerate::MixedPrecision::Fp16 ? torch::kHalf
                                                                     : torch::kFloat;
  const auto peak = accelerate::peak_flops(acc.device(), dtype);
  if (!peak) acc.print("gpt: note: no peak FLOP/s known for this GPU: mfu= stays 0.");
  return accelerate::ThroughputMeter(
      {.flops_per_token = per_token, .peak_flops = peak.value_or(0), .num_processes = acc.num_processes()});
}

/// resume_from_checkpoint, then the run's hyper-parameters to the trackers and the model's size.
void start(Run& r) {
  auto& acc = r.acc;
  if (const auto from = acc.resume_from_checkpoint()) {
    // The schedule counts optimizer steps x processes; a resume on another number of processes keeps its place
    // in optimizer steps (the checkpoint's count is in the old processes' units, as HF saves it).
    if (r.progress.processes != acc.num_processes()) {
      auto& s = r.scheduler.scheduler();
      s.set_last_epoch(s.last_epoch() / r.progress.processes * acc.num_processes());
      r.progress.processes = acc.num_processes();  // the next checkpoint's count is in this run's units
    }
    acc.print("resumed from", *from, "at step", r.progress.steps);
    if (r.progress.steps >= r.args.max_steps) {
      acc.print("gpt: the checkpoint is at step", r.progress.steps, ">= --max_steps", r.args.max_steps,
                ": nothing left to train; raise --max_steps to continue.");
    }
  }
  const auto& m = r.args.model;
  if (r.args.with_tracking) {
    acc.init_trackers("gpt", {{"n_layer", m.n_layer},
                              {"n_embd", m.n_embd},
                              {"block_size", m.block_size},
                              {"batch_size", r.args.batch_size},
                              {"lr", r.args.lr},
                              {"num_processes", acc.num_processes()}});
  }
  int64_t parameters = 0;
  for (const auto& p : r.net->parameters()) parameters += p.numel();
  acc.print("model:", r.net->parameters().size(), "tensors,", parameters, "parameters; tokens per optimizer step:",
            r.args.batch_size * m.block_size * acc.num_processes() * acc.gradient_accumulation_steps());
}

/// One micro-step: forward under autocast, backward, clipping on sync steps, the optimizer and the schedule.
void micro_step(Run& r, const accelerate::Batch& batch) {
  auto& acc = r.acc;
  torch::Tensor loss;
  {
    auto autocast = acc.autocast();
    loss = r.net->loss(batch.at("input_ids"), batch.at("labels"));
  }
  acc.backward(loss);
  // Every step holds the same gradients: read them once, at the last optimizer step.
  if (acc.sync_gradients() && r.progress.steps + 1 == r.args.max_steps) {
    r.grad_bytes = accelerate::gradient_bytes(r.net->parameters(), r.opt.optimizer());
  }
  if (acc.sync_gradients() && r.args.grad_clip > 0) acc.clip_grad_norm_(r.net->parameters(), r.args.grad_clip);
  r.opt.step();
  r.scheduler.step();
  r.opt.zero_grad();
  r.loss_sum += loss.detach().to(torch::kFloat);
  ++r.loss_count;
  const auto& ids = batch.at("input_ids");
  r.meter->update(ids.numel(), ids.size(0));
}

/// After an optimizer step: the loss line every --log_interval steps, a validation loss every --eval_interval.
void log_progress(Run& r, bool last) {
  auto& acc = r.acc;
  const auto step = std::to_string(r.progress.steps);
  if (r.progress.steps % r.args.log_interval == 0 || last) {
    const double mean = acc.reduce(r.loss_sum / static_cast<double>(r.loss_count), "mean").item<double>();
    const double lr = r.scheduler.get_last_lr()[0];
    const auto speed = r.meter->compute();  // after the loss's reduce: the queued work is done
    acc.print("step=" + step, "loss=" + std::to_string(mean), "lr=" + std::to_string(lr),
              "tokens_per_s=" + std::to_string(static_cast<int64_t>(speed.tokens_per_s)),
              "mfu=" + std::to_string(speed.mfu));
    if (r.args.with_tracking) {
      acc.log({{"train_loss", mean}, {"lr", lr}, {"tokens_per_s", speed.tokens_per_s}, {"mfu", speed.mfu}},
              r.progress.steps);
    }
    r.loss_sum.zero_(), r.loss_count = 0;
  }
  if (r.progress.steps % r.args.eval_interval == 0 && !last) {
    const double v = validation_loss(acc, r.net, r.val_loader, r.args.eval_batches);
    acc.print("step=" + step, "val_loss(" + std::to_string(r.args.eval_batches), "batches)=" + std::to_string(v));
    if (r.args.with_tracking) acc.log({{"val_loss", v}}, r.progress.steps);
  }
}

/// A checkpoint every --checkpointing_steps; on a preemption notice every process saves at this same step (once)
/// and the run ends as resumable. Returns whether it was preempted.
bool save_if_due(Run& r, bool last) {
  auto& acc = r.acc;
  const bool scheduled = r.args.checkpointing_steps > 0 && r.progress.steps % r.args.checkpointing_steps == 0;
  const bool preempted = !r.args.output_dir.empty() && !last && acc.check_preemption();
  const auto dir = scheduled || preempted ? acc.save_state() : std::string();
  if (preempted) {
    acc.print("preempted: saved", dir, "at step", std::to_string(r.progress.steps) + "; exiting with code",
              accelerate::kExitPreempted, "(resume with --resume_from_checkpoint latest)");
  }
  return preempted;
}

/// Where --profile writes its traces: <output_dir>/profile, else ./profile.
std::string profile_dir(const Args& args) {
  return (std::filesystem::path(args.output_dir.empty() ? "." : args.output_dir) / "profile").string();
}

/// Trains to --max_steps optimizer steps; whether it was preempted.
bool train(Run& r) {
  // --profile: optimizer steps 2 to 4 of this run (after one step's wait and one of warm-up) in one trace per rank.
  std::optional<accelerate::Profiler> profiler;
  if (r.args.profile && r.args.max_steps - r.progress.steps < 5) {
    r.acc.print("gpt: note: --profile traces this run's optimizer steps 2 to 4;", r.args.max_steps - r.progress.steps,
                "step(s) are left, so the trace holds fewer.");
  }
  if (r.args.profile) {
    profiler.emplace(
        r.acc.profile({.schedule_option = accelerate::ProfileSchedule{.wait = 1, .warmup = 1, .active = 3, .repeat = 1},
                       .output_trace_dir = profile_dir(r.args)}));
  }
  while (r.progress.steps < r.args.max_steps) {
    for (auto& batch : r.train_loader) {
      auto step = r.acc.accumulate(r.net);
      micro_step(r, batch);
      if (!r.acc.sync_gradients()) continue;
      ++r.progress.steps;
      if (profiler) profiler->step();
      const bool last = r.progress.steps == r.args.max_steps;
      log_progress(r, last);
      if (save_if_due(r, last)) return true;
      if (last) break;
    }
  }
  return false;
}

/// The model as a transformers folder (--output_dir) and a sample of text (--sample_tokens), by the main process.
void save_and_sample(Run& r) {
  if (!r.args.output_dir.empty()) gpt::save_hf_gpt2(*r.net, r.args.output_dir + "/model");
  if (r.args.sample_tokens <= 0) return;
  auto generator = at::make_generator<at::CPUGeneratorImpl>(r.args.seed);
  const std::string prompt = "ROMEO:";
  auto ids = torch::tensor(std::vector<int64_t>(prompt.begin(), prompt.end()), torch::kLong).to(r.acc.device());
  r.net->eval();
  auto out = r.net->generate(ids, r.args.sample_tokens, 0.8, generator).cpu();
  std::string text;
  for (int64_t i = 0; i < out.size(0); ++i) text += static_cast<char>(out[i].item<int64_t>());
  std::cout << "sample:\n" << text << std::endl;
}

/// The final validation loss, the model as a transformers folder, a sample of text, and what each rank holds (for
/// comparing ZeRO stages and --gradient_checkpointing: peak RSS on the CPU, the caching allocator's peak on a GPU).
void finish(Run& r, double seconds) {
  auto& acc = r.acc;
  const double val_loss = validation_loss(acc, r.net, r.val_loader, 0);
  acc.print("val_loss=" + std::to_string(val_loss));
  acc.print("train_seconds=" + std::to_string(seconds));
  if (r.args.with_tracking) acc.log({{"final_val_loss", val_loss}}, r.progress.steps);
  // The memory line's figures are those held during training: taken before the model is gathered whole.
  const int64_t param_bytes = accelerate::parameter_bytes(r.net->parameters(), r.opt.optimizer());
  const int64_t optimizer_bytes = accelerate::optimizer_state_bytes(r.opt.optimizer());
  if (!r.args.output_dir.empty() || r.args.sample_tokens > 0) {
    // Training is over: the optimizer state makes room for the whole model, which ZeRO stage 3 gathers on every
    // process so that the main process can save and sample alone.
    r.opt.optimizer().state().clear();
    auto whole = acc.summon_full_params(r.net, /*writeback=*/false);
    if (acc.is_main_process()) save_and_sample(r);
  }
  std::cout << "memory: rank=" << acc.process_index() << " parameter_bytes=" << param_bytes
            << " optimizer_state_bytes=" << optimizer_bytes << " gradient_bytes=" << r.grad_bytes
            << " peak_bytes=" << accelerate::peak_memory_bytes(acc.device()) << std::endl;
}

/// --init_from's weights, on every process: each maps the files and copies what it holds (at stage 3: its shards).
void init_from(accelerate::Accelerator& acc, const Args& args, gpt::GptImpl& model) {
  gpt::load_hf_gpt2(model, args.init_from);
  acc.print("initialised from", args.init_from);
  for (const auto& note : args.init_notes) acc.print("gpt: note:", note);
}

int run(const Args& args) {
  accelerate::Accelerator acc(options_for(args));
  accelerate::DataLoader train_data(open_tokens(args, "train.bin"), {.batch_size = args.batch_size,
                                                                     .shuffle = true,
                                                                     .seed = static_cast<int64_t>(args.seed),
                                                                     .num_workers = args.num_workers,
                                                                     .pin_memory = args.pin_memory});
  accelerate::DataLoader val_data(open_tokens(args, "val.bin"),
                                  {.batch_size = args.batch_size, .num_workers = args.num_workers});
  // At ZeRO stage 3 a pretrained model's blocks are built without weights and each process loads only its shard
  // of them after prepare: no process holds the whole model.
  auto config = args.model;
  config.empty_blocks = !args.init_from.empty() && acc.zero_stage() == 3;
  gpt::Gpt model(config);
  if (!args.init_from.empty() && !config.empty_blocks) init_from(acc, args, *model);
  torch::optim::AdamW optimizer(model->param_groups(args.lr, args.weight_decay), torch::optim::AdamWOptions(args.lr));
  // As HF's no_trainer scripts: the prepared scheduler steps once per process and optimizer step.
  auto schedule = accelerate::get_scheduler("cosine", optimizer,
                                            {.num_warmup_steps = args.warmup_steps * acc.num_processes(),
                                             .num_training_steps = args.max_steps * acc.num_processes()});
  auto [net, opt, train_loader, val_loader, scheduler] = acc.prepare(model, optimizer, train_data, val_data, schedule);
  if (config.empty_blocks) init_from(acc, args, *net);
  Progress progress;
  progress.processes = acc.num_processes();
  acc.register_for_checkpointing(progress);
  Run r{acc,       args,         net,
        opt,       train_loader, val_loader,
        scheduler, progress,     torch::zeros({}, torch::TensorOptions(torch::kFloat).device(acc.device()))};
  start(r);
  r.meter.emplace(make_meter(acc, *net));
  const auto began = std::chrono::steady_clock::now();
  if (train(r)) {
    acc.end_training();
    return accelerate::kExitPreempted;
  }
  finish(r, std::chrono::duration<double>(std::chrono::steady_clock::now() - began).count());
  acc.wait_for_everyone();
  acc.end_training();
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  return accelerate::run_main("gpt: ", [&] {
    Args args;
    if (const int code = parse(argc, argv, args); code >= 0) return code;
    try {
      return run(args);
    } catch (const c10::IndexError& e) {
      // An id past the embedding: a token file of another tokenizer that open_tokens()'s probe did not catch.
      throw accelerate::ConfigError(accelerate::detail::concat(
          "a token id is outside the ", args.model.vocab_size, "-token vocabulary (", e.what_without_backtrace(),
          "): --data_dir needs one byte per token (", kDataHint, ")."));
    }
  });
}
