// An in-process cluster for tests: managers on real Raft (RocksDB, gRPC on loopback), each
// serving the Control and Dispatcher APIs behind Shoal's mutual TLS, starting its leader-only
// components (orchestrator, allocator, scheduler, dispatcher) when it leads; fake workers
// (fake_worker.h) that talk to them as nodes do, and real worker agents (worker/agent.h) on a
// sim executor; an operator client holding an operator
// certificate, as CI does.
//
// Thread-safety: from the test thread.
#pragma once

#include <grpcpp/grpcpp.h>

#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "integration/testing/fake_worker.h"
#include "manager/controlapi/control_api.h"
#include "manager/controlapi/control_service.h"
#include "manager/dispatcher/dispatcher_service.h"
#include "manager/leader_components.h"
#include "manager/store/testing/raft_cluster.h"
#include "pki/access_check.h"
#include "pki/testing/test_pki.h"
#include "proto/control.grpc.pb.h"
#include "proto/raft_service.grpc.pb.h"
#include "worker/agent.h"
#include "worker/executor.h"

namespace shoal::integration {

class TestCluster {
 public:
  struct Options {
    std::filesystem::path base;
    int managers = 3;
    int workers = 3;
    // The cluster's heartbeat period: short, so that a dead worker is noticed in a test.
    absl::Duration heartbeat_period = absl::Milliseconds(300);
    uint64_t snapshot_interval = 500;
    // Real worker agents (worker/agent.h) started with the cluster, besides the fake workers,
    // on `executor` (default: a sim executor), each with a task database under base.
    int agents = 0;
    worker::Executor* executor = nullptr;
  };

  explicit TestCluster(Options options);
  ~TestCluster();

  // Bootstraps the managers, writes the cluster object, starts the workers. OK or why not.
  absl::Status Start();

  // The operator's view: a Control client through manager `via` (any live one when 0).
  api::Control::Stub& Control(uint64_t via = 0);

  // A Control client through manager `via` holding a certificate of its own (CN `cn`, `role`).
  std::unique_ptr<api::Control::Stub> ControlAs(const std::string& cn, api::CertificateRole role,
                                                uint64_t via);
  // Manager `id`'s Raft address, and a Raft client to it holding a certificate of its own.
  std::unique_ptr<raftpb::Raft::Stub> RaftAs(const std::string& cn, api::CertificateRole role,
                                             uint64_t id);
  // Control calls manager `id` served on behalf of a follower that forwarded them.
  uint64_t forwarded_served(uint64_t id);

  // For clients of their own (swarmctl): the operator certificate's directory, manager `id`'s
  // Control API address (kept after it is killed), every manager's, and the test CA.
  const std::string& operator_dir() const { return operator_dir_; }
  std::string api_addr(uint64_t id) { return ApiAddr(id); }
  std::vector<std::string> api_addrs() {
    std::vector<std::string> out;
    for (uint64_t id = 1; id <= static_cast<uint64_t>(options_.managers); ++id) {
      out.push_back(ApiAddr(id));
    }
    return out;
  }
  pki::testing::TestPki& pki() { return *pki_; }

  uint64_t Leader();
  void KillManager(uint64_t id);
  void StartManager(uint64_t id);
  bool up(uint64_t id) { return raft_->M(id).up; }

  FakeWorker& worker(int i) { return *workers_.at(i); }
  int workers() const { return static_cast<int>(workers_.size()); }
  // A new worker, started.
  FakeWorker& AddWorker();

  // Real worker agents: agent(i) is the i-th (its node id is agent_id(i)); StopAgent ends it
  // as a daemon that stops (its tasks go on), StartAgent starts it again on the same state.
  worker::Agent& agent(int i) { return *agents_.at(i).agent; }
  const std::string& agent_id(int i) const { return agents_.at(i).id; }
  int agents() const { return static_cast<int>(agents_.size()); }
  worker::Agent& AddAgent();
  void StopAgent(int i);
  worker::Agent& StartAgent(int i);

  // Waits (on a live manager's store events, a second at most between looks) until `done`
  // holds on the store, letting everything run meanwhile. False after `wait`.
  bool WaitFor(const std::function<bool(const manager::store::ReadTx&)>& done,
               absl::Duration wait = absl::Seconds(60));

 private:
  struct Api;
  void OnStart(manager::store::testing::Member& m);
  void OnKill(manager::store::testing::Member& m);
  std::string ApiAddr(uint64_t id);

  Options options_;
  std::unique_ptr<pki::testing::TestPki> pki_;
  std::string operator_dir_;
  std::unique_ptr<manager::store::testing::RaftCluster> raft_;
  absl::Mutex mu_;
  std::map<uint64_t, std::unique_ptr<Api>> apis_ ABSL_GUARDED_BY(mu_);
  std::map<uint64_t, std::string> api_addrs_ ABSL_GUARDED_BY(mu_);
  std::map<uint64_t, std::unique_ptr<api::Control::Stub>> control_;
  std::vector<std::unique_ptr<FakeWorker>> workers_;
  struct AgentSlot {
    std::string id;
    std::string tls_dir;
    std::string state_dir;
    std::unique_ptr<worker::Agent> agent;
  };
  std::unique_ptr<worker::Executor> own_executor_;
  std::vector<AgentSlot> agents_;
};

}  // namespace shoal::integration
