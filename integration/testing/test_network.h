// A private network for one test: a hub network namespace holding a bridge, and a network
// namespace per host, plugged into the bridge with a veth pair and given 10.99.0.<n>/24.
//
// Every namespace is held by a child process of the test (it unshares its network namespace
// and waits), so nothing outlives the test: no named namespace under /run/netns, no device
// in the machine's own namespace, and a test killed half-way leaves nothing behind (the
// holders die with it, PR_SET_PDEATHSIG; a namespace and its devices go with its last
// process). The addresses are private to the hub, so tests running at once cannot collide.
//
// Needs CAP_SYS_ADMIN and CAP_NET_ADMIN (root) and iproute2's `ip`; Create() says plainly
// when they are missing.
//
// Thread-safety: from the test thread.
#pragma once

#include <sys/types.h>

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace shoal::integration {

// What a command run to its end printed and how it ended.
struct CommandResult {
  int exit_code = -1;  // -1: killed (by a signal, or at its deadline)
  std::string out, err;
};

// Runs `argv` (argv[0] a path, or a name looked up in /usr/sbin, /sbin, /usr/bin, /bin), in the
// network namespace held by `netns_pid` (0: the test's own), until it exits or `timeout`
// passes (then SIGKILL).
CommandResult RunCommand(const std::vector<std::string>& argv, pid_t netns_pid = 0,
                         absl::Duration timeout = absl::Seconds(60));

class TestNetwork {
 public:
  static absl::StatusOr<std::unique_ptr<TestNetwork>> Create();
  ~TestNetwork();  // the holders are killed by pid and reaped

  // A host named `name` (at most 11 characters) with the next address, 10.99.0.11 onwards.
  absl::Status AddHost(const std::string& name);
  // Takes the host's link down (it is cut off: nothing reaches it, it reaches nothing but
  // itself) or up again.
  absl::Status SetLink(const std::string& name, bool up);

  // The pid whose network namespace is the host's (or the hub's), for RunCommand and setns.
  pid_t holder(const std::string& name) const;
  pid_t hub() const { return hub_; }
  std::string ip(const std::string& name) const;
  // An address on the bridge that no host has.
  static std::string UnusedIp() { return "10.99.0.250"; }

 private:
  TestNetwork() = default;
  // `ip` with `args` in the namespace of `netns_pid`; an error that quotes what it printed.
  static absl::Status Ip(pid_t netns_pid, const std::vector<std::string>& args);

  pid_t hub_ = -1;
  struct Host {
    pid_t holder = -1;
    std::string ip;
  };
  std::map<std::string, Host> hosts_;
};

}  // namespace shoal::integration
