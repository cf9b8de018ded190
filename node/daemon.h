// swarmd: one node of a cluster. It always runs the worker role (worker/agent.h on the chosen
// executor) and, when its certificate says manager, the manager role (manager_role.h). It
// serves the NodeControl API (init, join, leave, info) and, on a manager, the Control API and
// Logs' SubscribeLogs on its local unix socket (root-only: the socket's permissions are the
// authorisation).
//
// Roles switch on a running node, without a restart (role_switch.h decides the steps): after
// `node promote` its session tells it its new role; it renews its certificate (a manager's) and
// starts the manager role, which joins the Raft group through the leader's Join RPC as a
// manager join does. After `node demote`, once the leader removed its Raft member, it stops the
// manager role, deletes its Raft state (as Docker does) and renews to a worker's certificate.
// node.json follows each switch. The worker role, and so every task, runs throughout.
//
// A join with a manager token is a promotion that starts at once: the node joins and runs as a
// worker, its node object says manager, and the role switch does the rest (retried until the
// Raft group admits the member); Join waits for the manager role for a while, then answers that
// the join goes on in the background.
//
// A node removed from the cluster while it ran or was away (`node rm --force`) is refused by
// every manager from then on; its session says so, and it leaves the swarm as `swarmctl leave
// --force` would: it stops its tasks and deletes the cluster's state, and is inactive.
//
// The state directory holds everything a restarted node needs to rejoin by itself:
//
//   node.json    node id, cluster id, role, Raft id, addresses, the managers last heard of
//   tls/         the node's key, certificate and the root CA (pki/tls_files.h)
//   raft/        a manager's Raft log and snapshots (RocksDB)
//   worker/      the agent's task database (RocksDB)
//   tasks/       the process executor's task directories and logs
//
// Thread-safety: the NodeControl handlers run on gRPC threads and serialise on the daemon's
// lock; Start and Stop from the main thread. Role switches run on a thread of their own (never
// on the agent's session thread, which StopRoles joins while it holds the lock).
#pragma once

#include <grpcpp/grpcpp.h>

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "node/manager_role.h"
#include "node/node_state.h"
#include "node/role_switch.h"
#include "pki/node_ca_client.h"
#include "proto/node_control.grpc.pb.h"
#include "proto/raft_service.pb.h"
#include "worker/agent.h"
#include "worker/executor.h"

namespace shoal::node {

inline constexpr char kVersion[] = "0.6.0";

class Daemon final : public api::NodeControl::Service {
 public:
  struct Options {
    std::string state_dir = "/var/lib/swarmd";
    std::string listen_addr = "0.0.0.0:4242";
    std::string advertise_addr;
    std::string hostname;
    // "process" or "sim" ("oci" comes with the container executor).
    std::string executor = "process";
    std::string control_socket = "/run/swarmd/swarmd.sock";
    // An unattended join at start, when the node is in no cluster yet.
    std::string join_addr;
    std::string join_token;
    // Raft's tick (elections take 10 ticks): shorter in tests.
    absl::Duration tick_interval = absl::Milliseconds(100);
  };

  static absl::StatusOr<std::unique_ptr<Daemon>> Create(Options options);
  ~Daemon() override;

  // Serves the control socket, starts the roles the state directory says (a restarted node
  // rejoins by itself), or joins unattended.
  absl::Status Start();
  // Stops the roles (tasks keep running: a restarted daemon adopts them) and the socket.
  void Stop();

  grpc::Status Init(grpc::ServerContext*, const api::InitRequest*, api::InitResponse*) override;
  grpc::Status Join(grpc::ServerContext*, const api::JoinRequest*, api::JoinResponse*) override;
  grpc::Status Leave(grpc::ServerContext*, const api::LeaveRequest*,
                     api::LeaveResponse*) override;
  grpc::Status Info(grpc::ServerContext*, const api::InfoRequest*, api::InfoResponse*) override;
  grpc::Status Unlock(grpc::ServerContext*, const api::UnlockRequest*,
                      api::UnlockResponse*) override;

 private:
  explicit Daemon(Options options);

  std::string TlsDir() const;
  absl::StatusOr<std::string> AdvertiseAddr(const std::string& requested,
                                            const std::string& listen) const;
  // The listen and advertise addresses of a node about to init or join (the requested ones,
  // or the daemon's); FAILED_PRECONDITION when it is in a cluster already.
  absl::StatusOr<std::pair<std::string, std::string>> NewMemberAddrs(
      const std::string& listen_requested, const std::string& advertise_requested) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::Status DoInit(const api::InitRequest& request, api::InitResponse* response)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::Status DoJoin(const api::JoinRequest& request, api::JoinResponse* response)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::Status DoForceNewCluster(const api::InitRequest& request, api::InitResponse* response)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Starts the manager role (when the state says manager) and the worker role.
  absl::Status StartRoles(bool bootstrap, std::map<uint64_t, std::string> peers)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void StopRoles() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Leaves the cluster: stops every task and the roles, deletes the cluster's state (node.json,
  // certificates, Raft, tasks). `swarmctl leave`, and a node that learns it was removed.
  void LeaveLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The agent's session was refused: notes whether it says this node was removed.
  void OnSessionRefused(const std::string& node_id, const grpc::Status& refusal);
  // The manager role of state_ (its Raft id, addresses): a new cluster's only member
  // (`bootstrap`), or a member that reaches `peers` first.
  absl::Status StartManagerLocked(bool bootstrap, std::map<uint64_t, std::string> peers)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The Raft Join RPC through the leader at `via` (retried while it answers UNAVAILABLE, until
  // `deadline`): this node's member id and the members. The errors name `via`.
  absl::StatusOr<raftpb::JoinResponse> JoinRaftGroup(const std::string& via,
                                                     const std::string& cluster_id,
                                                     const std::string& advertise,
                                                     absl::Time deadline) const;
  // Replaces the background certificate renewer by one through the manager at `addr`; renews
  // at once when `renew_now` (the error is the renewal's).
  absl::Status ResetRenewerLocked(const std::string& addr, bool renew_now)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // A session message: keeps the manager list, and wakes the role switch with the node object.
  void OnSession(const api::SessionMessage& m);
  std::shared_ptr<ManagerRole> CurrentManager();
  // Writes node.json (and keeps what it wrote for OnSession).
  absl::Status Persist(const NodeState& state);
  // Writes state_'s role and Raft id into node.json as last written (the manager list there is
  // the sessions').
  absl::Status PersistRoleLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  // Role switches: the thread waits for news (a session message, a Raft removal) or a retry,
  // then carries out what NextRoleStep decides, step by step, under mu_.
  void RunRoleSwitches();
  bool RoleNewsLocked() const ABSL_SHARED_LOCKS_REQUIRED(role_mu_);
  // How long a removed member runs on before its manager role stops: it answers the votes of
  // members that missed the commit index (raft/README.md).
  absl::Duration MemberGrace() const;
  // One round; `next`: when to look again without news (InfiniteFuture: only on news).
  absl::Status SwitchRoles(absl::Time* next);
  absl::StatusOr<RoleSituation> SituationLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Renews the certificate through another manager; FAILED_PRECONDITION when the CA signed
  // another role than `want` (the cluster has not made the change yet: tried again later).
  absl::Status RenewForRoleLocked(api::CertificateRole want) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::Status PromoteLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::Status DemoteLocked(const RoleSituation& s, const RoleDecision& d)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // A manager other than this node (the one the agent's session is with, else the first it
  // knows); "" when it knows none.
  std::string RemoteManagerLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The running manager's member `raft_id` was removed: on Raft's node thread (must not block).
  void NoteRaftRemoved(uint64_t raft_id);

  const Options options_;
  std::unique_ptr<worker::Executor> executor_;
  std::unique_ptr<grpc::Server> socket_;
  // The Control service on the socket of a worker: answers that this is no manager.
  std::unique_ptr<grpc::Service> no_control_;

  absl::Mutex mu_;
  NodeState state_ ABSL_GUARDED_BY(mu_);
  // Shared with the socket's Control calls in flight.
  std::shared_ptr<ManagerRole> manager_ ABSL_GUARDED_BY(mu_);
  std::unique_ptr<worker::Agent> agent_ ABSL_GUARDED_BY(mu_);
  std::unique_ptr<pki::CertificateRenewer> renewer_ ABSL_GUARDED_BY(mu_);
  // node.json as last written; its own lock, as the agent's threads update it.
  absl::Mutex file_mu_ ABSL_ACQUIRED_AFTER(mu_);
  NodeState saved_ ABSL_GUARDED_BY(file_mu_);
  // The Control calls on the socket go to the manager role, when there is one; so does
  // `service logs` (Logs' SubscribeLogs).
  class SocketControl;
  std::unique_ptr<SocketControl> socket_control_;

  // Why the last role switch failed (OK once one succeeds): what a manager's join that goes on
  // in the background tells the operator.
  absl::Status role_error_ ABSL_GUARDED_BY(mu_);
  // Stop has begun: a join waiting for the manager role returns.
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  // A Raft id this node was removed under while the cluster still listed it as a manager
  // (role_switch.h): it does not rejoin under it.
  uint64_t lost_raft_id_ ABSL_GUARDED_BY(mu_) = 0;
  // What the role switch thread waits for; taken alone (never while waiting for another lock)
  // or after mu_.
  absl::Mutex role_mu_ ABSL_ACQUIRED_AFTER(mu_);
  bool role_wake_ ABSL_GUARDED_BY(role_mu_) = false;
  bool role_stop_ ABSL_GUARDED_BY(role_mu_) = false;
  // The node object as the last session message told it.
  std::optional<api::Node> session_node_ ABSL_GUARDED_BY(role_mu_);
  // The running manager's Raft id, and whether (and when) its member was removed.
  uint64_t running_raft_id_ ABSL_GUARDED_BY(role_mu_) = 0;
  bool raft_removed_ ABSL_GUARDED_BY(role_mu_) = false;
  // The managers refused the session: this node was removed from the cluster.
  bool removed_from_cluster_ ABSL_GUARDED_BY(role_mu_) = false;
  absl::Time removed_at_ ABSL_GUARDED_BY(role_mu_);
  // When the running manager was first found removed (by Raft, or by the session saying
  // worker): its member runs on for a grace from then.
  absl::Time stop_noticed_at_ ABSL_GUARDED_BY(role_mu_) = absl::InfiniteFuture();
  std::thread role_thread_;
  class SocketLogs;
  std::unique_ptr<SocketLogs> socket_logs_;
};

}  // namespace shoal::node
