// The node loop's ticks against a wall clock that steps backwards (NTP correcting a clock that
// ran fast, a VM resumed from a snapshot). A loop that scheduled its ticks on the wall clock
// stopped ticking until the wall clock caught up again: a leader sent no heartbeats, and
// followers never timed out to replace a dead one.
//
// This binary replaces clock_gettime for CLOCK_REALTIME (absl::Now() and everything built on it)
// with the real clock plus an offset the test moves; the monotonic clock is untouched. Its own
// waits therefore use the monotonic clock only.

#include <gtest/gtest.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "grpcpp/grpcpp.h"
#include "raft/grpc_transport.h"
#include "raft/memory_log_store.h"
#include "raft/node.h"
#include "raft/testing/raft_server.h"

namespace {
std::atomic<int64_t> realtime_offset_ns{0};
}  // namespace

// Interposes on libc's: shared libraries (absl among them) bind to this definition.
extern "C" int clock_gettime(clockid_t clock, struct timespec* ts) noexcept {
  const int r = static_cast<int>(syscall(SYS_clock_gettime, clock, ts));
  if (r == 0 && clock == CLOCK_REALTIME) {
    const int64_t ns = ts->tv_sec * 1000000000 + ts->tv_nsec + realtime_offset_ns.load();
    ts->tv_sec = ns / 1000000000;
    ts->tv_nsec = ns % 1000000000;
  }
  return r;
}

namespace shoal::raft {
namespace {

using Steady = std::chrono::steady_clock;

class CountingStateMachine : public StateMachine {
 public:
  void Apply(uint64_t, absl::string_view) override { applied_.fetch_add(1); }
  std::string Snapshot() override { return ""; }
  absl::Status Restore(absl::string_view) override { return absl::OkStatus(); }

 private:
  std::atomic<int> applied_{0};
};

struct Member {
  uint64_t id = 0;
  std::unique_ptr<MemoryLogStore> store;
  std::unique_ptr<grpc::Server> server;  // destroyed after the transport
  std::unique_ptr<GrpcTransport> transport;
  std::unique_ptr<CountingStateMachine> sm;
  std::unique_ptr<Node> node;
  std::string addr;
};

// Polls `done` (a status check, not a synchronisation of data) until it holds or `within`
// passes on the monotonic clock.
template <typename F>
bool Eventually(F done, std::chrono::seconds within) {
  const auto deadline = Steady::now() + within;
  while (Steady::now() < deadline) {
    if (done()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return done();
}

TEST(NodeClockTest, TicksGoOnWhenTheWallClockStepsBack) {
  std::vector<std::unique_ptr<Member>> members;
  raftpb::ConfState cs;
  for (uint64_t id = 1; id <= 3; ++id) cs.add_voters(id);
  for (uint64_t id = 1; id <= 3; ++id) {
    auto m = std::make_unique<Member>();
    m->id = id;
    m->store = std::make_unique<MemoryLogStore>();
    m->store->SetConfState(cs);
    GrpcTransport::Options to;
    to.self = id;
    m->transport = std::move(*GrpcTransport::Create(to));
    m->sm = std::make_unique<CountingStateMachine>();
    Node::Options no;
    no.raft.id = id;
    no.raft.random_seed = id * 7919;
    no.storage = m->store.get();
    no.transport = m->transport.get();
    no.state_machine = m->sm.get();
    no.tick_interval = absl::Milliseconds(10);
    auto node = Node::Create(no);
    ASSERT_TRUE(node.ok()) << node.status();
    m->node = std::move(*node);
    testing::RaftServer s = testing::ServeRaft(*m->transport);
    ASSERT_NE(s.server, nullptr);
    m->server = std::move(s.server);
    m->addr = s.addr;
    members.push_back(std::move(m));
  }
  for (auto& m : members) {
    for (auto& peer : members) {
      if (peer->id != m->id) m->transport->AddPeer(peer->id, peer->addr);
    }
    m->node->Start();
  }
  auto leader = [&]() -> uint64_t {
    for (auto& m : members) {
      if (!m->node) continue;
      const Node::Status s = m->node->GetStatus();
      if (s.role == Role::kLeader) return s.id;
    }
    return 0;
  };
  ASSERT_TRUE(Eventually([&] { return leader() != 0; }, std::chrono::seconds(20)));
  const uint64_t first = leader();

  // The wall clock steps back an hour.
  realtime_offset_ns.store(-int64_t{3600} * 1000000000);

  // The leader dies; the others must notice (ticks) and elect a new one.
  Member& dead = *members[first - 1];
  dead.node->Stop();
  dead.server->Shutdown(std::chrono::system_clock::now() + std::chrono::milliseconds(200));
  dead.node.reset();
  dead.transport.reset();
  dead.server.reset();
  EXPECT_TRUE(Eventually([&] { return leader() != 0; }, std::chrono::seconds(20)))
      << "no new leader: the survivors stopped ticking";
  const uint64_t second = leader();
  ASSERT_NE(second, 0u);
  ASSERT_NE(second, first);
  // And it serves.
  EXPECT_TRUE(members[second - 1]->node->Propose("after the step").get().ok());
  realtime_offset_ns.store(0);
  for (auto& m : members) {
    if (!m->node) continue;
    m->node->Stop();
    m->server->Shutdown(std::chrono::system_clock::now() + std::chrono::milliseconds(200));
  }
}

}  // namespace
}  // namespace shoal::raft
