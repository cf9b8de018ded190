// The Raft transport over Shoal's mutual TLS (pki/), with the credentials passed in through
// GrpcTransport::Options as swarmd passes them: managers replicate to each other, and nothing
// else (a worker's certificate, another cluster's manager) gets a message through.
#include <grpc/support/log.h>
#include <grpcpp/grpcpp.h>

#include <atomic>

#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "common/testing/manual_clock.h"
#include "gtest/gtest.h"
#include "pki/access_check.h"
#include "pki/testing/test_pki.h"
#include "pki/tls_credentials.h"
#include "raft/grpc_transport.h"
#include "raft/memory_log_store.h"
#include "raft/node.h"

namespace shoal::raft {
namespace {

constexpr char kCluster[] = "raft-tls";
constexpr absl::Duration kWait = absl::Seconds(20);

// gRPC's own error lines (the TLS layer logs through gpr_log), counted.
std::atomic<int> grpc_errors{0};
void CountErrors(gpr_log_func_args* args) {
  if (args->severity == GPR_LOG_SEVERITY_ERROR) {
    grpc_errors.fetch_add(1);
    std::fprintf(stderr, "grpc error: %s\n", args->message);
  }
}

class Values : public StateMachine {
 public:
  void Apply(uint64_t, absl::string_view data) override {
    absl::MutexLock lock(&mu_);
    values_.emplace_back(data);
  }
  std::string Snapshot() override { return ""; }
  absl::Status Restore(absl::string_view) override { return absl::OkStatus(); }
  bool WaitFor(size_t count) {
    absl::MutexLock lock(&mu_);
    auto enough = [&]() ABSL_NO_THREAD_SAFETY_ANALYSIS { return values_.size() >= count; };
    return mu_.AwaitWithTimeout(absl::Condition(&enough), kWait);
  }

 private:
  absl::Mutex mu_;
  std::vector<std::string> values_ ABSL_GUARDED_BY(mu_);
};

// Records what a transport reports back.
class Reports : public MessageHandler {
 public:
  void Receive(raftpb::Message) override {}
  void ReportUnreachable(uint64_t peer) override {
    absl::MutexLock lock(&mu_);
    unreachable_.push_back(peer);
  }
  void ReportSnapshot(uint64_t, bool) override {}
  bool WaitUnreachable(uint64_t peer, absl::Duration within) {
    absl::MutexLock lock(&mu_);
    auto reported = [&]() ABSL_NO_THREAD_SAFETY_ANALYSIS {
      for (uint64_t p : unreachable_) {
        if (p == peer) return true;
      }
      return false;
    };
    return mu_.AwaitWithTimeout(absl::Condition(&reported), within);
  }

 private:
  absl::Mutex mu_;
  std::vector<uint64_t> unreachable_ ABSL_GUARDED_BY(mu_);
};

struct Manager {
  std::string tls_dir;
  MemoryLogStore store;
  std::unique_ptr<GrpcTransport> transport;
  Values sm;
  std::unique_ptr<Node> node;
  std::unique_ptr<grpc::Server> server;
  std::string addr;
};

class TlsClusterTest : public ::testing::Test {
 protected:
  void SetUp() override {
    gpr_set_log_function(CountErrors);
    grpc_errors.store(0);
    auto pki = pki::testing::TestPki::Create(kCluster, clock_);
    ASSERT_TRUE(pki.ok()) << pki.status();
    pki_ = std::move(*pki);
    auto check = pki::AccessCheck::Create({kCluster, pki_->ca().cert_pem()}, clock_, nullptr);
    ASSERT_TRUE(check.ok()) << check.status();
    check_ = std::move(*check);
  }
  void TearDown() override {
    for (auto& m : managers_) {
      m->node->Stop();
      m->server->Shutdown(std::chrono::system_clock::now() + std::chrono::milliseconds(200));
    }
  }

  // Managers 1..3 of a new cluster, each with its own certificate, started and connected.
  void StartCluster() {
    for (uint64_t id = 1; id <= 3; ++id) {
      auto m = std::make_unique<Manager>();
      auto dir = pki_->IssueDir(absl::StrCat("manager", id), api::CERTIFICATE_ROLE_MANAGER);
      ASSERT_TRUE(dir.ok()) << dir.status();
      m->tls_dir = *dir;
      ASSERT_TRUE(Bootstrap(m->store, std::vector<uint64_t>{1, 2, 3}).ok());
      GrpcTransport::Options to;
      to.self = id;
      to.channel_credentials = pki::ClientCredentials(m->tls_dir, kCluster);
      to.tls_server_name = pki::kManagerServerName;
      auto transport = GrpcTransport::Create(to);
      ASSERT_TRUE(transport.ok()) << transport.status();
      m->transport = std::move(*transport);
      Node::Options no;
      no.raft.id = id;
      no.storage = &m->store;
      no.transport = m->transport.get();
      no.state_machine = &m->sm;
      no.tick_interval = absl::Milliseconds(10);
      auto node = Node::Create(no);
      ASSERT_TRUE(node.ok()) << node.status();
      m->node = std::move(*node);
      m->transport->SetHandler(m->node.get());
      grpc::ServerBuilder builder;
      int port = 0;
      builder.AddListeningPort("127.0.0.1:0", pki::ServerCredentials(m->tls_dir, check_), &port);
      builder.RegisterService(m->transport->service());
      m->server = builder.BuildAndStart();
      ASSERT_NE(m->server, nullptr);
      m->addr = absl::StrCat("127.0.0.1:", port);
      managers_.push_back(std::move(m));
    }
    for (size_t i = 0; i < managers_.size(); ++i) {
      for (size_t j = 0; j < managers_.size(); ++j) {
        if (i != j) managers_[i]->transport->AddPeer(j + 1, managers_[j]->addr);
      }
    }
    for (auto& m : managers_) m->node->Start();
    managers_[0]->node->Campaign();
    ASSERT_TRUE(managers_[0]->node->WaitForLeader(absl::Now() + kWait));
  }

  // A transport of raft id 9 with the certificate of `subject` in role `role` (of `cluster`,
  // this one when empty), reporting to `reports`.
  std::unique_ptr<GrpcTransport> Outsider(absl::string_view subject, api::CertificateRole role,
                                          Reports* reports, absl::string_view cluster = "") {
    auto dir = pki_->IssueDir(subject, role, pki::kDefaultNodeCertValidity, cluster);
    EXPECT_TRUE(dir.ok()) << dir.status();
    if (!dir.ok()) return nullptr;
    GrpcTransport::Options to;
    to.self = 9;
    to.channel_credentials = pki::ClientCredentials(*dir, kCluster);
    to.tls_server_name = pki::kManagerServerName;
    auto transport = GrpcTransport::Create(to);
    EXPECT_TRUE(transport.ok()) << transport.status();
    if (!transport.ok()) return nullptr;
    (*transport)->SetHandler(reports);
    return std::move(*transport);
  }

  uint64_t Leader() {
    const uint64_t leader = managers_[0]->node->GetStatus().leader;
    return leader;
  }

  ManualClock clock_{absl::FromUnixSeconds(absl::ToUnixSeconds(absl::Now()))};
  std::unique_ptr<pki::testing::TestPki> pki_;
  std::shared_ptr<const pki::AccessCheck> check_;
  std::vector<std::unique_ptr<Manager>> managers_;
};

TEST_F(TlsClusterTest, ManagersReplicateOverMutualTls) {
  ASSERT_NO_FATAL_FAILURE(StartCluster());
  Manager& leader = *managers_[Leader() - 1];
  for (int i = 0; i < 10; ++i) {
    absl::StatusOr<uint64_t> r = leader.node->Propose(absl::StrCat("v", i)).get();
    ASSERT_TRUE(r.ok()) << r.status();
  }
  for (auto& m : managers_) EXPECT_TRUE(m->sm.WaitFor(10)) << m->addr;
  // Connections ask for the managers' TLS name, not their address: no TLS error was logged.
  EXPECT_EQ(grpc_errors.load(), 0);
}

// A heartbeat of a far later term would depose the leader if it got through.
raftpb::Message Usurper(uint64_t to) {
  raftpb::Message m;
  m.set_type(raftpb::MSG_HEARTBEAT);
  m.set_from(9);
  m.set_to(to);
  m.set_term(1000);
  return m;
}

TEST_F(TlsClusterTest, NothingButThisClustersManagersGetsAMessageThrough) {
  ASSERT_NO_FATAL_FAILURE(StartCluster());
  const uint64_t leader = Leader();
  ASSERT_NE(leader, 0u);
  struct Case {
    const char* what;
    const char* subject;
    api::CertificateRole role;
    const char* cluster;
  };
  for (const Case& c : {Case{"a worker", "worker9", api::CERTIFICATE_ROLE_WORKER, ""},
                        Case{"another cluster's manager", "manager9",
                             api::CERTIFICATE_ROLE_MANAGER, "other-cluster"}}) {
    Reports reports;
    std::unique_ptr<GrpcTransport> outsider = Outsider(c.subject, c.role, &reports, c.cluster);
    ASSERT_NE(outsider, nullptr);
    outsider->AddPeer(leader, managers_[leader - 1]->addr);
    // A refused stream shows at the next write (as for any peer that went away): keep sending,
    // as Raft does, until the transport reports the peer unreachable.
    bool refused = false;
    for (const absl::Time deadline = absl::Now() + kWait; !refused && absl::Now() < deadline;) {
      outsider->Send({Usurper(leader)});
      refused = reports.WaitUnreachable(leader, absl::Milliseconds(50));
    }
    EXPECT_TRUE(refused) << c.what << ": its stream was never refused";
    EXPECT_LT(managers_[leader - 1]->node->GetStatus().term, 1000u) << c.what << " got through";
  }
  // And the cluster goes on committing under the same leader.
  absl::StatusOr<uint64_t> r = managers_[leader - 1]->node->Propose("after").get();
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(managers_[leader - 1]->node->GetStatus().leader, leader);
}

}  // namespace
}  // namespace shoal::raft
