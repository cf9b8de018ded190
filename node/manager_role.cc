#include "node/manager_role.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/id.h"
#include "common/log.h"
#include "manager/store_ca_registry.h"
#include "pki/access_check.h"
#include "pki/certificate.h"
#include "pki/node_ca_service.h"
#include "pki/tls_credentials.h"
#include "pki/tls_files.h"

namespace shoal::node {

using manager::store::ReadTx;

namespace {

constexpr char kLog[] = "manager";

// The store's state machine, telling the role of its member's removal and of the membership.
class RoleStateMachine : public manager::store::StoreStateMachine {
 public:
  RoleStateMachine(manager::store::Store* store, std::function<void(bool, uint64_t)> leadership,
                   std::function<void()> removed,
                   std::function<void(const raftpb::ConfState&)> membership)
      : StoreStateMachine(store, std::move(leadership)),
        removed_(std::move(removed)),
        membership_(std::move(membership)) {}
  void RemovedFromCluster() override {
    if (removed_) removed_();
  }
  void MembershipChanged(uint64_t, const raftpb::ConfState& cs) override { membership_(cs); }

 private:
  std::function<void()> removed_;
  std::function<void(const raftpb::ConfState&)> membership_;
};

}  // namespace

// NodeCA needs the cluster's CA key, which a joining manager has only once its store caught
// up: until then it answers UNAVAILABLE (the joining node tries another manager).
class ManagerRole::LazyNodeCa final : public api::NodeCA::Service {
 public:
  LazyNodeCa(ManagerRole* role, std::string cluster_id)
      : role_(role), registry_(role->store_.get()), cluster_id_(std::move(cluster_id)) {}

  grpc::Status GetRootCACertificate(grpc::ServerContext* c,
                                    const api::GetRootCACertificateRequest* r,
                                    api::GetRootCACertificateResponse* out) override {
    pki::NodeCaService* s = Get();
    return s == nullptr ? Unavailable() : s->GetRootCACertificate(c, r, out);
  }
  grpc::Status IssueNodeCertificate(grpc::ServerContext* c,
                                    const api::IssueNodeCertificateRequest* r,
                                    api::IssueNodeCertificateResponse* out) override {
    pki::NodeCaService* s = Get();
    return s == nullptr ? Unavailable() : s->IssueNodeCertificate(c, r, out);
  }
  grpc::Status NodeCertificateStatus(grpc::ServerContext* c,
                                     const api::NodeCertificateStatusRequest* r,
                                     api::NodeCertificateStatusResponse* out) override {
    pki::NodeCaService* s = Get();
    return s == nullptr ? Unavailable() : s->NodeCertificateStatus(c, r, out);
  }

 private:
  static grpc::Status Unavailable() {
    return grpc::Status(grpc::StatusCode::UNAVAILABLE,
                        "this manager has not caught up with the cluster's state yet: try another");
  }
  pki::NodeCaService* Get() {
    absl::MutexLock lock(&mu_);
    if (service_ != nullptr) return service_.get();
    const pki::RootCa* ca = role_->Ca();
    if (ca == nullptr) return nullptr;
    auto s = pki::NodeCaService::Create({cluster_id_}, *ca, registry_, ids_, role_->clock_);
    if (!s.ok()) {
      log::Error(kLog, "cannot serve NodeCA", {{"error", s.status()}});
      return nullptr;
    }
    service_ = std::move(*s);
    return service_.get();
  }

  ManagerRole* const role_;
  manager::StoreCaRegistry registry_;
  const std::string cluster_id_;
  IdGenerator ids_;
  absl::Mutex mu_;
  std::unique_ptr<pki::NodeCaService> service_ ABSL_GUARDED_BY(mu_);
};

ManagerRole::ManagerRole(Options options)
    : options_(std::move(options)),
      clock_(options_.clock != nullptr ? *options_.clock : RealClock()) {}

ManagerRole::~ManagerRole() { Stop(); }

const pki::RootCa* ManagerRole::Ca() {
  absl::MutexLock lock(&mu_);
  if (ca_ != nullptr) return ca_.get();
  api::RootCA root;
  store_->View([&](const ReadTx& tx) {
    auto clusters = tx.List<api::Cluster>();
    if (!clusters.empty()) root = clusters.front()->root_ca();
  });
  if (root.ca_key().empty()) return nullptr;
  auto ca = pki::RootCa::FromProto(root, clock_);
  if (!ca.ok()) {
    log::Error(kLog, "the cluster's root CA does not load", {{"error", ca.status()}});
    return nullptr;
  }
  ca_ = std::move(*ca);
  return ca_.get();
}

std::map<uint64_t, std::string> ManagerRole::Peers() {
  std::map<uint64_t, std::string> out;
  store_->View([&](const ReadTx& tx) {
    for (const api::Node* n : tx.List<api::Node>()) {
      const auto& m = n->manager_status();
      if (m.raft_id() != 0 && !m.addr().empty()) out[m.raft_id()] = m.addr();
    }
  });
  return out;
}

std::string ManagerRole::LeaderAddr() {
  if (node_ == nullptr) return "";
  const uint64_t leader = node_->GetStatus().leader;
  if (leader == 0) return "";
  if (leader == options_.raft_id) return options_.advertise_addr;
  auto peers = Peers();
  auto it = peers.find(leader);
  if (it != peers.end()) return it->second;
  absl::MutexLock lock(&mu_);
  auto known = peers_.find(leader);
  return known == peers_.end() ? "" : known->second;
}

void ManagerRole::SyncPeers(absl::Time deadline) {
  auto watch = [this] {
    return store_->Watch(
        [](const manager::store::Event& e) { return e.kind == manager::store::Kind::kNode; });
  };
  if (peer_sync_.watch() == nullptr) {
    peer_sync_.set_watch(watch());
  } else {
    auto e = peer_sync_.watch()->Next(deadline);
    if (!e.ok()) {
      // A restore closed it (or the loop stops, and set_watch closes the new one at once):
      // watch anew and look at the whole state.
      peer_sync_.set_watch(watch());
    } else if (!e->has_value()) {
      return;
    }
    // Take the rest of the burst at once.
    while (true) {
      auto more = peer_sync_.watch()->Next(absl::InfinitePast());
      if (!more.ok() || !more->has_value()) break;
    }
  }
  const std::map<uint64_t, std::string> now = Peers();
  absl::MutexLock lock(&mu_);
  for (const auto& [id, addr] : now) {
    if (id == options_.raft_id) continue;
    auto it = peers_.find(id);
    if (it != peers_.end() && it->second == addr) continue;
    transport_->AddPeer(id, addr);
    peers_[id] = addr;
  }
}

absl::Status ManagerRole::Start() {
  raft::RocksDbLogStore::Options lo;
  lo.path = options_.raft_dir;
  lo.create_if_missing = options_.bootstrap || !options_.peers.empty();
  auto log = raft::RocksDbLogStore::Open(lo);
  if (!log.ok()) return log.status();
  log_ = std::move(*log);
  if (options_.bootstrap) {
    if (absl::Status s = raft::Bootstrap(*log_, std::vector<uint64_t>{options_.raft_id}); !s.ok()) {
      return s;
    }
  }

  raft::GrpcTransport::Options to;
  to.self = options_.raft_id;
  to.channel_credentials = pki::ClientCredentials(options_.tls_dir, options_.cluster_id);
  to.tls_server_name = pki::kManagerServerName;
  auto transport = raft::GrpcTransport::Create(to);
  if (!transport.ok()) return transport.status();
  transport_ = std::move(*transport);

  manager::store::Store::Options so;
  so.proposal_nonce = static_cast<uint32_t>(options_.raft_id);
  so.clock = &clock_;
  store_ = std::make_unique<manager::store::Store>(&proposer_, so);

  manager::controlapi::ControlApi::Options co;
  co.store = store_.get();
  co.members = [this] {
    std::map<uint64_t, manager::controlapi::ControlApi::Options::Member> out;
    raft::Node* n = node_.get();
    if (n == nullptr) return out;
    auto members = n->Members().get();  // FAILED_PRECONDITION where this member does not lead
    if (!members.ok()) return out;
    const uint64_t leader = n->GetStatus().leader;
    for (const auto& m : *members) out[m.id] = {m.id == leader, m.active};
    return out;
  };
  control_api_ = std::make_unique<manager::controlapi::ControlApi>(co);
  manager::controlapi::ControlService::Options cs;
  cs.api = control_api_.get();
  cs.store = store_.get();
  cs.cluster_id = options_.cluster_id;
  cs.ca = [this] { return Ca(); };
  // Calls reaching a follower go to the leader, over this manager's own certificate.
  cs.leader = [this]() -> std::shared_ptr<api::Control::StubInterface> {
    const std::string addr = LeaderAddr();
    if (addr.empty() || addr == options_.advertise_addr) return nullptr;
    absl::MutexLock lock(&mu_);
    auto& stub = leader_stubs_[addr];
    if (stub == nullptr) {
      stub = api::Control::NewStub(pki::CreateManagerChannel(
          addr, pki::ClientCredentials(options_.tls_dir, options_.cluster_id)));
    }
    return stub;
  };
  control_ = std::make_unique<manager::controlapi::ControlService>(cs);
  pki::CertificateInfo self;
  self.subject = options_.node_id;
  self.role = api::CERTIFICATE_ROLE_MANAGER;
  self.cluster_id = options_.cluster_id;
  cs.local_caller = self;
  local_control_ = std::make_unique<manager::controlapi::ControlService>(cs);

  dispatcher_ = std::make_unique<manager::dispatcher::DispatcherService>([this] {
    return LeaderAddr();
  });
  // A follower proxies subscriptions to the leader, over this manager's own certificate.
  manager::logbroker::LogsService::Options ls;
  ls.leader_addr = [this] { return LeaderAddr(); };
  ls.leader = [this]() -> std::shared_ptr<api::Logs::StubInterface> {
    const std::string addr = LeaderAddr();
    if (addr.empty() || addr == options_.advertise_addr) return nullptr;
    absl::MutexLock lock(&mu_);
    auto& stub = leader_logs_stubs_[addr];
    if (stub == nullptr) {
      stub = api::Logs::NewStub(pki::CreateManagerChannel(
          addr, pki::ClientCredentials(options_.tls_dir, options_.cluster_id)));
    }
    return stub;
  };
  logs_ = std::make_unique<manager::logbroker::LogsService>(ls);
  membership_ = std::make_unique<manager::NodeMembership>([this] { return node_.get(); });
  manager::LeaderComponents::Options lc;
  lc.store = store_.get();
  lc.clock = &clock_;
  lc.dispatcher_service = dispatcher_.get();
  lc.logs_service = logs_.get();
  lc.membership = membership_.get();
  components_ = std::make_unique<manager::LeaderComponents>(lc);
  join_ = std::make_unique<manager::JoinService>(
      manager::JoinService::Options{store_.get(), membership_.get(), nullptr});
  transport_->SetJoinHandler([join = join_.get()](grpc::ServerContext* c,
                                                  const raftpb::JoinRequest& r,
                                                  raftpb::JoinResponse* out) {
    return join->Serve(c, r, out);
  });
  node_ca_ = std::make_unique<LazyNodeCa>(this, options_.cluster_id);

  sm_ = std::make_unique<RoleStateMachine>(
      store_.get(),
      [this](bool leading, uint64_t term) { components_->OnLeadership(leading, term); },
      options_.on_removed,
      [this](const raftpb::ConfState& cs) {
        voter_ = std::find(cs.voters().begin(), cs.voters().end(), options_.raft_id) !=
                 cs.voters().end();
      });
  raft::Node::Options no;
  no.raft.id = options_.raft_id;
  no.raft.random_seed = options_.raft_id;
  no.tick_interval = options_.tick_interval;
  no.storage = log_.get();
  no.transport = transport_.get();
  no.state_machine = sm_.get();
  auto node = raft::Node::Create(no);
  if (!node.ok()) return node.status();
  node_ = std::move(*node);
  proposer_.Bind(node_.get());

  auto ca_pem = pki::ReadTlsDir(options_.tls_dir);
  if (!ca_pem.ok()) return ca_pem.status();
  // A node removed with `node rm` is refused on every call (its certificate is revoked).
  auto registry = std::make_shared<manager::StoreCaRegistry>(store_.get());
  auto check = pki::AccessCheck::Create(
      {options_.cluster_id, ca_pem->ca_pem}, clock_,
      [registry, revoked = registry->Revocation()](const pki::CertificateInfo& peer) {
        return revoked(peer);
      });
  if (!check.ok()) return check.status();
  grpc::ServerBuilder builder;
  int port = 0;
  builder.AddListeningPort(options_.listen_addr,
                           pki::ServerCredentials(options_.tls_dir, std::move(*check)), &port);
  transport_->AttachToServer(builder);
  builder.RegisterService(control_.get());
  builder.RegisterService(dispatcher_.get());
  builder.RegisterService(logs_.get());
  builder.RegisterService(node_ca_.get());
  server_ = builder.BuildAndStart();
  if (server_ == nullptr || port == 0) {
    return absl::UnavailableError(
        absl::StrCat("cannot listen on ", options_.listen_addr, ": is the address in use?"));
  }
  transport_->Start();
  {
    absl::MutexLock lock(&mu_);
    for (const auto& [id, addr] : options_.peers) {
      if (id == options_.raft_id) continue;
      transport_->AddPeer(id, addr);
      peers_[id] = addr;
    }
  }
  node_->Start();
  started_ = true;
  peer_sync_.Start([this](absl::Time deadline) { SyncPeers(deadline); });
  log::Info(kLog, "manager started",
            {{"raft_id", options_.raft_id}, {"listen", options_.listen_addr},
             {"advertise", options_.advertise_addr}});
  return absl::OkStatus();
}

void ManagerRole::Stop() {
  if (!started_) return;
  started_ = false;
  peer_sync_.Stop();
  proposer_.Bind(nullptr);
  // The node first: a leader hands its leadership over, and the components hear they lost it.
  node_->Stop();
  server_->Shutdown(std::chrono::system_clock::now() + std::chrono::milliseconds(500));
  transport_->SetJoinHandler(nullptr);
  components_.reset();
  transport_.reset();
  server_.reset();
  node_.reset();
  sm_.reset();
}

}  // namespace shoal::node
