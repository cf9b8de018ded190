// Raft as the store sees it, for tests: entries are applied on every joined store in
// proposal order, at once, or held until the test releases them (to line up concurrent
// proposals), or failed with a given error.
#pragma once

#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "manager/store/store.h"

namespace shoal::manager::store::testing {

class FakeRaft : public Proposer {
 public:
  void Join(Store* s) { members_.push_back(s); }

  void Propose(std::string data, uint64_t leader_term,
               std::function<void(absl::Status)> done) override {
    absl::MutexLock lock(&mu_);
    ++proposals_;
    if (leader_term != 0 && leader_term != term_) {
      done(absl::FailedPreconditionError("not the leader of that term"));
      return;
    }
    if (!fail_with_.ok()) {
      done(fail_with_);
      return;
    }
    if (hold_) {
      held_.push_back({std::move(data), std::move(done)});
      return;
    }
    CommitLocked(data, done);
  }

  void Hold() {
    absl::MutexLock lock(&mu_);
    hold_ = true;
  }
  // Waits until `n` proposals are held.
  void WaitHeld(size_t n) {
    absl::MutexLock lock(&mu_);
    auto enough = [this, n]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return held_.size() >= n; };
    mu_.Await(absl::Condition(&enough));
  }
  // Waits until `n` proposals are held, then applies them in order.
  void ReleaseWhenHeld(size_t n) {
    WaitHeld(n);
    absl::MutexLock lock(&mu_);
    hold_ = false;
    for (auto& [data, done] : held_) CommitLocked(data, done);
    held_.clear();
  }
  // The term this Raft's leader has: leader-only proposals of another term fail.
  void SetTerm(uint64_t term) {
    absl::MutexLock lock(&mu_);
    term_ = term;
  }
  void FailWith(absl::Status s) {
    absl::MutexLock lock(&mu_);
    fail_with_ = std::move(s);
  }
  int proposals() {
    absl::MutexLock lock(&mu_);
    return proposals_;
  }

 private:
  void CommitLocked(const std::string& data, const std::function<void(absl::Status)>& done)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    ++index_;
    for (Store* s : members_) s->Apply(index_, data);
    done(absl::OkStatus());
  }

  absl::Mutex mu_;
  std::vector<Store*> members_;
  uint64_t index_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t term_ ABSL_GUARDED_BY(mu_) = 1;
  int proposals_ ABSL_GUARDED_BY(mu_) = 0;
  bool hold_ ABSL_GUARDED_BY(mu_) = false;
  absl::Status fail_with_ ABSL_GUARDED_BY(mu_);
  std::vector<std::pair<std::string, std::function<void(absl::Status)>>> held_
      ABSL_GUARDED_BY(mu_);
};

}  // namespace shoal::manager::store::testing
