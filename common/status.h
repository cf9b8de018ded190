// Helpers over absl::Status: adding context to an error while keeping its code.
//
// Thread-safe (pure functions).
#pragma once

#include "absl/strings/string_view.h"

#include "absl/status/status.h"

namespace shoal {

// Returns `status` with "<context>: " prepended to its message and the same code (and payloads).
// OK stays OK. Use it where an error crosses a layer, so the final message reads as a path:
// "loading raft state: reading /var/lib/swarmd/raft: IO error: ...".
absl::Status Annotate(const absl::Status& status, absl::string_view context);

// The canonical name of a code in lower case with spaces ("not found", "failed precondition"),
// for messages shown to operators.
absl::string_view CodeName(absl::StatusCode code);

}  // namespace shoal
