// Gloo: the CPU backend, and the CPU side of every group.
#include "detail/communicator.hpp"

#include <cstdlib>
#include <cstring>
#include <iostream>
#include <optional>

#include <arpa/inet.h>
#include <ifaddrs.h>
#include <netdb.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <torch/csrc/distributed/c10d/PrefixStore.hpp>
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>

namespace accelerate::detail {

namespace {

/// The network interface (name, address) this host would use to reach `host`: the source address of a UDP
/// "connection" (which sends nothing), matched against the interfaces' addresses. nullopt when unknown.
std::optional<std::pair<std::string, std::string>> interface_towards(const std::string& host) {
  addrinfo hints{};
  hints.ai_family = AF_INET;
  hints.ai_socktype = SOCK_DGRAM;
  addrinfo* found = nullptr;
  if (::getaddrinfo(host.c_str(), "9", &hints, &found) != 0 || !found) return std::nullopt;
  sockaddr_in local{};
  socklen_t length = sizeof local;
  const int fd = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  const bool ok = fd >= 0 && ::connect(fd, found->ai_addr, found->ai_addrlen) == 0 &&
                  ::getsockname(fd, reinterpret_cast<sockaddr*>(&local), &length) == 0;
  if (fd >= 0) ::close(fd);
  ::freeaddrinfo(found);
  if (!ok) return std::nullopt;
  ifaddrs* interfaces = nullptr;
  if (::getifaddrs(&interfaces) != 0) return std::nullopt;
  std::optional<std::pair<std::string, std::string>> out;
  for (ifaddrs* i = interfaces; i && !out; i = i->ifa_next) {
    if (!i->ifa_addr || i->ifa_addr->sa_family != AF_INET) continue;
    if (reinterpret_cast<sockaddr_in*>(i->ifa_addr)->sin_addr.s_addr != local.sin_addr.s_addr) continue;
    char text[INET_ADDRSTRLEN] = {};
    ::inet_ntop(AF_INET, &local.sin_addr, text, sizeof text);
    out = std::make_pair(std::string(i->ifa_name), std::string(text));
  }
  ::freeifaddrs(interfaces);
  return out;
}

}  // namespace

c10::intrusive_ptr<c10d::Backend> create_gloo(const c10::intrusive_ptr<c10d::Store>& store,
                                              const LaunchEnvironment& env, std::chrono::milliseconds timeout) {
  auto options = c10d::ProcessGroupGloo::Options::create(timeout);
  // As torch.distributed: GLOO_SOCKET_IFNAME picks the interface. Without it torch takes the address the host's
  // name resolves to, which in containers and network namespaces is often not routable from the other machines
  // (one side fails, the other waits for timeouts). We take loopback on one node, and on several the interface
  // that routes to MASTER_ADDR, which every machine must reach anyway.
  if (!env.gloo_socket_ifname.empty()) {
    options->devices.push_back(c10d::ProcessGroupGloo::createDeviceForInterface(env.gloo_socket_ifname));
  } else if (env.num_nodes == 1) {
    options->devices.push_back(c10d::ProcessGroupGloo::createDeviceForHostname("127.0.0.1"));
  } else if (const auto route = interface_towards(env.master_addr)) {
    if (env.local_rank == 0) {
      std::cerr << "accelerate: Gloo uses network interface " << route->first << " (" << route->second
                << "), the route to MASTER_ADDR=" << env.master_addr << "; set GLOO_SOCKET_IFNAME to choose another."
                << std::endl;
    }
    options->devices.push_back(c10d::ProcessGroupGloo::createDeviceForInterface(route->first));
  } else {
    options->devices.push_back(c10d::ProcessGroupGloo::createDefaultDevice());
  }
  options->threads = 2;
  return c10::make_intrusive<c10d::ProcessGroupGloo>(c10::make_intrusive<c10d::PrefixStore>("cpu/", store), env.rank,
                                                     env.world_size, options);
}

namespace {
class GlooBackend final : public CommunicationBackend {
 public:
  std::string name() const override { return "gloo"; }
  void attach(c10d::ProcessGroup& group, const c10::intrusive_ptr<c10d::Store>& store, const LaunchEnvironment& env,
              std::chrono::milliseconds timeout) const override {
    auto gloo = create_gloo(store, env, timeout);
    group.setDefaultBackend(c10d::ProcessGroup::BackendType::GLOO);
    // Gloo serves CUDA tensors too (torch's init_process_group("gloo") registers "cpu:gloo,cuda:gloo"): the usual
    // workaround where NCCL does not work on a GPU machine.
    group.setBackend(c10::DeviceType::CPU, c10d::ProcessGroup::BackendType::GLOO, gloo);
    group.setBackend(c10::DeviceType::CUDA, c10d::ProcessGroup::BackendType::GLOO, gloo);
  }
};
}  // namespace

std::unique_ptr<CommunicationBackend> make_gloo_backend() { return std::make_unique<GlooBackend>(); }

}  // namespace accelerate::detail
