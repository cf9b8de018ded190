// When a node renews its certificate: at a random point between 50 % and 80 % of the
// certificate's life, so that the nodes of a cluster (which often joined together) do not all
// renew at once, and a renewal that fails has the remaining 20 %+ of the life to be retried.
//
// Thread-safe (pure functions; `random` is called once).
#pragma once

#include "absl/time/time.h"
#include "common/id.h"

namespace shoal::pki {

inline constexpr double kRenewalEarliestFraction = 0.5;
inline constexpr double kRenewalLatestFraction = 0.8;

// A time in [not_before + 50 % of the life, not_before + 80 % of the life), drawn uniformly with
// `random`. Requires not_after > not_before.
absl::Time ChooseRenewalTime(absl::Time not_before, absl::Time not_after,
                             const RandomBytesFn& random);

}  // namespace shoal::pki
