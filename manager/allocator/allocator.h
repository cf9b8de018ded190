// The allocator: the stage between NEW and PENDING. For now it checks that what a task
// references exists (its secrets, configs and networks, by id) and moves it to PENDING for the
// scheduler; a task with a missing reference stays NEW with an error that names it ("secret
// db_password (id ...) not found"), and moves on once the reference exists. Network addresses
// and virtual IPs are allocated here by the networking issue.
//
// Allocate is pure; AllocatorLoop runs it on the leader like the other loops (watching tasks,
// secrets, configs and networks; writing in batches as the leader of its term).
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <thread>

#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "manager/store/store.h"
#include "manager/watch_loop.h"

namespace shoal::manager::allocator {

// OK when every reference of `task` exists in `tx`; else NOT_FOUND naming the first missing.
absl::Status CheckReferences(const api::Task& task, const store::ReadTx& tx);

// The task as the allocator leaves it: PENDING when its references exist, else NEW with the
// error; nullopt when there is nothing to write (not NEW, no longer wanted, or unchanged).
std::optional<api::Task> Allocate(const api::Task& task, const store::ReadTx& tx);

class AllocatorLoop {
 public:
  struct Options {
    store::Store* store = nullptr;
    uint64_t leader_term = 0;
  };
  explicit AllocatorLoop(Options options) : options_(options) {}
  ~AllocatorLoop();

  void Start();
  void Stop();
  // Waits until `deadline` for changes, then allocates what they concern. Returns the tasks
  // written.
  size_t Step(absl::Time deadline);

 private:
  void Resync();
  const Options options_;
  std::set<std::string> dirty_;  // task ids
  bool all_dirty_ = false;
  WatchLoop loop_;
};

}  // namespace shoal::manager::allocator
