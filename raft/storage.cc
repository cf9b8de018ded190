#include "raft/storage.h"

#include "absl/strings/match.h"

namespace shoal::raft {
namespace {
constexpr char kCompacted[] = "requested index is compacted";
constexpr char kUnavailable[] = "requested index is beyond the last entry";
constexpr char kSnapshotLater[] = "snapshot is temporarily unavailable";
}  // namespace

absl::Status CompactedError() { return absl::OutOfRangeError(kCompacted); }
bool IsCompacted(const absl::Status& s) {
  return s.code() == absl::StatusCode::kOutOfRange && absl::StrContains(s.message(), kCompacted);
}

absl::Status UnavailableIndexError() { return absl::OutOfRangeError(kUnavailable); }
bool IsUnavailableIndex(const absl::Status& s) {
  return s.code() == absl::StatusCode::kOutOfRange && absl::StrContains(s.message(), kUnavailable);
}

absl::Status SnapshotTemporarilyUnavailableError() { return absl::UnavailableError(kSnapshotLater); }
bool IsSnapshotTemporarilyUnavailable(const absl::Status& s) {
  return s.code() == absl::StatusCode::kUnavailable &&
         absl::StrContains(s.message(), kSnapshotLater);
}

}  // namespace shoal::raft
