#include "raft/bench/etcd_leader.h"

#include "absl/strings/str_cat.h"

namespace shoal::raft::bench {

absl::StatusOr<size_t> PickLeader(const std::vector<MemberStatus>& members) {
  if (members.empty()) return absl::InvalidArgumentError("no etcd endpoints given");
  uint64_t leader = 0;
  for (const MemberStatus& m : members) {
    if (!m.status.ok()) {
      return absl::UnavailableError(
          absl::StrCat("etcd member at ", m.endpoint, " did not answer: ", m.status.ToString()));
    }
    if (m.leader == 0) {
      return absl::UnavailableError(
          absl::StrCat("etcd member at ", m.endpoint, " knows of no leader yet"));
    }
    if (leader == 0) {
      leader = m.leader;
    } else if (m.leader != leader) {
      return absl::UnavailableError(
          absl::StrCat("etcd members disagree on the leader: ", members.front().endpoint, " names ",
                       absl::Hex(leader), ", ", m.endpoint, " names ", absl::Hex(m.leader)));
    }
  }
  for (size_t i = 0; i < members.size(); ++i) {
    if (members[i].member_id == leader) return i;
  }
  return absl::UnavailableError(
      absl::StrCat("the etcd leader ", absl::Hex(leader), " is none of the given endpoints"));
}

}  // namespace shoal::raft::bench
