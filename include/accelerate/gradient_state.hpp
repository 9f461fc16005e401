// GradientState: what the training loop's pieces share about the current step (HF's GradientState), owned by
// the Accelerator and handed by reference to the data loaders, optimizers and schedulers it prepares.
#pragma once

#include <cstdint>
#include <vector>

namespace accelerate {

class GradientState {
 public:
  /// Micro-steps per optimizer step (gradient accumulation).
  int num_steps() const { return num_steps_; }
  /// The last batch of a prepared data loader always syncs and steps (HF's sync_with_dataloader).
  bool sync_with_dataloader() const { return sync_with_dataloader_; }
  /// Whether this micro-step all-reduces gradients and steps the optimizer. True outside accumulate().
  bool sync_gradients() const { return sync_gradients_; }

  // Set by the Accelerator that owns this state (its options, accumulate(), set_gradient_accumulation_steps).
  void set_num_steps(int steps) { num_steps_ = steps; }
  void set_sync_with_dataloader(bool sync) { sync_with_dataloader_ = sync; }
  void set_sync_gradients(bool sync) { sync_gradients_ = sync; }

  /// The innermost active prepared loader is on its last batch (set before that batch is yielded).
  bool end_of_dataloader() const { return !active_.empty() && active_.back().end; }
  /// Samples of the last global batch that are real (not padding): len % total_batch_size; -1 when unknown or
  /// drop_last; meaningful while end_of_dataloader().
  int64_t remainder() const { return active_.empty() ? -1 : active_.back().remainder; }
  bool in_dataloader() const { return !active_.empty(); }

  // Called by the data loaders.
  void begin_loader(const void* loader, int64_t remainder) { active_.push_back({loader, remainder, false}); }
  /// A stream learns its remainder only at its end (before the last batch is yielded).
  void set_remainder(const void* loader, int64_t remainder) {
    if (!active_.empty() && active_.back().loader == loader) active_.back().remainder = remainder;
  }
  void set_end_of_dataloader(const void* loader) {
    if (!active_.empty() && active_.back().loader == loader) active_.back().end = true;
  }
  void end_loader(const void* loader) {
    if (!active_.empty() && active_.back().loader == loader) active_.pop_back();
  }

 private:
  struct Active {
    const void* loader;
    int64_t remainder;
    bool end;
  };
  std::vector<Active> active_;
  int num_steps_ = 1;
  bool sync_with_dataloader_ = true;
  bool sync_gradients_ = true;
};

}  // namespace accelerate
