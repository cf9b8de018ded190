#include "raft/bench/etcd_leader.h"

#include "gtest/gtest.h"

namespace shoal::raft::bench {
namespace {

MemberStatus Member(const std::string& endpoint, uint64_t id, uint64_t leader) {
  MemberStatus m;
  m.endpoint = endpoint;
  m.member_id = id;
  m.leader = leader;
  return m;
}

TEST(PickLeaderTest, ReturnsTheMemberWhoseIdIsTheAgreedLeader) {
  const std::vector<MemberStatus> members = {Member("a:1", 0x11, 0x22), Member("b:2", 0x22, 0x22),
                                             Member("c:3", 0x33, 0x22)};
  absl::StatusOr<size_t> leader = PickLeader(members);
  ASSERT_TRUE(leader.ok()) << leader.status();
  EXPECT_EQ(*leader, 1u);
}

TEST(PickLeaderTest, IsUnavailableWhileAMemberDoesNotAnswer) {
  std::vector<MemberStatus> members = {Member("a:1", 0x11, 0x11), Member("b:2", 0, 0)};
  members[1].status = absl::UnavailableError("connection refused");
  absl::StatusOr<size_t> leader = PickLeader(members);
  EXPECT_EQ(leader.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_NE(leader.status().message().find("b:2"), absl::string_view::npos);
}

TEST(PickLeaderTest, IsUnavailableWhileAMemberKnowsNoLeader) {
  const std::vector<MemberStatus> members = {Member("a:1", 0x11, 0x11), Member("b:2", 0x22, 0)};
  EXPECT_EQ(PickLeader(members).status().code(), absl::StatusCode::kUnavailable);
}

TEST(PickLeaderTest, IsUnavailableWhileMembersDisagree) {
  const std::vector<MemberStatus> members = {Member("a:1", 0x11, 0x11), Member("b:2", 0x22, 0x22)};
  absl::StatusOr<size_t> leader = PickLeader(members);
  EXPECT_EQ(leader.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_NE(leader.status().message().find("disagree"), absl::string_view::npos);
}

TEST(PickLeaderTest, IsUnavailableWhenTheLeaderIsNotAnEndpoint) {
  const std::vector<MemberStatus> members = {Member("a:1", 0x11, 0x99), Member("b:2", 0x22, 0x99)};
  EXPECT_EQ(PickLeader(members).status().code(), absl::StatusCode::kUnavailable);
}

TEST(PickLeaderTest, RejectsNoEndpoints) {
  EXPECT_EQ(PickLeader({}).status().code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace shoal::raft::bench
