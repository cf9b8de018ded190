// Finding an etcd cluster's leader from the answers of Maintenance.Status on every member, for
// the etcd side of the Raft benchmark. Pure: the RPCs are made by the caller (etcd_bench.cc).
//
// Thread-compatible.
//
//   std::vector<MemberStatus> answers = ...;  // one per endpoint, in order
//   ASSIGN_OR_RETURN(size_t leader, PickLeader(answers));
//   // answers[leader].endpoint is where writes go.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace shoal::raft::bench {

// What one endpoint said.
struct MemberStatus {
  std::string endpoint;
  absl::Status status;     // of the Status RPC; the fields below mean something only if OK
  uint64_t member_id = 0;  // header.member_id: who answered
  uint64_t leader = 0;     // whom it believes to lead; 0 while it knows of no leader
};

// The index of the leader's answer when the cluster is healthy: every member answered, all name
// the same non-zero leader, and that leader is one of them. Otherwise UNAVAILABLE (the caller
// may retry: elections settle) saying which member is the reason; INVALID_ARGUMENT when
// `members` is empty.
absl::StatusOr<size_t> PickLeader(const std::vector<MemberStatus>& members);

}  // namespace shoal::raft::bench
