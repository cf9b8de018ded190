#include "integration/testing/test_cluster.h"

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "manager/raft_join.h"
#include "gtest/gtest.h"
#include "pki/tls_credentials.h"
#include "worker/sim_executor.h"

namespace shoal::integration {

using manager::store::ReadTx;
using manager::store::WriteTx;
using manager::store::testing::Member;

namespace {
constexpr char kCluster[] = "integrationcluster";

// A manager's channels to whoever leads, by address.
struct LeaderStubs {
  absl::Mutex mu;
  std::map<std::string, std::shared_ptr<api::Control::StubInterface>> by_addr ABSL_GUARDED_BY(mu);
};
}  // namespace

// One manager's API side: the Control and Dispatcher services on their own TLS server, and
// the leader-only components.
struct TestCluster::Api {
  std::unique_ptr<manager::controlapi::ControlApi> control_api;
  std::unique_ptr<manager::controlapi::ControlService> control;
  std::unique_ptr<manager::dispatcher::DispatcherService> dispatcher;
  std::unique_ptr<manager::NodeMembership> membership;
  std::unique_ptr<manager::JoinService> join;
  std::unique_ptr<manager::LeaderComponents> components;
  std::unique_ptr<grpc::Server> server;
};

TestCluster::TestCluster(Options options) : options_(std::move(options)) {}

TestCluster::~TestCluster() {
  for (auto& w : workers_) w->Kill();
  for (auto& a : agents_) a.agent.reset();
  if (raft_ != nullptr) {
    for (uint64_t id = 1; id <= raft_->size(); ++id) raft_->Kill(id);
  }
}

std::string TestCluster::ApiAddr(uint64_t id) {
  absl::MutexLock lock(&mu_);
  auto it = api_addrs_.find(id);
  return it == api_addrs_.end() ? "" : it->second;
}

void TestCluster::OnStart(Member& m) {
  auto api = std::make_unique<Api>();
  manager::controlapi::ControlApi::Options co;
  co.store = m.store.get();
  api->control_api = std::make_unique<manager::controlapi::ControlApi>(co);
  auto dir = pki_->IssueDir(absl::StrCat("manager-", m.id), api::CERTIFICATE_ROLE_MANAGER);
  Member* mp = &m;
  manager::controlapi::ControlService::Options so;
  so.api = api->control_api.get();
  so.store = m.store.get();
  so.cluster_id = kCluster;
  so.ca = [this]() -> const pki::RootCa* { return &pki_->ca(); };
  // Calls reaching a follower go to the leader, over this manager's own certificate.
  so.leader = [this, mp, tls = *dir, stubs = std::make_shared<LeaderStubs>()]()
      -> std::shared_ptr<api::Control::StubInterface> {
    const uint64_t leader = mp->node ? mp->node->GetStatus().leader : 0;
    if (leader == 0 || leader == mp->id) return nullptr;
    const std::string addr = ApiAddr(leader);
    if (addr.empty()) return nullptr;
    absl::MutexLock lock(&stubs->mu);
    auto& stub = stubs->by_addr[addr];
    if (stub == nullptr) {
      stub = api::Control::NewStub(
          pki::CreateManagerChannel(addr, pki::ClientCredentials(tls, kCluster)));
    }
    return stub;
  };
  api->control = std::make_unique<manager::controlapi::ControlService>(so);
  api->dispatcher = std::make_unique<manager::dispatcher::DispatcherService>([this, mp] {
    const uint64_t leader = mp->node ? mp->node->GetStatus().leader : 0;
    return leader == 0 ? std::string() : ApiAddr(leader);
  });
  api->membership = std::make_unique<manager::NodeMembership>([mp] { return mp->node.get(); });
  manager::LeaderComponents::Options lo;
  lo.store = m.store.get();
  lo.dispatcher_service = api->dispatcher.get();
  lo.membership = api->membership.get();
  api->components = std::make_unique<manager::LeaderComponents>(lo);
  // Promoted nodes join the Raft group through whichever manager leads.
  api->join = std::make_unique<manager::JoinService>(
      manager::JoinService::Options{m.store.get(), api->membership.get(), nullptr});
  m.transport->SetJoinHandler([join = api->join.get()](grpc::ServerContext* c,
                                                       const raftpb::JoinRequest& r,
                                                       raftpb::JoinResponse* out) {
    return join->Serve(c, r, out);
  });

  auto check = pki::AccessCheck::Create({kCluster, pki_->ca().cert_pem()}, RealClock(), nullptr);
  grpc::ServerBuilder builder;
  int port = 0;
  // The same port as before when the manager restarts, so that workers find it again.
  const std::string before = ApiAddr(m.id);
  builder.AddListeningPort(before.empty() ? "127.0.0.1:0" : before,
                           pki::ServerCredentials(*dir, std::move(*check)), &port);
  builder.RegisterService(api->control.get());
  builder.RegisterService(api->dispatcher.get());
  api->server = builder.BuildAndStart();
  absl::MutexLock lock(&mu_);
  api_addrs_[m.id] = absl::StrCat("127.0.0.1:", port);
  apis_[m.id] = std::move(api);
}

void TestCluster::OnKill(Member& m) {
  std::unique_ptr<Api> api;
  {
    absl::MutexLock lock(&mu_);
    api = std::move(apis_[m.id]);
  }
  control_.erase(m.id);
  if (api == nullptr) return;
  api->server->Shutdown(std::chrono::system_clock::now() + std::chrono::milliseconds(100));
  if (m.transport) m.transport->SetJoinHandler(nullptr);
  api->components.reset();
  api->server.reset();
}

absl::Status TestCluster::Start() {
  auto pki = pki::testing::TestPki::Create(kCluster, RealClock());
  if (!pki.ok()) return pki.status();
  pki_ = std::move(*pki);
  auto op = pki_->IssueDir("ci", api::CERTIFICATE_ROLE_OPERATOR);
  if (!op.ok()) return op.status();
  operator_dir_ = *op;

  manager::store::testing::RaftCluster::Options o;
  o.base = options_.base;
  // Raft between the managers over mutual TLS too, with each manager's certificate.
  std::map<uint64_t, std::string> raft_dirs;
  for (int i = 1; i <= options_.managers; ++i) {
    auto dir = pki_->IssueDir(absl::StrCat("manager-", i), api::CERTIFICATE_ROLE_MANAGER);
    if (!dir.ok()) return dir.status();
    raft_dirs[i] = *dir;
  }
  o.channel_credentials = [raft_dirs](uint64_t id) {
    return pki::ClientCredentials(raft_dirs.at(id), kCluster);
  };
  o.server_credentials = [this, raft_dirs](uint64_t id) {
    auto check = pki::AccessCheck::Create({kCluster, pki_->ca().cert_pem()}, RealClock(), nullptr);
    return pki::ServerCredentials(raft_dirs.at(id), std::move(*check));
  };
  o.tls_server_name = pki::kManagerServerName;
  o.snapshot_interval = options_.snapshot_interval;
  o.on_start = [this](Member& m) { OnStart(m); };
  o.on_leadership = [this](Member& m, bool leading, uint64_t term) {
    absl::MutexLock lock(&mu_);
    auto it = apis_.find(m.id);
    if (it != apis_.end() && it->second != nullptr) {
      it->second->components->OnLeadership(leading, term);
    }
  };
  o.on_kill = [this](Member& m) { OnKill(m); };
  raft_ = std::make_unique<manager::store::testing::RaftCluster>(o);
  raft_->Bootstrap(options_.managers);

  auto wrote = raft_->Write(1, [&](WriteTx& tx) -> absl::Status {
    if (!tx.List<api::Cluster>().empty()) return absl::OkStatus();
    api::Cluster c;
    c.mutable_meta()->set_id(kCluster);
    c.mutable_spec()->mutable_annotations()->set_name("default");
    const int64_t ns = absl::ToInt64Nanoseconds(options_.heartbeat_period);
    c.mutable_spec()->mutable_dispatcher()->mutable_heartbeat_period()->set_seconds(ns / 1000000000);
    c.mutable_spec()->mutable_dispatcher()->mutable_heartbeat_period()->set_nanos(
        static_cast<int32_t>(ns % 1000000000));
    *c.mutable_root_ca() = pki_->ca().ToProto();
    return tx.Create(c);
  });
  if (!wrote.ok()) return wrote.status();
  for (int i = 0; i < options_.workers; ++i) AddWorker();
  for (int i = 0; i < options_.agents; ++i) AddAgent();
  return absl::OkStatus();
}

worker::Agent& TestCluster::AddAgent() {
  AgentSlot slot;
  slot.id = absl::StrCat("agent-", agents_.size() + 1);
  slot.tls_dir = *pki_->IssueDir(slot.id, api::CERTIFICATE_ROLE_WORKER);
  slot.state_dir = (options_.base / slot.id).string();
  std::filesystem::create_directories(slot.state_dir);
  agents_.push_back(std::move(slot));
  return StartAgent(static_cast<int>(agents_.size()) - 1);
}

void TestCluster::StopAgent(int i) { agents_.at(i).agent.reset(); }

worker::Agent& TestCluster::StartAgent(int i) {
  AgentSlot& slot = agents_.at(i);
  if (options_.executor == nullptr) {
    if (own_executor_ == nullptr) own_executor_ = std::make_unique<worker::SimExecutor>();
    options_.executor = own_executor_.get();
  }
  worker::Agent::Options o;
  o.node_id = slot.id;
  for (uint64_t m = 1; m <= raft_->size(); ++m) o.managers.push_back(ApiAddr(m));
  o.channel = [tls = slot.tls_dir](const std::string& addr) {
    return pki::CreateManagerChannel(addr, pki::ClientCredentials(tls, kCluster));
  };
  o.executor = options_.executor;
  o.description.set_hostname(slot.id);
  o.description.mutable_resources()->set_nano_cpus(8'000'000'000);
  o.description.mutable_resources()->set_memory_bytes(int64_t{16} << 30);
  o.description.mutable_platform()->set_os("linux");
  o.description.mutable_platform()->set_architecture("amd64");
  o.state_dir = slot.state_dir;
  o.poll_interval = absl::Milliseconds(50);
  o.backoff_max = absl::Milliseconds(500);
  o.seed = static_cast<uint64_t>(i) + 1;
  auto agent = worker::Agent::Create(std::move(o));
  if (!agent.ok()) {
    ADD_FAILURE() << slot.id << ": " << agent.status();
    std::abort();
  }
  slot.agent = std::move(*agent);
  slot.agent->Start();
  return *slot.agent;
}

FakeWorker& TestCluster::AddWorker() {
  const std::string id = absl::StrCat("worker-", workers_.size() + 1);
  auto dir = pki_->IssueDir(id, api::CERTIFICATE_ROLE_WORKER);
  std::vector<std::string> addrs;
  for (uint64_t m = 1; m <= raft_->size(); ++m) addrs.push_back(ApiAddr(m));
  workers_.push_back(std::make_unique<FakeWorker>(id, addrs, *dir, kCluster));
  workers_.back()->Start();
  return *workers_.back();
}

api::Control::Stub& TestCluster::Control(uint64_t via) {
  if (via == 0) {
    for (uint64_t id = 1; id <= raft_->size(); ++id) {
      if (raft_->M(id).up) {
        via = id;
        break;
      }
    }
  }
  auto& stub = control_[via];
  if (stub == nullptr) {
    stub = api::Control::NewStub(pki::CreateManagerChannel(
        ApiAddr(via), pki::ClientCredentials(operator_dir_, kCluster)));
  }
  return *stub;
}

std::unique_ptr<api::Control::Stub> TestCluster::ControlAs(const std::string& cn,
                                                           api::CertificateRole role,
                                                           uint64_t via) {
  auto dir = pki_->IssueDir(cn, role);
  if (!dir.ok()) return nullptr;
  return api::Control::NewStub(
      pki::CreateManagerChannel(ApiAddr(via), pki::ClientCredentials(*dir, kCluster)));
}

std::unique_ptr<raftpb::Raft::Stub> TestCluster::RaftAs(const std::string& cn,
                                                        api::CertificateRole role, uint64_t id) {
  auto dir = pki_->IssueDir(cn, role);
  if (!dir.ok()) return nullptr;
  return raftpb::Raft::NewStub(
      pki::CreateManagerChannel(raft_->M(id).addr, pki::ClientCredentials(*dir, kCluster)));
}

uint64_t TestCluster::forwarded_served(uint64_t id) {
  absl::MutexLock lock(&mu_);
  auto it = apis_.find(id);
  return it == apis_.end() || it->second == nullptr ? 0 : it->second->control->forwarded_served();
}

uint64_t TestCluster::Leader() { return raft_->Leader(); }

void TestCluster::KillManager(uint64_t id) { raft_->Kill(id); }
void TestCluster::StartManager(uint64_t id) { raft_->Start(id); }

bool TestCluster::WaitFor(const std::function<bool(const ReadTx&)>& done, absl::Duration wait) {
  const absl::Time deadline = absl::Now() + wait;
  while (absl::Now() < deadline) {
    uint64_t via = 0;
    for (uint64_t id = 1; id <= raft_->size(); ++id) {
      if (raft_->M(id).up) via = id;
    }
    if (via == 0) return false;
    bool ok = false;
    auto w = raft_->M(via).store->Watch(nullptr, [&](const ReadTx& tx) { ok = done(tx); });
    if (ok) return true;
    (void)w->Next(std::min(deadline, absl::Now() + absl::Seconds(1)));
  }
  return false;
}

}  // namespace shoal::integration
