#include "pki/renewal.h"

#include <cstdint>

namespace shoal::pki {

absl::Time ChooseRenewalTime(absl::Time not_before, absl::Time not_after,
                             const RandomBytesFn& random) {
  uint8_t bytes[8];
  random(bytes, sizeof(bytes));
  uint64_t r = 0;
  for (uint8_t b : bytes) r = (r << 8) | b;
  // 53 random bits -> a double uniform in [0, 1).
  double u = static_cast<double>(r >> 11) * (1.0 / 9007199254740992.0);
  // In whole nanoseconds, so that the end of the window stays excluded after rounding.
  const int64_t life = absl::ToInt64Nanoseconds(not_after - not_before);
  const int64_t lo = static_cast<int64_t>(static_cast<double>(life) * kRenewalEarliestFraction);
  const int64_t hi = static_cast<int64_t>(static_cast<double>(life) * kRenewalLatestFraction);
  if (hi <= lo) return not_before + absl::Nanoseconds(lo);
  int64_t offset = static_cast<int64_t>(u * static_cast<double>(hi - lo));
  if (offset >= hi - lo) offset = hi - lo - 1;
  return not_before + absl::Nanoseconds(lo + offset);
}

}  // namespace shoal::pki
