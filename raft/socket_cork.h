// Holds back what this process's accepted TCP connections send while a burst of writes is
// made at once, so that the burst leaves each connection in as few segments as it fills.
//
// Why: a leader answers the proposals one commit completes together, one gRPC call's Finish
// each, and gRPC writes each answer with a sendmsg of its own. On loopback (and on any host,
// through the network stack) a sendmsg that transmits costs the sender tens of microseconds
// and wakes the receiver; corked, it only appends to the socket's queue. With the
// connections corked for the length of such a burst (TCP_CORK, then cleared: the queue leaves
// at once, in full segments), the leader's CPU per write fell by 10% and the clients' by 8%
// at 64 clients, throughput +6.7% (2026-12-04 A/B, raft/README.md).
//
// Which connections: every connected TCP socket whose local port is one this process listens
// on, found by reading /proc/self/fd (gRPC does not hand its sockets out); the list is read
// again, when a burst begins, once it is older than Options::rescan_interval, so a new
// connection is corked from then on. Corking is only ever held for the length of a burst,
// between Cork and Uncork on one thread: a connection written meanwhile by another thread,
// or a descriptor closed and reused meanwhile, is delayed by that much at most. A descriptor
// that is no longer a socket is dropped from the list.
//
// Not thread-safe: one thread (the node's loop) calls Cork and Uncork, in turn.
//
//   SocketCork cork;
//   cork.Cork();
//   for (auto& answer : batch) answer();   // gRPC Finish calls: queued, not sent
//   cork.Uncork();                         // sent now
#pragma once

#include <cstddef>
#include <vector>

#include "absl/time/time.h"
#include "common/clock.h"

namespace shoal::raft {

class SocketCork {
 public:
  struct Options {
    // How old the list of connections may be when a burst begins.
    absl::Duration rescan_interval = absl::Milliseconds(500);
    // The clock the interval is measured on (tests pass a ManualClock); must outlive the cork.
    const Clock* clock = &RealClock();
  };

  SocketCork() : SocketCork(Options()) {}
  explicit SocketCork(Options options);
  // Uncorks whatever is corked.
  ~SocketCork();
  SocketCork(const SocketCork&) = delete;
  SocketCork& operator=(const SocketCork&) = delete;

  // Corks every accepted connection of the process (reading the list again if it is older
  // than the interval). A second Cork before Uncork does nothing.
  void Cork();
  // What the corked connections hold leaves now; nothing stays corked.
  void Uncork();

  // The descriptors corked now (for tests).
  const std::vector<int>& corked() const { return corked_; }

 private:
  // The process's accepted TCP connections now (from /proc/self/fd): connected stream
  // sockets whose local port a listening socket of the process has.
  static std::vector<int> AcceptedConnections();

  Options options_;
  std::vector<int> connections_;  // at the last reading
  absl::Time read_at_ = absl::InfinitePast();
  std::vector<int> corked_;
};

}  // namespace shoal::raft
