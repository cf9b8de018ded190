// Time as a dependency. Components that need the time take a `Clock&` (or `const Clock&`) in
// their constructor, so tests drive them with ManualClock (common/testing/manual_clock.h) and
// never sleep. Pure cores take ticks instead and need no clock at all.
//
// Thread-safety: implementations are thread-safe.
#pragma once

#include "absl/time/time.h"

namespace shoal {

class Clock {
 public:
  virtual ~Clock() = default;

  // The current wall-clock time.
  virtual absl::Time Now() const = 0;
};

// The system clock. The returned object lives for the whole process.
const Clock& RealClock();

}  // namespace shoal
