// What the leader's loops (orchestrator, allocator, scheduling) share: a thread that calls
// the loop's step until Stop, and the watch the step reads, which Stop closes so that a step
// waiting for events returns at once.
//
// Thread-safety: Start and Stop from the owner; set_watch and watch from the loop's thread
// (or the owner before Start).
#pragma once

#include <functional>
#include <memory>
#include <thread>

#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "manager/store/store.h"

namespace shoal::manager {

class WatchLoop {
 public:
  ~WatchLoop() { Stop(); }

  // Calls step(deadline) in a loop, with deadlines 100 ms ahead, until Stop.
  void Start(std::function<void(absl::Time deadline)> step) {
    thread_ = std::thread([this, step = std::move(step)] {
      while (true) {
        {
          absl::MutexLock lock(&mu_);
          if (stopping_) return;
        }
        step(absl::Now() + absl::Milliseconds(100));
      }
    });
  }

  void Stop() {
    {
      absl::MutexLock lock(&mu_);
      stopping_ = true;
      if (watch_ != nullptr) watch_->Close();
    }
    if (thread_.joinable()) thread_.join();
  }

  // The loop's (new) watch; closed at once when the loop is stopping.
  void set_watch(std::shared_ptr<store::Watcher> w) {
    absl::MutexLock lock(&mu_);
    if (stopping_) w->Close();
    watch_ = std::move(w);
  }
  // Written only by the loop's own thread, so it reads it without the lock.
  store::Watcher* watch() ABSL_NO_THREAD_SAFETY_ANALYSIS { return watch_.get(); }

 private:
  absl::Mutex mu_;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::shared_ptr<store::Watcher> watch_ ABSL_GUARDED_BY(mu_);
  std::thread thread_;
};

}  // namespace shoal::manager
