#include "node/role_switch.h"

#include "gtest/gtest.h"

namespace shoal::node {
namespace {

// A worker whose session told it the node object (worker, worker certificate).
RoleSituation Worker() {
  RoleSituation s;
  s.known = true;
  return s;
}

// A running manager, as its session sees it.
RoleSituation Manager() {
  RoleSituation s;
  s.manager_running = true;
  s.certificate = api::CERTIFICATE_ROLE_MANAGER;
  s.known = true;
  s.role = api::NODE_ROLE_MANAGER;
  s.desired_role = api::NODE_ROLE_MANAGER;
  s.raft_id = 7;
  return s;
}

RoleStep Next(const RoleSituation& s) { return NextRoleStep(s).step; }

TEST(RoleSwitchTest, NothingBeforeTheSessionToldTheNodeObject) {
  RoleSituation s;
  EXPECT_EQ(Next(s), RoleStep::kNothing);
  s.certificate = api::CERTIFICATE_ROLE_MANAGER;
  EXPECT_EQ(Next(s), RoleStep::kNothing);
  EXPECT_EQ(Next(Worker()), RoleStep::kNothing);
  EXPECT_EQ(Next(Manager()), RoleStep::kNothing);
}

TEST(RoleSwitchTest, APromotedWorkerRenewsThenStartsTheManagerRole) {
  RoleSituation s = Worker();
  // `node promote`: the desired role alone changes nothing (the CA would still sign a worker).
  s.desired_role = api::NODE_ROLE_MANAGER;
  EXPECT_EQ(Next(s), RoleStep::kNothing);
  // The role manager made it a manager.
  s.role = api::NODE_ROLE_MANAGER;
  EXPECT_EQ(Next(s), RoleStep::kRenewCertificate);
  s.certificate = api::CERTIFICATE_ROLE_MANAGER;
  EXPECT_EQ(Next(s), RoleStep::kStartManager);
  s.manager_running = true;
  EXPECT_EQ(Next(s), RoleStep::kNothing);
}

// `node rm --force`: every manager refuses the node from then on, whatever it was doing.
TEST(RoleSwitchTest, ANodeRemovedFromTheClusterLeavesWhateverItsRole) {
  for (RoleSituation s : {RoleSituation(), Worker(), Manager()}) {
    s.removed_from_cluster = true;
    EXPECT_EQ(Next(s), RoleStep::kLeave);
  }
  RoleSituation s = Manager();
  s.raft_removed = true;  // a wait for the grace does not hold the leave back
  s.removed_from_cluster = true;
  EXPECT_EQ(Next(s), RoleStep::kLeave);
  EXPECT_STREQ(RoleStepName(RoleStep::kLeave), "leave");
}

TEST(RoleSwitchTest, ADemotedManagerStopsOnceItsMemberIsRemovedThenRenews) {
  RoleSituation s = Manager();
  // `node demote`: it still votes until the role manager removed its member.
  s.desired_role = api::NODE_ROLE_WORKER;
  EXPECT_EQ(Next(s), RoleStep::kNothing);
  // Removed: heard from Raft first; the member runs on for its grace, then stops.
  s.raft_removed = true;
  EXPECT_EQ(Next(s), RoleStep::kWait);
  s.member_grace_over = true;
  EXPECT_EQ(Next(s), RoleStep::kStopManager);
  // ... or from the session first (the role manager wrote worker).
  RoleSituation t = Manager();
  t.desired_role = api::NODE_ROLE_WORKER;
  t.role = api::NODE_ROLE_WORKER;
  EXPECT_EQ(Next(t), RoleStep::kWait);
  t.member_grace_over = true;
  EXPECT_EQ(Next(t), RoleStep::kStopManager);
  // Stopped: a worker certificate, then nothing more.
  t.manager_running = false;
  t.raft_removed = false;
  EXPECT_EQ(Next(t), RoleStep::kRenewCertificate);
  t.certificate = api::CERTIFICATE_ROLE_WORKER;
  EXPECT_EQ(Next(t), RoleStep::kNothing);
}

TEST(RoleSwitchTest, ARemovalTheSessionDoesNotExplainWaitsThenStopsAndIsNotUndone) {
  RoleSituation s = Manager();
  s.raft_removed = true;
  s.member_grace_over = true;
  EXPECT_EQ(Next(s), RoleStep::kWait);
  s.removal_grace_over = true;
  RoleDecision d = NextRoleStep(s);
  EXPECT_EQ(d.step, RoleStep::kStopManager);
  EXPECT_NE(d.reason.find("still lists the node as a manager"), std::string::npos);
  // Now a worker: it does not rejoin under the removed id by itself...
  s.manager_running = false;
  s.raft_removed = false;
  s.lost_raft_id = s.raft_id;
  EXPECT_EQ(Next(s), RoleStep::kNothing);
  // ... but does once demoted and promoted again (its node object then names no Raft id).
  s.raft_id = 0;
  EXPECT_EQ(Next(s), RoleStep::kStartManager);
}

TEST(RoleSwitchTest, AManagerWithAWorkerCertificateRenews) {
  RoleSituation s = Manager();
  s.certificate = api::CERTIFICATE_ROLE_WORKER;
  EXPECT_EQ(Next(s), RoleStep::kRenewCertificate);
}

TEST(RoleSwitchTest, AWorkerWithAManagerCertificateRenews) {
  RoleSituation s = Worker();
  s.certificate = api::CERTIFICATE_ROLE_MANAGER;
  EXPECT_EQ(Next(s), RoleStep::kRenewCertificate);
}

}  // namespace
}  // namespace shoal::node
