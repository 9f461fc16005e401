// Built instead of nccl_backend.cpp and cuda/device_info.cpp when torch has no CUDA.
#include "detail/communicator.hpp"

namespace accelerate::detail {
std::unique_ptr<CommunicationBackend> make_nccl_backend() { return nullptr; }
}  // namespace accelerate::detail

#include "detail/device_info.hpp"

namespace accelerate::detail {
bool cuda_built() { return false; }
std::string nccl_version() { return ""; }
std::vector<GpuInfo> gpus() { return {}; }
}  // namespace accelerate::detail
