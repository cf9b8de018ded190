// Names the calling thread, so `top -H`, `ps -L`, perf and gdb show what each of a daemon's
// threads is for (a Raft member has six of its own next to gRPC's). Linux keeps at most 15
// characters; longer names are cut. Best effort: a failure changes nothing else.
//
//   std::thread([] { shoal::SetThreadName("raft-loop"); ... });
#pragma once

#include "absl/strings/string_view.h"

namespace shoal {

void SetThreadName(absl::string_view name);

}  // namespace shoal
