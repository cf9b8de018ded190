// A Clock that moves only when a test says so.
//
// Thread-safe: a test thread may advance it while the code under test reads it.
//
//   shoal::ManualClock clock(absl::FromUnixSeconds(1700000000));
//   Heartbeats hb(clock);
//   clock.Advance(absl::Seconds(16));
#pragma once

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/clock.h"

namespace shoal {

class ManualClock final : public Clock {
 public:
  // Starts at `start` (by default 2023-11-14T22:13:20Z, a fixed, readable instant).
  explicit ManualClock(absl::Time start = absl::FromUnixSeconds(1700000000));

  absl::Time Now() const override;

  // Moves the time forward by `d`. Requires d >= 0: wall clocks in tests never go back unless
  // a test says so with Set.
  void Advance(absl::Duration d);

  // Sets the time, forward or back (to test clock jumps).
  void Set(absl::Time t);

 private:
  mutable absl::Mutex mu_;
  absl::Time now_ ABSL_GUARDED_BY(mu_);
};

}  // namespace shoal
