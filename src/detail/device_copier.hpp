// Copies the loader's batches from the host to the training device. With pinned memory on a device with streams
// (CUDA), batch k+1 is copied on a side stream while step k computes: the pattern of NVIDIA's apex ImageNet
// data_prefetcher. PyTorch's pin_memory + non_blocking=True alone (HF's default path) queues the copy on the
// compute stream, behind step k's kernels, so it frees the CPU but does not overlap the copy with compute.
#pragma once

#include <exception>
#include <optional>

#include <accelerate/batch.hpp>
#include <c10/core/Event.h>
#include <c10/core/Stream.h>

namespace accelerate::detail {

class DeviceCopier {
 public:
  /// `device`: where batches go (CPU: they are handed out as loaded). `overlap`: copy on a side stream (needs
  /// pinned batches and a device with streams); otherwise take() copies on the current stream, non-blocking when
  /// `non_blocking`.
  DeviceCopier(c10::Device device, bool overlap, bool non_blocking);
  DeviceCopier(const DeviceCopier&) = delete;
  DeviceCopier& operator=(const DeviceCopier&) = delete;

  /// Whether start() begins the copy (so the loader should start the next batch as soon as it hands one out).
  bool overlaps() const { return side_.has_value(); }
  /// Takes `host` for the next take(); with overlap, starts its copy on the side stream now.
  void start(Batch host);
  bool pending() const { return pending_.has_value() || error_ != nullptr; }
  /// Loading the next batch failed: take() rethrows `error` in its turn.
  void fail(std::exception_ptr error) { error_ = std::move(error); }
  /// The batch given to the last start(), on the device and safe to use on the current stream: the current stream
  /// waits for its copy, and each tensor is marked as used there (record_stream), so that the caching allocator
  /// does not give its memory to a later copy on the side stream while step k still reads it.
  Batch take();
  /// Drops a started batch (an epoch left early).
  void reset() {
    pending_.reset();
    error_ = nullptr;
  }

 private:
  c10::Device device_;
  bool non_blocking_;
  std::optional<c10::Stream> side_;
  std::optional<c10::Event> copied_;
  std::optional<Batch> pending_;
  std::exception_ptr error_;
};

}  // namespace accelerate::detail
