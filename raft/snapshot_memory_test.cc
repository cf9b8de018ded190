// How much memory a follower holds while it installs a snapshot from the leader. A manager's
// snapshot is its whole state: every copy the install path makes is one more state's worth
// of memory at the worst moment (a member catching up is often one that was short of it).
// This binary replaces the global operator new and delete to count the live heap, so that
// the peak is measured exactly, not guessed from the process's resident size.
#include <malloc.h>

#include <atomic>
#include <cstdlib>
#include <future>
#include <memory>
#include <new>
#include <string>

#include <gtest/gtest.h>

#include "absl/synchronization/mutex.h"
#include "raft/memory_log_store.h"
#include "raft/node.h"

namespace {

std::atomic<int64_t> g_live{0};
std::atomic<int64_t> g_peak{0};

void* Counted(size_t n) {
  void* p = std::malloc(n == 0 ? 1 : n);
  if (p == nullptr) throw std::bad_alloc();
  const int64_t live = g_live.fetch_add(malloc_usable_size(p)) + malloc_usable_size(p);
  int64_t peak = g_peak.load();
  while (live > peak && !g_peak.compare_exchange_weak(peak, live)) {
  }
  return p;
}

void Uncounted(void* p) {
  if (p == nullptr) return;
  g_live.fetch_sub(malloc_usable_size(p));
  std::free(p);
}

}  // namespace

void* operator new(size_t n) { return Counted(n); }
void* operator new[](size_t n) { return Counted(n); }
void operator delete(void* p) noexcept { Uncounted(p); }
void operator delete[](void* p) noexcept { Uncounted(p); }
void operator delete(void* p, size_t) noexcept { Uncounted(p); }
void operator delete[](void* p, size_t) noexcept { Uncounted(p); }

namespace shoal::raft {
namespace {

constexpr int64_t kMiB = 1 << 20;

// Nothing comes back; the node's messages are dropped.
class Nowhere : public Transport {
 public:
  void SetHandler(MessageHandler*) override {}
  void Send(std::vector<raftpb::Message>) override {}
  void AddPeer(uint64_t, const std::string&) override {}
  void RemovePeer(uint64_t) override {}
};

// Keeps nothing of a snapshot but its size (a real state machine keeps its decoded state,
// which is not what this test measures).
class SizeMachine : public StateMachine {
 public:
  void Apply(uint64_t, absl::string_view) override {}
  std::string Snapshot() override { return ""; }
  absl::Status Restore(absl::string_view data) override {
    absl::MutexLock lock(&mu_);
    restored_ = data.size();
    return absl::OkStatus();
  }
  bool WaitRestored(size_t size) {
    absl::MutexLock lock(&mu_);
    auto done = [&]() ABSL_NO_THREAD_SAFETY_ANALYSIS { return restored_ == size; };
    return mu_.AwaitWithTimeout(absl::Condition(&done), absl::Seconds(20));
  }

 private:
  absl::Mutex mu_;
  size_t restored_ ABSL_GUARDED_BY(mu_) = 0;
};

TEST(SnapshotMemoryTest, AFollowerInstallingASnapshotHoldsAtMostTwoCopiesOfIt) {
  constexpr size_t kSize = 64 * kMiB;
  MemoryLogStore store;  // its copy is this member's disk: one copy, wherever the disk is
  raftpb::ConfState cs;
  for (uint64_t v = 1; v <= 3; ++v) cs.add_voters(v);
  store.SetConfState(cs);
  Nowhere nowhere;
  SizeMachine sm;
  Node::Options o;
  o.raft.id = 2;
  o.raft.election_tick = 100000;
  o.storage = &store;
  o.transport = &nowhere;
  o.state_machine = &sm;
  auto node = Node::Create(o);
  ASSERT_TRUE(node.ok()) << node.status();
  (*node)->Start();

  raftpb::Message snap;
  snap.set_type(raftpb::MSG_SNAP);
  snap.set_from(1);
  snap.set_to(2);
  snap.set_term(1);
  auto* meta = snap.mutable_snapshot()->mutable_metadata();
  meta->set_index(100);
  meta->set_term(1);
  *meta->mutable_conf_state() = cs;
  snap.mutable_snapshot()->mutable_data()->assign(kSize, 'x');
  // From here on, the message as the transport hands it over is the one copy that exists.
  const int64_t before = g_live.load();
  g_peak.store(before);
  (*node)->Receive(std::move(snap));
  ASSERT_TRUE(sm.WaitRestored(kSize));
  const int64_t extra = g_peak.load() - before;
  (*node)->Stop();
  // The received copy, the disk's copy: anything beyond is a copy the path did not need.
  std::printf("peak while installing a %lld MiB snapshot: %.1f MiB beyond the received copy\n",
              static_cast<long long>(kSize / kMiB), static_cast<double>(extra) / kMiB);
  EXPECT_LE(extra, static_cast<int64_t>(kSize) + 8 * kMiB);
}

}  // namespace
}  // namespace shoal::raft
