#include "raft/socket_cork.h"

#include <dirent.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <sys/socket.h>

#include <algorithm>
#include <set>
#include <utility>

namespace shoal::raft {
namespace {

// The local TCP port of a stream socket, or 0 when `fd` is none (not a socket, not TCP, not
// bound). `listening` tells whether it listens.
int LocalTcpPort(int fd, bool* listening) {
  int value = 0;
  socklen_t len = sizeof(value);
  if (getsockopt(fd, SOL_SOCKET, SO_PROTOCOL, &value, &len) != 0 || value != IPPROTO_TCP) {
    return 0;
  }
  sockaddr_storage addr{};
  socklen_t addr_len = sizeof(addr);
  if (getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &addr_len) != 0) return 0;
  int port = 0;
  if (addr.ss_family == AF_INET) {
    port = ntohs(reinterpret_cast<const sockaddr_in*>(&addr)->sin_port);
  } else if (addr.ss_family == AF_INET6) {
    port = ntohs(reinterpret_cast<const sockaddr_in6*>(&addr)->sin6_port);
  }
  value = 0;
  len = sizeof(value);
  *listening = getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &value, &len) == 0 && value != 0;
  return port;
}

bool SetCork(int fd, int on) {
  return setsockopt(fd, IPPROTO_TCP, TCP_CORK, &on, sizeof(on)) == 0;
}

}  // namespace

SocketCork::SocketCork(Options options) : options_(std::move(options)) {}

SocketCork::~SocketCork() { Uncork(); }

std::vector<int> SocketCork::AcceptedConnections() {
  std::vector<std::pair<int, int>> connected;  // (fd, local port)
  std::set<int> listening_ports;
  // Without /proc (not mounted), nothing is corked: answers leave one by one, as without this.
  DIR* dir = opendir("/proc/self/fd");
  if (dir == nullptr) return {};
  const int dir_fd = dirfd(dir);
  while (const dirent* e = readdir(dir)) {
    char* end = nullptr;
    const long fd = strtol(e->d_name, &end, 10);
    if (end == e->d_name || *end != '\0' || fd == dir_fd) continue;
    bool listening = false;
    const int port = LocalTcpPort(static_cast<int>(fd), &listening);
    if (port == 0) continue;
    if (listening) {
      listening_ports.insert(port);
    } else {
      connected.emplace_back(static_cast<int>(fd), port);
    }
  }
  closedir(dir);
  std::vector<int> accepted;
  for (const auto& [fd, port] : connected) {
    // Also connected sockets not yet connected (connect in progress) or closed by the peer:
    // corking them does no harm.
    if (listening_ports.count(port) != 0) accepted.push_back(fd);
  }
  return accepted;
}

void SocketCork::Cork() {
  if (!corked_.empty()) return;
  const absl::Time now = options_.clock->Now();
  if (now - read_at_ >= options_.rescan_interval) {
    connections_ = AcceptedConnections();
    read_at_ = now;
  }
  // A descriptor closed since (or reused by something that is not a TCP socket) refuses the
  // option: it is dropped until the next reading.
  auto gone = std::remove_if(connections_.begin(), connections_.end(),
                             [](int fd) { return !SetCork(fd, 1); });
  connections_.erase(gone, connections_.end());
  corked_ = connections_;
}

void SocketCork::Uncork() {
  for (int fd : corked_) SetCork(fd, 0);
  corked_.clear();
}

}  // namespace shoal::raft
