// What a running swarmd does next about its roles, after `node promote` or `node demote` (or
// after its manager's Raft member was removed some other way): a pure decision over what the
// node knows, which the daemon's role-switch thread (daemon.h) carries out one step at a time
// and then asks again, until the answer is kNothing. Level-triggered, like the managers'
// loops: a step that failed is simply decided again later.
//
// The node follows the role the cluster has given it (Node.role in its session messages),
// as SwarmKit's node does: the role manager sets it to manager as soon as a node is promoted,
// and to worker only once a demoted manager's Raft member is removed. The certificate follows
// that role too (the CA signs a renewal with it: manager/store_ca_registry.h).
//
//   promotion  renew (a manager certificate), then start the manager role, which joins the Raft
//              group through the leader's Join RPC;
//   demotion   stop the manager role (its member was removed, or the cluster says worker) once
//              the removed member has run on for a grace (it answers the votes of members that
//              missed the commit index: raft/README.md), then renew (a worker certificate).
//
// The worker role runs throughout: tasks are never touched.
//
// Thread-safety: pure functions.
#pragma once

#include <cstdint>
#include <string>

#include "proto/types.pb.h"

namespace shoal::node {

struct RoleSituation {
  // The managers refused the node's session because it was removed from the cluster
  // (`node rm --force` of a live node, or of one that was away): it leaves the swarm.
  bool removed_from_cluster = false;
  // The daemon runs the manager role now (its node.json says manager).
  bool manager_running = false;
  // The role (OU) of the node's certificate now.
  api::CertificateRole certificate = api::CERTIFICATE_ROLE_WORKER;
  // The running manager's Raft member was removed from the group
  // (raft::StateMachine::RemovedFromCluster), and whether the grace given to the session to
  // tell the demotion is over (the removal may be heard of first).
  bool raft_removed = false;
  bool removal_grace_over = false;
  // The running manager was found removed (by Raft, or by the session saying worker) long
  // enough ago that its member may stop: a removed member runs on for a few election timeouts,
  // answering the votes of members that missed the commit index (raft/README.md).
  bool member_grace_over = false;

  // What the last session message said of the node object (nothing before the first).
  bool known = false;
  api::NodeRole role = api::NODE_ROLE_WORKER;
  api::NodeRole desired_role = api::NODE_ROLE_WORKER;
  uint64_t raft_id = 0;  // its manager_status.raft_id

  // A Raft id this node's member was removed under while its node object still said manager
  // (0: none): the cluster must demote and promote it again before it rejoins (a removed id
  // is never added back).
  uint64_t lost_raft_id = 0;
};

enum class RoleStep {
  kNothing,
  // A removed member runs on for its grace, or waits for its node object to say demoted: look
  // again when the grace is over.
  kWait,
  kStopManager,
  kRenewCertificate,
  kStartManager,
  // Stops every task and the roles, and forgets the cluster (as `swarmctl leave --force`).
  kLeave,
};

struct RoleDecision {
  RoleStep step = RoleStep::kNothing;
  // For the log: why.
  std::string reason;
};

RoleDecision NextRoleStep(const RoleSituation& s);

const char* RoleStepName(RoleStep step);

}  // namespace shoal::node
