// Gloo: the CPU backend, and the CPU side of every group.
#include "detail/communicator.hpp"

#include <cstdlib>

#include <torch/csrc/distributed/c10d/PrefixStore.hpp>
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>

namespace accelerate::detail {

c10::intrusive_ptr<c10d::Backend> create_gloo(const c10::intrusive_ptr<c10d::Store>& store,
                                              const LaunchEnvironment& env, std::chrono::milliseconds timeout) {
  auto options = c10d::ProcessGroupGloo::Options::create(timeout);
  // As torch.distributed: GLOO_SOCKET_IFNAME picks the interface; else the host's name, which on a single
  // node we replace by loopback so that tests and laptops never depend on DNS.
  if (const char* ifname = std::getenv("GLOO_SOCKET_IFNAME"); ifname && *ifname) {
    options->devices.push_back(c10d::ProcessGroupGloo::createDeviceForInterface(ifname));
  } else if (env.num_nodes == 1) {
    options->devices.push_back(c10d::ProcessGroupGloo::createDeviceForHostname("127.0.0.1"));
  } else {
    options->devices.push_back(c10d::ProcessGroupGloo::createDefaultDevice());
  }
  options->threads = 2;
  return c10::make_intrusive<c10d::ProcessGroupGloo>(c10::make_intrusive<c10d::PrefixStore>("cpu/", store),
                                                     env.rank, env.world_size, options);
}

namespace {
class GlooBackend final : public CommunicationBackend {
 public:
  std::string name() const override { return "gloo"; }
  void attach(c10d::ProcessGroup& group, const c10::intrusive_ptr<c10d::Store>& store, const LaunchEnvironment& env,
              std::chrono::milliseconds timeout) const override {
    auto gloo = create_gloo(store, env, timeout);
    group.setDefaultBackend(c10d::ProcessGroup::BackendType::GLOO);
    group.setBackend(c10::DeviceType::CPU, c10d::ProcessGroup::BackendType::GLOO, gloo);
  }
};
}  // namespace

std::unique_ptr<CommunicationBackend> make_gloo_backend() { return std::make_unique<GlooBackend>(); }

}  // namespace accelerate::detail
