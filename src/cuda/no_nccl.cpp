// Built instead of nccl_backend.cpp when torch has no CUDA.
#include "detail/communicator.hpp"

namespace accelerate::detail {
std::unique_ptr<CommunicationBackend> make_nccl_backend() { return nullptr; }
}  // namespace accelerate::detail
