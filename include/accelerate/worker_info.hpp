// What a dataset's get() or a collate can ask about the loading thread it runs on (PyTorch's get_worker_info),
// and the generator to draw augmentation randomness from.
#pragma once

#include <cstdint>

#include <ATen/core/Generator.h>

namespace accelerate {

struct WorkerInfo {
  int id = 0;           ///< 0 .. num_workers-1
  int num_workers = 0;  ///< DataLoaderOptions::num_workers
  /// PyTorch's seed of this worker: base_seed + id, base_seed drawn from the loader's generator once per epoch.
  uint64_t seed = 0;
};

/// The worker this thread is, or nullptr outside a loader's workers (the calling thread with num_workers = 0;
/// PyTorch returns None there too).
const WorkerInfo* get_worker_info();

/// The generator a dataset's get() and a collate should draw random augmentation from. Inside a loader it is
/// re-seeded for every batch from the epoch's base seed and the batch's index in the epoch, so the batches are
/// bitwise the same for 0, 1 or N workers and after a resume mid-epoch (a stricter rule than PyTorch's per-worker
/// stream, whose numbers depend on the worker count). Outside a loader: torch's default CPU generator.
at::Generator data_generator();

}  // namespace accelerate
