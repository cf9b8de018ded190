// The daemon's role switches (daemon.h, role_switch.h): promote and demote on a running node.
#include <filesystem>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/log.h"
#include "common/status.h"
#include "common/status_macros.h"
#include "node/daemon.h"
#include "pki/certificate.h"
#include "pki/tls_files.h"

namespace shoal::node {
namespace {

constexpr char kLog[] = "swarmd";

// How long a manager whose Raft member was removed waits for its session to tell the demotion
// (the two travel apart) before it concludes it was removed some other way.
constexpr absl::Duration kRemovalGrace = absl::Seconds(5);
// Back-off of a role switch that failed (a leader being elected, a manager unreachable).
constexpr absl::Duration kRoleRetryFirst = absl::Milliseconds(500);
constexpr absl::Duration kRoleRetryMax = absl::Seconds(30);
// The RPCs of a role switch run under the daemon's lock: bounded.
constexpr absl::Duration kRoleRpcTimeout = absl::Seconds(10);

}  // namespace

void Daemon::NoteRaftRemoved(uint64_t raft_id) {
  absl::MutexLock lock(&role_mu_);
  if (raft_id != running_raft_id_ || raft_removed_) return;
  raft_removed_ = true;
  removed_at_ = absl::Now();
  stop_noticed_at_ = std::min(stop_noticed_at_, removed_at_);
  role_wake_ = true;
}

absl::Duration Daemon::MemberGrace() const {
  // raft/README.md: the simulation gives 40 ticks.
  return 40 * options_.tick_interval;
}

bool Daemon::RoleNewsLocked() const { return role_wake_ || role_stop_; }

void Daemon::RunRoleSwitches() {
  absl::Duration backoff = kRoleRetryFirst;
  absl::Time retry_at = absl::InfiniteFuture();
  while (true) {
    {
      absl::MutexLock lock(&role_mu_);
      role_mu_.AwaitWithDeadline(absl::Condition(this, &Daemon::RoleNewsLocked), retry_at);
      if (role_stop_) return;
      role_wake_ = false;
    }
    absl::Time next = absl::InfiniteFuture();
    const absl::Status s = SwitchRoles(&next);
    {
      absl::MutexLock lock(&mu_);
      role_error_ = s;
    }
    if (s.ok()) {
      backoff = kRoleRetryFirst;
      retry_at = next;
    } else {
      log::Warning(kLog, "role switch failed; will retry", {{"error", s}, {"in", backoff}});
      retry_at = absl::Now() + backoff;
      backoff = std::min(backoff * 2, kRoleRetryMax);
    }
  }
}

absl::StatusOr<RoleSituation> Daemon::SituationLocked() {
  RoleSituation s;
  s.manager_running = manager_ != nullptr;
  auto bundle = pki::ReadTlsDir(TlsDir());
  if (!bundle.ok()) return bundle.status();
  auto cert = pki::ParseCertificate(bundle->cert_pem);
  if (!cert.ok()) return cert.status();
  s.certificate = cert->role;
  s.lost_raft_id = lost_raft_id_;
  absl::MutexLock lock(&role_mu_);
  const absl::Time now = absl::Now();
  s.raft_removed = raft_removed_;
  s.removed_from_cluster = removed_from_cluster_;
  s.removal_grace_over = raft_removed_ && now >= removed_at_ + kRemovalGrace;
  if (session_node_.has_value()) {
    s.known = true;
    s.role = session_node_->role();
    s.desired_role = session_node_->spec().desired_role();
    s.raft_id = session_node_->manager_status().raft_id();
  }
  if (s.manager_running && s.known && s.role == api::NODE_ROLE_WORKER) {
    stop_noticed_at_ = std::min(stop_noticed_at_, now);
  }
  s.member_grace_over = now >= stop_noticed_at_ + MemberGrace();
  return s;
}

absl::Status Daemon::SwitchRoles(absl::Time* next) {
  absl::MutexLock lock(&mu_);
  if (!state_.in_cluster() || agent_ == nullptr) return absl::OkStatus();
  // Each step changes what the next decision sees; a step that does not (a renewal that keeps
  // the role) fails, so this ends.
  for (int steps = 0; steps < 8; ++steps) {
    ASSIGN_OR_RETURN(const RoleSituation situation, SituationLocked());
    const RoleDecision d = NextRoleStep(situation);
    if (d.step == RoleStep::kNothing) return absl::OkStatus();
    if (d.step == RoleStep::kWait) {
      // Until the first grace under way ends.
      absl::MutexLock role_lock(&role_mu_);
      const absl::Time now = absl::Now();
      absl::Time wake = absl::InfiniteFuture();
      for (absl::Time end : {stop_noticed_at_ + MemberGrace(),
                             raft_removed_ ? removed_at_ + kRemovalGrace : absl::InfinitePast()}) {
        if (end > now) wake = std::min(wake, end);
      }
      *next = wake == absl::InfiniteFuture() ? now + absl::Milliseconds(100) : wake;
      log::Debug(kLog, "role switch waits", {{"why", d.reason}, {"until", *next}});
      return absl::OkStatus();
    }
    log::Info(kLog, "role switch", {{"step", RoleStepName(d.step)}, {"why", d.reason}});
    switch (d.step) {
      case RoleStep::kRenewCertificate:
        RETURN_IF_ERROR(
            RenewForRoleLocked(situation.manager_running || situation.role == api::NODE_ROLE_MANAGER
                                   ? api::CERTIFICATE_ROLE_MANAGER
                                   : api::CERTIFICATE_ROLE_WORKER));
        break;
      case RoleStep::kStopManager:
        RETURN_IF_ERROR(DemoteLocked(situation, d));
        break;
      case RoleStep::kStartManager:
        RETURN_IF_ERROR(PromoteLocked());
        break;
      case RoleStep::kLeave:
        LeaveLocked();
        return absl::OkStatus();  // in no cluster now: nothing more to switch
      default:
        break;
    }
  }
  return absl::OkStatus();
}

std::string Daemon::RemoteManagerLocked() {
  const std::string current = agent_->manager();
  if (!current.empty() && current != state_.advertise_addr) return current;
  for (const std::string& m : agent_->managers()) {
    if (m != state_.advertise_addr) return m;
  }
  return "";
}

absl::Status Daemon::RenewForRoleLocked(api::CertificateRole want) {
  const std::string via = RemoteManagerLocked();
  if (via.empty()) return absl::UnavailableError("no other manager known to renew through");
  // The background renewer goes through the same manager from now on (a demoted manager's
  // own address serves no more).
  const std::string background = manager_ != nullptr ? state_.advertise_addr : via;
  RETURN_IF_ERROR(Annotate(ResetRenewerLocked(via, /*renew_now=*/true),
                           absl::StrCat("renewing the certificate through ", via)));
  if (background != via) {
    if (absl::Status s = ResetRenewerLocked(background, false); !s.ok()) {
      log::Warning(kLog, "certificate renewal is off", {{"error", s}});
    }
  }
  ASSIGN_OR_RETURN(pki::TlsBundle bundle, pki::ReadTlsDir(TlsDir()));
  ASSIGN_OR_RETURN(pki::CertificateInfo cert, pki::ParseCertificate(bundle.cert_pem));
  if (cert.role != want) {
    return absl::FailedPreconditionError(
        absl::StrCat("the CA signed a ", pki::RoleName(cert.role), " certificate, not a ",
                     pki::RoleName(want), " one: the cluster has not made the change yet"));
  }
  log::Info(kLog, "certificate renewed for the new role", {{"role", pki::RoleName(want)}});
  return absl::OkStatus();
}

absl::Status Daemon::PromoteLocked() {
  // Through the manager the agent's session is with: the leader (only it serves sessions, and
  // only it answers Join).
  const std::string via = RemoteManagerLocked();
  if (via.empty()) return absl::UnavailableError("no manager known to join the Raft group through");
  const std::string raft_dir = options_.state_dir + "/raft";
  std::error_code ec;
  if (std::filesystem::exists(raft_dir, ec)) {
    // A worker holds no Raft state: this is a stale one (a demotion that could not delete
    // it); a member joins with an empty log.
    log::Warning(kLog, "deleting a stale Raft directory before joining", {{"dir", raft_dir}});
    std::filesystem::remove_all(raft_dir, ec);
    if (ec) {
      return absl::InternalError(
          absl::StrCat("cannot delete the stale Raft directory ", raft_dir, ": ", ec.message()));
    }
  }
  ASSIGN_OR_RETURN(
      raftpb::JoinResponse seat,
      JoinRaftGroup(via, state_.cluster_id, state_.advertise_addr, absl::Now() + kRoleRpcTimeout));
  std::map<uint64_t, std::string> peers;
  for (const raftpb::RaftMember& m : seat.members()) peers[m.raft_id()] = m.addr();
  // node.json first, as a manager join does: a restart never finds a Raft directory that no
  // node.json names (a worker's is stale and deleted), so a member never restarts empty
  // under an id that voted.
  const NodeState before = state_;
  state_.role = "manager";
  state_.raft_id = seat.raft_id();
  if (absl::Status s = PersistRoleLocked(); !s.ok()) {
    state_ = before;
    return Annotate(s, "recording the promotion");
  }
  if (absl::Status s = StartManagerLocked(false, std::move(peers)); !s.ok()) {
    // Joining again reuses the member id the leader recorded on the node object.
    state_ = before;
    manager_.reset();
    if (absl::Status p = PersistRoleLocked(); !p.ok()) {
      log::Error(kLog, "cannot record the failed promotion in node.json", {{"error", p}});
    }
    std::filesystem::remove_all(raft_dir, ec);
    return s;
  }
  if (absl::Status s = ResetRenewerLocked(state_.advertise_addr, false); !s.ok()) {
    log::Warning(kLog, "certificate renewal is off", {{"error", s}});
  }
  log::Info(kLog, "promoted: the manager role runs (a learner until it caught up, then a voter)",
            {{"node", state_.node_id}, {"raft_id", state_.raft_id}, {"via", via}});
  return absl::OkStatus();
}

absl::Status Daemon::DemoteLocked(const RoleSituation& s, const RoleDecision& d) {
  const uint64_t raft_id = state_.raft_id;
  manager_->Stop();
  manager_.reset();
  {
    absl::MutexLock lock(&role_mu_);
    running_raft_id_ = 0;
    raft_removed_ = false;
    stop_noticed_at_ = absl::InfiniteFuture();
  }
  state_.role = "worker";
  state_.raft_id = 0;
  // A removed member never comes back under its id: its state is of no use, and holds the
  // cluster's secrets (Docker deletes it too). Once node.json says worker: a manager restarted
  // without its Raft directory could not start.
  const std::string raft_dir = options_.state_dir + "/raft";
  if (absl::Status st = PersistRoleLocked(); !st.ok()) {
    log::Error(kLog, "cannot record the demotion in node.json: the Raft directory stays",
               {{"error", st}, {"dir", raft_dir}});
  } else {
    std::error_code ec;
    std::filesystem::remove_all(raft_dir, ec);
    if (ec) {
      log::Error(kLog, "cannot delete the Raft directory of the stopped manager role",
                 {{"dir", raft_dir}, {"error", ec.message()}});
    }
  }
  const bool demoted =
      s.known && (s.desired_role == api::NODE_ROLE_WORKER || s.role == api::NODE_ROLE_WORKER);
  if (demoted) {
    log::Info(kLog, "demoted: the manager role stopped; this node goes on as a worker",
              {{"node", state_.node_id}, {"raft_id", raft_id}});
  } else {
    lost_raft_id_ = raft_id;
    log::Error(
        kLog,
        absl::StrCat(d.reason, ": the manager role stopped and this node goes on as a worker. ",
                     "Its member was removed some other way than a demotion, or its Raft state was "
                     "lost; to make it a manager again, run `swarmctl node demote ",
                     state_.node_id, "` then `swarmctl node promote ", state_.node_id, "`"),
        {{"node", state_.node_id}, {"raft_id", raft_id}});
  }
  const std::string via = RemoteManagerLocked();
  if (!via.empty()) {
    if (absl::Status st = ResetRenewerLocked(via, false); !st.ok()) {
      log::Warning(kLog, "certificate renewal is off", {{"error", st}});
    }
  }
  return absl::OkStatus();
}

}  // namespace shoal::node
