#include "common/testing/manual_clock.h"

#include <cstdio>
#include <cstdlib>

namespace shoal {

ManualClock::ManualClock(absl::Time start) : now_(start) {}

absl::Time ManualClock::Now() const {
  absl::MutexLock lock(&mu_);
  return now_;
}

void ManualClock::Advance(absl::Duration d) {
  if (d < absl::ZeroDuration()) {
    std::fprintf(stderr, "ManualClock::Advance(%s): negative duration\n",
                 absl::FormatDuration(d).c_str());
    std::abort();
  }
  absl::MutexLock lock(&mu_);
  now_ += d;
}

void ManualClock::Set(absl::Time t) {
  absl::MutexLock lock(&mu_);
  now_ = t;
}

}  // namespace shoal
