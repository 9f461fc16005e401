#include "launcher/net.hpp"

#include <accelerate/error.hpp>

#include <arpa/inet.h>
#include <cerrno>
#include <cstring>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

namespace accelerate::launcher {
namespace {

struct Socket {
  int fd;
  Socket() : fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)) {
    ACCELERATE_CHECK(fd >= 0, LaunchError, "cannot create a socket: ", std::strerror(errno));
    int one = 1;
    ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);  // as TCPStore: TIME_WAIT is not "in use"
  }
  ~Socket() { ::close(fd); }
  int bind_any(int port) {
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_ANY);
    addr.sin_port = htons(static_cast<uint16_t>(port));
    return ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
  }
};

}  // namespace

int pick_free_port() {
  Socket s;
  ACCELERATE_CHECK(s.bind_any(0) == 0, LaunchError, "cannot bind a free port: ", std::strerror(errno));
  sockaddr_in addr{};
  socklen_t len = sizeof addr;
  ::getsockname(s.fd, reinterpret_cast<sockaddr*>(&addr), &len);
  return ntohs(addr.sin_port);
}

void ensure_port_free(int port) {
  Socket s;
  if (s.bind_any(port) == 0) return;
  const int err = errno;
  ACCELERATE_CHECK(err != EADDRINUSE, LaunchError, "--main_process_port ", port,
                   " is already in use on this machine (another job or process listens on it). Choose another "
                   "port, or leave --main_process_port out to get a free one.");
  throw LaunchError(detail::concat("cannot use --main_process_port ", port, ": ", std::strerror(err),
                                   (port < 1024 ? " (ports below 1024 need root)" : ""), "."));
}

}  // namespace accelerate::launcher
