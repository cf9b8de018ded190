#include "node/role_switch.h"

namespace shoal::node {

RoleDecision NextRoleStep(const RoleSituation& s) {
  // Whatever the role: a removed node's certificate is refused by every manager, for good.
  if (s.removed_from_cluster) {
    return {RoleStep::kLeave,
            "this node was removed from the cluster (node rm): it leaves the swarm"};
  }
  if (s.manager_running) {
    // The role manager writes worker only once the member is out of the Raft group; this
    // member may hear of its own removal later, or never (it was away).
    const bool worker = s.known && s.role == api::NODE_ROLE_WORKER;
    if (s.raft_removed || worker) {
      // A removed member never votes or leads again: its manager role is of no use, once it
      // has answered the others for a while.
      if (!s.member_grace_over) {
        return {RoleStep::kWait, "the removed member runs on for a grace"};
      }
      if (worker || (s.known && s.desired_role == api::NODE_ROLE_WORKER)) {
        return {RoleStep::kStopManager, worker ? "demoted: the cluster made the node a worker"
                                               : "demoted: this manager's Raft member was removed"};
      }
      if (!s.removal_grace_over) {
        return {RoleStep::kWait,
                "this manager's Raft member was removed: waiting for the session to tell the "
                "demotion"};
      }
      return {RoleStep::kStopManager,
              "this manager's Raft member was removed, but the cluster still lists the node as "
              "a manager"};
    }
    if (s.known && s.role == api::NODE_ROLE_MANAGER &&
        s.certificate != api::CERTIFICATE_ROLE_MANAGER) {
      return {RoleStep::kRenewCertificate, "a manager holding a worker's certificate"};
    }
    return {};
  }
  if (!s.known) return {};
  const api::CertificateRole want = s.role == api::NODE_ROLE_MANAGER ? api::CERTIFICATE_ROLE_MANAGER
                                                                     : api::CERTIFICATE_ROLE_WORKER;
  if (s.certificate != want) {
    return {RoleStep::kRenewCertificate, s.role == api::NODE_ROLE_MANAGER
                                             ? "promoted: a manager certificate"
                                             : "demoted: a worker certificate"};
  }
  if (s.role == api::NODE_ROLE_MANAGER && s.desired_role == api::NODE_ROLE_MANAGER) {
    if (s.lost_raft_id != 0 && s.raft_id == s.lost_raft_id) return {};
    return {RoleStep::kStartManager, "promoted: joining the managers' Raft group"};
  }
  return {};
}

const char* RoleStepName(RoleStep step) {
  switch (step) {
    case RoleStep::kNothing:
      return "nothing";
    case RoleStep::kWait:
      return "wait";
    case RoleStep::kStopManager:
      return "stop manager";
    case RoleStep::kRenewCertificate:
      return "renew certificate";
    case RoleStep::kStartManager:
      return "start manager";
    case RoleStep::kLeave:
      return "leave";
  }
  return "?";
}

}  // namespace shoal::node
