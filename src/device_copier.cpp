#include "detail/device_copier.hpp"

#include <c10/core/StreamGuard.h>
#include <utility>
#include <c10/core/impl/VirtualGuardImpl.h>

namespace accelerate::detail {

DeviceCopier::DeviceCopier(c10::Device device, bool overlap, bool non_blocking)
    : device_(device), non_blocking_(non_blocking) {
  if (overlap && device.type() != c10::kCPU) {
    c10::impl::VirtualGuardImpl impl(device.type());
    side_ = impl.getStreamFromGlobalPool(device);
    copied_.emplace(device.type());
  }
}

void DeviceCopier::start(Batch host) {
  if (!side_) {
    pending_ = std::move(host);
    return;
  }
  // New device memory, allocated for the side stream; memory that earlier batches used on the compute stream is
  // reused only after the compute stream is past them (take()'s record_stream).
  c10::StreamGuard on_side(*side_);
  pending_ = send_to_device(host, device_, /*non_blocking=*/true);
  copied_->record(*side_);
}

Batch DeviceCopier::take() {
  if (error_) std::rethrow_exception(std::exchange(error_, nullptr));
  Batch batch = std::move(*pending_);
  pending_.reset();
  if (!side_) return device_.type() == c10::kCPU ? batch : send_to_device(batch, device_, non_blocking_);
  c10::impl::VirtualGuardImpl impl(device_.type());
  const c10::Stream compute = impl.getStream(device_);
  copied_->block(compute);
  return apply(batch, [&](const at::Tensor& t) {
    t.record_stream(compute);
    return t;
  });
}

}  // namespace accelerate::detail
