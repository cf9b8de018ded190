// A node's manager role: its Raft member (RocksDB log under <state>/raft), the replicated
// store, and one gRPC server on the listen address, behind Shoal's mutual TLS, serving Raft,
// Control, Dispatcher, Logs and NodeCA (as Docker's port 2377 serves everything). When its
// member leads, the leader-only components run (orchestrator, allocator, scheduler, dispatcher,
// log broker, role manager).
//
// The member finds its peers from the managers' node objects (their Raft id and address), which
// it follows as they change, and from the members it was started with.
//
// Thread-safety: Start and Stop from one thread; the accessors from any.
#pragma once

#include <grpcpp/grpcpp.h>

#include <atomic>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "common/clock.h"
#include "manager/controlapi/control_api.h"
#include "manager/controlapi/control_service.h"
#include "manager/dispatcher/dispatcher_service.h"
#include "manager/leader_components.h"
#include "manager/logbroker/logs_service.h"
#include "manager/raft_join.h"
#include "manager/role_manager.h"
#include "manager/store/raft_binding.h"
#include "manager/store/store.h"
#include "manager/watch_loop.h"
#include "pki/root_ca.h"
#include "raft/grpc_transport.h"
#include "raft/node.h"
#include "raft/rocksdb_log_store.h"

namespace shoal::node {

class ManagerRole {
 public:
  struct Options {
    std::string node_id;
    std::string cluster_id;
    // <state>/raft holds the log; <tls_dir> the node's manager certificate.
    std::string raft_dir;
    std::string tls_dir;
    std::string listen_addr;
    std::string advertise_addr;
    uint64_t raft_id = 0;
    // A new cluster's only member (Init): the log is bootstrapped with this member alone.
    bool bootstrap = false;
    // Members to reach at first (a joining manager's, from the Join answer), by Raft id.
    std::map<uint64_t, std::string> peers;
    absl::Duration tick_interval = absl::Milliseconds(100);
    const Clock* clock = nullptr;
    // The member was removed from the Raft group (demoted, perhaps while away): on the node
    // thread, which it must not block.
    std::function<void()> on_removed;
  };

  explicit ManagerRole(Options options);
  ~ManagerRole();

  absl::Status Start();
  // Stops serving and the member (a leader first hands its leadership over).
  void Stop();

  manager::store::Store& store() { return *store_; }
  raft::Node* raft() { return node_.get(); }
  // The Control service for the local socket (every caller is this node).
  manager::controlapi::ControlService* local_control() { return local_control_.get(); }
  // The Logs service (SubscribeLogs needs no caller identity: the socket serves it too).
  manager::logbroker::LogsService* logs() { return logs_.get(); }
  // The API address of the manager that leads now ("" when none is known).
  std::string LeaderAddr();
  // The Raft members and their addresses, as the managers' node objects say.
  std::map<uint64_t, std::string> Peers();
  // Whether this member votes, as of the last membership it applied (a promoted node's member
  // is a learner until it has caught up).
  bool voter() const { return voter_.load(); }

 private:
  class LazyNodeCa;
  const pki::RootCa* Ca();
  void SyncPeers(absl::Time deadline);

  Options options_;
  const Clock& clock_;
  std::unique_ptr<raft::RocksDbLogStore> log_;
  std::unique_ptr<raft::GrpcTransport> transport_;
  manager::store::RaftProposer proposer_;
  std::unique_ptr<manager::store::Store> store_;
  std::unique_ptr<manager::controlapi::ControlApi> control_api_;
  std::unique_ptr<manager::controlapi::ControlService> control_;
  std::unique_ptr<manager::controlapi::ControlService> local_control_;
  std::unique_ptr<manager::dispatcher::DispatcherService> dispatcher_;
  std::unique_ptr<manager::logbroker::LogsService> logs_;
  std::unique_ptr<manager::NodeMembership> membership_;
  std::unique_ptr<manager::JoinService> join_;
  std::unique_ptr<manager::LeaderComponents> components_;
  std::unique_ptr<LazyNodeCa> node_ca_;
  std::unique_ptr<manager::store::StoreStateMachine> sm_;
  std::unique_ptr<raft::Node> node_;
  std::atomic<bool> voter_{false};
  std::unique_ptr<grpc::Server> server_;
  manager::WatchLoop peer_sync_;

  absl::Mutex mu_;
  std::unique_ptr<pki::RootCa> ca_ ABSL_GUARDED_BY(mu_);
  std::map<uint64_t, std::string> peers_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, std::shared_ptr<api::Control::StubInterface>> leader_stubs_
      ABSL_GUARDED_BY(mu_);
  std::map<std::string, std::shared_ptr<api::Logs::StubInterface>> leader_logs_stubs_
      ABSL_GUARDED_BY(mu_);
  bool started_ = false;
};

}  // namespace shoal::node
