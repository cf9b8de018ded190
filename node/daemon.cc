#include "node/daemon.h"

#include <ifaddrs.h>
#include <netinet/in.h>
#include <sys/stat.h>
#include <unistd.h>
#include <arpa/inet.h>

#include <filesystem>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "common/grpc_status.h"
#include "common/id.h"
#include "common/log.h"
#include "pki/access_check.h"
#include "pki/csr.h"
#include "pki/root_ca.h"
#include "pki/tls_credentials.h"
#include "pki/tls_files.h"
#include "proto/logs.grpc.pb.h"
#include "proto/raft_service.grpc.pb.h"
#include "raft/recovery.h"
#include "raft/rocksdb_log_store.h"
#include "worker/process_executor.h"
#include "worker/sim_executor.h"

namespace shoal::node {
namespace {

constexpr char kLog[] = "swarmd";
// How long `swarmctl join` with a manager token waits for the manager role to run.
constexpr absl::Duration kManagerJoinWait = absl::Seconds(30);

grpc::Status ToGrpc(const absl::Status& s) { return ToGrpcStatus(s); }

// The host part and port of "host:port" ("[v6]:port" too).
bool SplitHostPort(const std::string& addr, std::string* host, std::string* port) {
  const size_t colon = addr.rfind(':');
  if (colon == std::string::npos || colon + 1 == addr.size()) return false;
  *host = addr.substr(0, colon);
  *port = addr.substr(colon + 1);
  return !host->empty() && port->find_first_not_of("0123456789") == std::string::npos;
}

// The machine's only non-loopback IPv4 address, or why there is none to pick.
absl::StatusOr<std::string> OnlyAddress() {
  struct ifaddrs* list = nullptr;
  if (getifaddrs(&list) != 0) return absl::InternalError("cannot list the network interfaces");
  std::vector<std::string> found;
  for (struct ifaddrs* i = list; i != nullptr; i = i->ifa_next) {
    if (i->ifa_addr == nullptr || i->ifa_addr->sa_family != AF_INET) continue;
    char buf[INET_ADDRSTRLEN];
    const auto* in = reinterpret_cast<const sockaddr_in*>(i->ifa_addr);
    if (inet_ntop(AF_INET, &in->sin_addr, buf, sizeof buf) == nullptr) continue;
    if (absl::StartsWith(buf, "127.")) continue;
    found.push_back(buf);
  }
  freeifaddrs(list);
  if (found.size() == 1) return found[0];
  return absl::InvalidArgumentError(
      found.empty() ? "no address to advertise: give --advertise-addr"
                    : absl::StrCat("could not choose an address to advertise among ",
                                   absl::StrJoin(found, ", "), ": give --advertise-addr"));
}

api::NodeDescription Describe(const std::string& hostname, const std::string& executor) {
  api::NodeDescription d;
  d.set_executor(executor == "sim"       ? api::NodeDescription::EXECUTOR_KIND_SIM
                 : executor == "process" ? api::NodeDescription::EXECUTOR_KIND_PROCESS
                                         : api::NodeDescription::EXECUTOR_KIND_OCI);
  d.set_hostname(hostname);
  d.mutable_platform()->set_os("linux");
  d.mutable_platform()->set_architecture("x86_64");
  const unsigned cpus = std::max(1u, std::thread::hardware_concurrency());
  d.mutable_resources()->set_nano_cpus(int64_t{cpus} * 1'000'000'000);
  d.mutable_resources()->set_memory_bytes(int64_t{sysconf(_SC_PHYS_PAGES)} *
                                          int64_t{sysconf(_SC_PAGE_SIZE)});
  d.set_version(kVersion);
  return d;
}

absl::StatusOr<std::unique_ptr<worker::Executor>> MakeProcessExecutor(const std::string& dir) {
  worker::ProcessExecutor::Options o;
  o.state_dir = dir;  // tasks under <state>/tasks
  auto e = worker::ProcessExecutor::Create(o);
  if (!e.ok()) return e.status();
  return std::unique_ptr<worker::Executor>(std::move(*e));
}

uint64_t NewRaftId() {
  uint64_t id = 0;
  while (id == 0) SystemRandomBytes(reinterpret_cast<uint8_t*>(&id), sizeof id);
  return id;
}

}  // namespace

// The Control API on the local socket: the manager role's, while there is one.
class Daemon::SocketControl final : public api::Control::Service {
 public:
  explicit SocketControl(Daemon* d) : d_(d) {}

#define SHOAL_SOCKET_FORWARD(Name)                                                       \
  grpc::Status Name(grpc::ServerContext* c, const api::Name##Request* r,               \
                    api::Name##Response* out) override {                                 \
    std::shared_ptr<ManagerRole> m = d_->CurrentManager();                               \
    if (m == nullptr) return NotManager();                                               \
    return m->local_control()->Name(c, r, out);                                          \
  }
  SHOAL_CONTROL_METHODS(SHOAL_SOCKET_FORWARD)
#undef SHOAL_SOCKET_FORWARD

  grpc::Status Watch(grpc::ServerContext* c, const api::WatchRequest* r,
                     grpc::ServerWriter<api::WatchMessage>* w) override {
    std::shared_ptr<ManagerRole> m = d_->CurrentManager();
    if (m == nullptr) return NotManager();
    return m->local_control()->Watch(c, r, w);
  }

 private:
  static grpc::Status NotManager() {
    return grpc::Status(grpc::StatusCode::FAILED_PRECONDITION,
                        "this node is not a swarm manager: run the command on a manager, or use "
                        "--host with an operator certificate");
  }
  Daemon* const d_;
};

// `service logs` on the local socket: the manager role's Logs service (which proxies to the
// leader when this manager does not lead). Workers do not listen or publish here.
class Daemon::SocketLogs final : public api::Logs::Service {
 public:
  explicit SocketLogs(Daemon* d) : d_(d) {}

  grpc::Status SubscribeLogs(grpc::ServerContext* c, const api::SubscribeLogsRequest* r,
                             grpc::ServerWriter<api::SubscribeLogsMessage>* w) override {
    std::shared_ptr<ManagerRole> m = d_->CurrentManager();
    if (m == nullptr) {
      return grpc::Status(grpc::StatusCode::FAILED_PRECONDITION,
                          "this node is not a swarm manager: run the command on a manager, or use "
                          "--host with an operator certificate");
    }
    return m->logs()->SubscribeLogs(c, r, w);
  }

 private:
  Daemon* const d_;
};

Daemon::Daemon(Options options) : options_(std::move(options)) {}

Daemon::~Daemon() { Stop(); }

absl::StatusOr<std::unique_ptr<Daemon>> Daemon::Create(Options options) {
  if (options.executor != "sim" && options.executor != "process") {
    return absl::InvalidArgumentError(absl::StrCat(
        "--executor ", options.executor, ": not one of process, sim (oci comes later)"));
  }
  if (options.hostname.empty()) {
    char buf[256] = {};
    gethostname(buf, sizeof buf - 1);
    options.hostname = buf;
  }
  std::error_code ec;
  std::filesystem::create_directories(options.state_dir, ec);
  if (ec) {
    return absl::FailedPreconditionError(
        absl::StrCat("cannot create the state directory ", options.state_dir, ": ", ec.message()));
  }
  std::filesystem::permissions(options.state_dir, std::filesystem::perms::owner_all, ec);
  std::unique_ptr<Daemon> d(new Daemon(std::move(options)));
  if (d->options_.executor == "sim") {
    d->executor_ = std::make_unique<worker::SimExecutor>();
  } else {
    auto e = MakeProcessExecutor(d->options_.state_dir);
    if (!e.ok()) return e.status();
    d->executor_ = std::move(*e);
  }
  return d;
}

std::string Daemon::TlsDir() const { return options_.state_dir + "/tls"; }

std::shared_ptr<ManagerRole> Daemon::CurrentManager() {
  absl::MutexLock lock(&mu_);
  return manager_;
}

absl::Status Daemon::Start() {
  // The socket first: init and join arrive through it.
  const std::filesystem::path socket(options_.control_socket);
  if (socket.string().size() > 107) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--control-socket ", socket.string(), ": a unix socket path has at most 107 characters"));
  }
  std::error_code ec;
  std::filesystem::create_directories(socket.parent_path(), ec);
  std::filesystem::remove(socket, ec);  // a stale one from a daemon that died
  // Held from before the socket serves: an init or join that arrives at once waits until the
  // state directory is read (else both would start the roles).
  absl::MutexLock lock(&mu_);
  socket_control_ = std::make_unique<SocketControl>(this);
  socket_logs_ = std::make_unique<SocketLogs>(this);
  grpc::ServerBuilder builder;
  builder.AddListeningPort(absl::StrCat("unix:", socket.string()),
                           grpc::InsecureServerCredentials());
  builder.RegisterService(this);
  builder.RegisterService(socket_control_.get());
  builder.RegisterService(socket_logs_.get());
  socket_ = builder.BuildAndStart();
  if (socket_ == nullptr) {
    return absl::UnavailableError(absl::StrCat("cannot serve the control socket ", socket.string()));
  }
  // Root only: the socket's permissions are the authorisation.
  ::chmod(socket.c_str(), 0600);
  role_thread_ = std::thread([this] { RunRoleSwitches(); });

  auto state = LoadNodeState(options_.state_dir);
  if (state.ok()) {
    state_ = *std::move(state);
    {
      absl::MutexLock file_lock(&file_mu_);
      saved_ = state_;
    }
    log::Info(kLog, "rejoining the cluster",
              {{"node", state_.node_id}, {"role", state_.role}, {"cluster", state_.cluster_id}});
    const std::string raft_dir = options_.state_dir + "/raft";
    std::error_code ec;
    if (state_.role == "worker" && std::filesystem::exists(raft_dir, ec)) {
      // A demotion that stopped before it could delete it (node.json is written first).
      log::Warning(kLog, "deleting the Raft directory a demotion left behind", {{"dir", raft_dir}});
      std::filesystem::remove_all(raft_dir, ec);
    }
    if (state_.role == "manager" && !std::filesystem::exists(raft_dir, ec)) {
      // A join or promotion stopped between writing node.json and the member's first start
      // (which makes the directory): the member never wrote a vote, so it may join again
      // with an empty log (the leader gives it its id again). It runs as a worker until its
      // role switch has done so, as after `node promote`.
      log::Warning(kLog,
                   "node.json says manager but there is no Raft directory (an interrupted join "
                   "or promotion): joining the managers' Raft group again",
                   {{"raft_id", state_.raft_id}, {"dir", raft_dir}});
      state_.role = "worker";
      state_.raft_id = 0;
      if (absl::Status s = PersistRoleLocked(); !s.ok()) return s;
    }
    return StartRoles(false, {});
  }
  if (!absl::IsNotFound(state.status())) return state.status();
  if (!options_.join_addr.empty()) {
    api::JoinRequest req;
    req.add_remote_addrs(options_.join_addr);
    req.set_join_token(options_.join_token);
    api::JoinResponse resp;
    absl::Status joined = DoJoin(req, &resp);
    if (absl::IsDeadlineExceeded(joined) && state_.in_cluster()) {
      // A manager's join that goes on in the background: the daemon serves meanwhile.
      log::Warning(kLog, "the join goes on in the background", {{"error", joined}});
      return absl::OkStatus();
    }
    return joined;
  }
  log::Info(kLog, "in no cluster: waiting for swarmctl init or join",
            {{"socket", socket.string()}});
  return absl::OkStatus();
}

void Daemon::Stop() {
  {
    absl::MutexLock lock(&role_mu_);
    role_stop_ = true;
  }
  if (role_thread_.joinable()) role_thread_.join();
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
    StopRoles();
  }
  if (socket_ != nullptr) {
    socket_->Shutdown(std::chrono::system_clock::now() + std::chrono::milliseconds(200));
    socket_.reset();
    std::error_code ec;
    std::filesystem::remove(options_.control_socket, ec);
  }
}

absl::StatusOr<std::string> Daemon::AdvertiseAddr(const std::string& requested,
                                                  const std::string& listen) const {
  std::string lhost, lport;
  if (!SplitHostPort(listen, &lhost, &lport)) {
    return absl::InvalidArgumentError(
        absl::StrCat("--listen-addr \"", listen, "\" is not host:port"));
  }
  if (!requested.empty()) {
    std::string host, port;
    if (SplitHostPort(requested, &host, &port)) return requested;
    if (requested.find(':') != std::string::npos) {
      return absl::InvalidArgumentError(
          absl::StrCat("--advertise-addr \"", requested, "\" is not an address or host:port"));
    }
    return absl::StrCat(requested, ":", lport);  // the listen port, as Docker does
  }
  if (lhost != "0.0.0.0" && lhost != "[::]") return listen;
  auto only = OnlyAddress();
  if (!only.ok()) return only.status();
  return absl::StrCat(*only, ":", lport);
}

absl::Status Daemon::StartManagerLocked(bool bootstrap, std::map<uint64_t, std::string> peers) {
  ManagerRole::Options mo;
  mo.node_id = state_.node_id;
  mo.cluster_id = state_.cluster_id;
  mo.raft_dir = options_.state_dir + "/raft";
  mo.tls_dir = TlsDir();
  mo.listen_addr = state_.listen_addr;
  mo.advertise_addr = state_.advertise_addr;
  mo.raft_id = state_.raft_id;
  mo.bootstrap = bootstrap;
  mo.peers = std::move(peers);
  mo.tick_interval = options_.tick_interval;
  const uint64_t raft_id = state_.raft_id;
  mo.on_removed = [this, raft_id] { NoteRaftRemoved(raft_id); };
  {
    absl::MutexLock lock(&role_mu_);
    running_raft_id_ = raft_id;
    raft_removed_ = false;
    stop_noticed_at_ = absl::InfiniteFuture();
  }
  auto m = std::make_shared<ManagerRole>(mo);
  if (absl::Status s = m->Start(); !s.ok()) return s;
  manager_ = std::move(m);
  return absl::OkStatus();
}

absl::Status Daemon::ResetRenewerLocked(const std::string& addr, bool renew_now) {
  if (renewer_ != nullptr) renewer_->Stop();
  renewer_.reset();
  pki::CertificateRenewer::Options ro;
  ro.tls_dir = TlsDir();
  ro.random = SystemRandomBytes;
  // A role switch renews under the daemon's lock: bounded.
  ro.rpc_timeout = absl::Seconds(10);
  auto renewer = pki::CertificateRenewer::Create(
      ro, pki::CreateManagerChannel(addr, pki::ClientCredentials(TlsDir(), state_.cluster_id)),
      RealClock());
  if (!renewer.ok()) return renewer.status();
  renewer_ = std::move(*renewer);
  absl::Status renewed = renew_now ? renewer_->RenewNow() : absl::OkStatus();
  renewer_->Start(absl::Minutes(1));
  return renewed;
}

absl::Status Daemon::StartRoles(bool bootstrap, std::map<uint64_t, std::string> peers) {
  {
    absl::MutexLock lock(&role_mu_);
    session_node_.reset();
    raft_removed_ = false;
    removed_from_cluster_ = false;
    stop_noticed_at_ = absl::InfiniteFuture();
  }
  lost_raft_id_ = 0;
  if (state_.role == "manager") {
    if (absl::Status s = StartManagerLocked(bootstrap, std::move(peers)); !s.ok()) return s;
  }

  worker::Agent::Options ao;
  ao.node_id = state_.node_id;
  if (state_.role == "manager") ao.managers.push_back(state_.advertise_addr);
  for (const std::string& m : state_.managers) {
    if (std::find(ao.managers.begin(), ao.managers.end(), m) == ao.managers.end()) {
      ao.managers.push_back(m);
    }
  }
  auto creds = pki::ClientCredentials(TlsDir(), state_.cluster_id);
  ao.channel = [creds](const std::string& addr) {
    return pki::CreateManagerChannel(addr, creds);
  };
  ao.executor = executor_.get();
  ao.description = Describe(options_.hostname, options_.executor);
  ao.state_dir = options_.state_dir + "/worker";
  std::error_code ec;
  std::filesystem::create_directories(ao.state_dir, ec);
  ao.seed = std::hash<std::string>()(state_.node_id);
  ao.on_session = [this](const api::SessionMessage& m) { OnSession(m); };
  ao.on_refused = [this, id = state_.node_id](const grpc::Status& s) { OnSessionRefused(id, s); };
  auto agent = worker::Agent::Create(std::move(ao));
  if (!agent.ok()) return agent.status();
  agent_ = std::move(*agent);
  agent_->Start();

  // Certificates renew themselves in the background, through a manager.
  if (absl::Status s = ResetRenewerLocked(agent_->managers().front(), false); !s.ok()) {
    log::Warning(kLog, "certificate renewal is off", {{"error", s}});
  }
  return absl::OkStatus();
}

void Daemon::StopRoles() {
  if (renewer_ != nullptr) renewer_->Stop();
  renewer_.reset();
  if (agent_ != nullptr) agent_->Stop();
  agent_.reset();
  if (manager_ != nullptr) manager_->Stop();
  manager_.reset();
  absl::MutexLock lock(&role_mu_);
  session_node_.reset();
  running_raft_id_ = 0;
  raft_removed_ = false;
  removed_from_cluster_ = false;
  stop_noticed_at_ = absl::InfiniteFuture();
}

absl::Status Daemon::Persist(const NodeState& state) {
  absl::MutexLock lock(&file_mu_);
  saved_ = state;
  return SaveNodeState(options_.state_dir, state);
}

absl::Status Daemon::PersistRoleLocked() {
  absl::MutexLock lock(&file_mu_);
  saved_.role = state_.role;
  saved_.raft_id = state_.raft_id;
  return SaveNodeState(options_.state_dir, saved_);
}

void Daemon::OnSessionRefused(const std::string& node_id, const grpc::Status& refusal) {
  // On the agent's session thread: role_mu_ only (as OnSession).
  if (!pki::IsNodeRemovedError(static_cast<absl::StatusCode>(refusal.error_code()),
                               refusal.error_message(), node_id)) {
    return;
  }
  absl::MutexLock lock(&role_mu_);
  if (removed_from_cluster_) return;
  log::Warning(kLog, "the managers refuse this node: it was removed from the cluster",
               {{"node", node_id}, {"error", refusal.error_message()}});
  removed_from_cluster_ = true;
  role_wake_ = true;
}

void Daemon::OnSession(const api::SessionMessage& m) {
  // On the agent's session thread, which Stop joins while it holds mu_: only file_mu_ and
  // role_mu_ here (the role switch has a thread of its own).
  if (m.has_node()) {
    absl::MutexLock lock(&role_mu_);
    session_node_ = m.node();
    role_wake_ = true;
  }
  if (m.managers().empty()) return;
  std::vector<std::string> list;
  for (const api::WeightedPeer& p : m.managers()) list.push_back(p.addr());
  absl::MutexLock lock(&file_mu_);
  if (!saved_.in_cluster() || list == saved_.managers) return;
  saved_.managers = std::move(list);
  if (absl::Status s = SaveNodeState(options_.state_dir, saved_); !s.ok()) {
    log::Warning(kLog, "cannot save the manager list", {{"error", s}});
  }
}

grpc::Status Daemon::Init(grpc::ServerContext*, const api::InitRequest* request,
                          api::InitResponse* response) {
  absl::MutexLock lock(&mu_);
  return ToGrpc(DoInit(*request, response));
}

absl::StatusOr<std::pair<std::string, std::string>> Daemon::NewMemberAddrs(
    const std::string& listen_requested, const std::string& advertise_requested) const {
  if (state_.in_cluster()) {
    return absl::FailedPreconditionError(
        "this node is already part of a swarm: leave it first (swarmctl leave)");
  }
  std::string listen = listen_requested.empty() ? options_.listen_addr : listen_requested;
  auto advertise = AdvertiseAddr(
      advertise_requested.empty() ? options_.advertise_addr : advertise_requested, listen);
  if (!advertise.ok()) return advertise.status();
  return std::make_pair(std::move(listen), *std::move(advertise));
}

absl::Status Daemon::DoInit(const api::InitRequest& request, api::InitResponse* response) {
  if (request.force_new_cluster()) return DoForceNewCluster(request, response);
  auto addrs = NewMemberAddrs(request.listen_addr(), request.advertise_addr());
  if (!addrs.ok()) return addrs.status();
  const std::string& listen = addrs->first;
  const std::string* advertise = &addrs->second;

  IdGenerator ids;
  NodeState st;
  st.node_id = ids.Next();
  st.cluster_id = ids.Next();
  st.role = "manager";
  st.raft_id = NewRaftId();
  st.listen_addr = listen;
  st.advertise_addr = *advertise;
  st.managers = {*advertise};

  auto root = pki::NewClusterRootCa(RealClock(), SystemRandomBytes);
  if (!root.ok()) return root.status();
  auto ca = pki::RootCa::FromProto(*root, RealClock());
  if (!ca.ok()) return ca.status();
  auto kc = pki::GenerateKeyAndCsr(st.node_id);
  if (!kc.ok()) return kc.status();
  pki::TlsBundle bundle;
  auto cert = (*ca)->Sign({kc->csr_pem, st.node_id, api::CERTIFICATE_ROLE_MANAGER, st.cluster_id,
                           pki::kDefaultNodeCertValidity});
  if (!cert.ok()) return cert.status();
  bundle.cert_pem = *cert;
  bundle.key_pem = kc->key_pem;
  bundle.ca_pem = (*ca)->cert_pem();
  if (absl::Status s = pki::WriteTlsDir(TlsDir(), bundle); !s.ok()) return s;

  state_ = st;
  // A failed init leaves nothing: the node is in no cluster, and may init again.
  auto abandon = [&](const absl::Status& why) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    StopRoles();
    state_ = NodeState();
    std::error_code ec;
    for (const char* d : {"tls", "raft", "worker"}) {
      std::filesystem::remove_all(std::filesystem::path(options_.state_dir) / d, ec);
    }
    return why;
  };
  if (absl::Status s = StartRoles(/*bootstrap=*/true, {}); !s.ok()) return abandon(s);
  // The cluster object and this node's, once the new member leads (an election timeout).
  api::Cluster cluster;
  cluster.mutable_meta()->set_id(st.cluster_id);
  if (request.has_spec()) *cluster.mutable_spec() = request.spec();
  cluster.mutable_spec()->mutable_annotations()->set_name("default");
  *cluster.mutable_root_ca() = *root;
  api::Node self;
  self.mutable_meta()->set_id(st.node_id);
  self.set_role(api::NODE_ROLE_MANAGER);
  self.mutable_spec()->set_desired_role(api::NODE_ROLE_MANAGER);
  self.mutable_spec()->set_membership(api::NodeSpec::MEMBERSHIP_ACCEPTED);
  self.mutable_spec()->set_availability(request.availability());
  self.mutable_manager_status()->set_raft_id(st.raft_id);
  self.mutable_manager_status()->set_addr(st.advertise_addr);
  self.mutable_manager_status()->set_leader(true);
  self.mutable_manager_status()->set_reachability(api::ManagerStatus::REACHABILITY_REACHABLE);
  *self.mutable_description() = Describe(options_.hostname, options_.executor);
  const absl::Time deadline = absl::Now() + absl::Seconds(30);
  absl::Status wrote = absl::UnavailableError("no leader");
  while (absl::Now() < deadline) {
    manager_->raft()->WaitForLeader(deadline);
    auto r = manager_->store().Update([&](manager::store::WriteTx& tx) -> absl::Status {
      if (tx.Get<api::Cluster>(st.cluster_id) == nullptr) {
        if (absl::Status s = tx.Create(cluster); !s.ok()) return s;
      }
      const api::Node* n = tx.Get<api::Node>(st.node_id);
      if (n == nullptr) return tx.Create(self);
      // The node's own session may have registered it first (the dispatcher makes the node
      // object of a session it does not know): what init knows completes it.
      api::Node u = *n;
      u.set_role(self.role());
      *u.mutable_spec() = self.spec();
      *u.mutable_manager_status() = self.manager_status();
      return tx.Update(u);
    });
    wrote = r.status();
    // A write that met the session's (ALREADY_EXISTS, ABORTED) is decided again.
    if (wrote.ok() ||
        !(absl::IsUnavailable(wrote) || absl::IsAlreadyExists(wrote) || absl::IsAborted(wrote))) {
      break;
    }
  }
  if (!wrote.ok()) return abandon(wrote);
  if (absl::Status s = Persist(state_); !s.ok()) return s;
  log::Info(kLog, "initialised a new cluster",
            {{"cluster", st.cluster_id}, {"node", st.node_id}, {"advertise", st.advertise_addr}});
  response->set_node_id(st.node_id);
  response->set_cluster_id(st.cluster_id);
  *response->mutable_join_tokens() = root->join_tokens();
  response->set_advertise_addr(st.advertise_addr);
  return absl::OkStatus();
}

// Quorum loss: this manager's Raft log becomes a one-member cluster that holds every write the
// log holds (raft::ForceNewCluster), and the manager role starts again on it. The other
// managers' node objects stay (as Docker leaves them): `node demote`/`node rm --force` them, or
// wipe them and join them again.
absl::Status Daemon::DoForceNewCluster(const api::InitRequest& request,
                                       api::InitResponse* response) {
  if (!state_.in_cluster() || state_.role != "manager" || state_.raft_id == 0) {
    return absl::FailedPreconditionError(
        "--force-new-cluster: this node holds no manager state to recover a cluster from (run "
        "it on a manager of the cluster that lost its quorum)");
  }
  if ((!request.listen_addr().empty() && request.listen_addr() != state_.listen_addr) ||
      (!request.advertise_addr().empty() && request.advertise_addr() != state_.advertise_addr)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--force-new-cluster keeps this manager's addresses (listen ", state_.listen_addr,
        ", advertise ", state_.advertise_addr, "): leave out --listen-addr and --advertise-addr"));
  }
  log::Warning(kLog, "forcing a new cluster from this manager's state",
               {{"node", state_.node_id}, {"raft_id", state_.raft_id}});
  StopRoles();
  absl::Status forced = [&]() -> absl::Status {
    raft::RocksDbLogStore::Options lo;
    lo.path = options_.state_dir + "/raft";
    lo.create_if_missing = false;
    auto storage = raft::RocksDbLogStore::Open(lo);
    if (!storage.ok()) return storage.status();
    auto f = raft::ForceNewCluster(**storage, state_.raft_id);
    if (!f.ok()) return f.status();
    log::Info(kLog, "the Raft log is now a one-member cluster",
              {{"removed", absl::StrJoin(f->removed, ",")},
               {"uncommitted_kept", f->uncommitted_kept},
               {"last_index", f->last_index}});
    return absl::OkStatus();
  }();
  if (!forced.ok()) {
    // Nothing was written: the manager carries on as it was.
    if (absl::Status s = StartRoles(false, {}); !s.ok()) {
      log::Error(kLog, "cannot restart the roles", {{"error", s}});
    }
    return absl::Status(forced.code(),
                        absl::StrCat("--force-new-cluster: ", forced.message()));
  }
  NodeState st = state_;
  st.managers = {st.advertise_addr};
  state_ = st;
  if (absl::Status s = Persist(state_); !s.ok()) return s;
  if (absl::Status s = StartRoles(false, {}); !s.ok()) return s;

  // It elects itself at once; the answer carries the cluster's tokens.
  const absl::Time deadline = absl::Now() + absl::Seconds(30);
  absl::Status read = absl::UnavailableError("no leader");
  while (absl::Now() < deadline) {
    manager_->raft()->WaitForLeader(deadline);
    read = manager_->raft()->LinearizableRead().get();
    if (read.ok() || !absl::IsUnavailable(read)) break;
  }
  if (!read.ok()) return read;
  manager_->store().View([&](const manager::store::ReadTx& tx) {
    if (const api::Cluster* c = tx.Get<api::Cluster>(st.cluster_id)) {
      *response->mutable_join_tokens() = c->root_ca().join_tokens();
    }
  });
  log::Info(kLog, "forced a new cluster", {{"cluster", st.cluster_id}, {"node", st.node_id}});
  response->set_node_id(st.node_id);
  response->set_cluster_id(st.cluster_id);
  response->set_advertise_addr(st.advertise_addr);
  return absl::OkStatus();
}

grpc::Status Daemon::Join(grpc::ServerContext*, const api::JoinRequest* request,
                          api::JoinResponse* response) {
  absl::MutexLock lock(&mu_);
  return ToGrpc(DoJoin(*request, response));
}

absl::Status Daemon::DoJoin(const api::JoinRequest& request, api::JoinResponse* response) {
  auto addrs = NewMemberAddrs(request.listen_addr(), request.advertise_addr());
  if (!addrs.ok()) return addrs.status();
  if (request.remote_addrs().empty()) {
    return absl::InvalidArgumentError("join needs the address of a manager");
  }
  const std::string& listen = addrs->first;
  const std::string* advertise = &addrs->second;

  absl::StatusOr<pki::JoinResult> joined = absl::UnavailableError("no manager address");
  std::string via;
  for (const std::string& addr : request.remote_addrs()) {
    joined = pki::JoinCluster(addr, request.join_token(), request.availability(),
                              absl::Seconds(20));
    via = addr;
    if (joined.ok() || !(absl::IsUnavailable(joined.status()) ||
                         absl::IsDeadlineExceeded(joined.status()))) {
      break;
    }
  }
  if (!joined.ok()) {
    return absl::Status(joined.status().code(),
                        absl::StrCat("joining through ", via, ": ", joined.status().message()));
  }
  if (absl::Status s = pki::WriteTlsDir(TlsDir(), joined->bundle); !s.ok()) return s;

  // Every node joins as a worker runs. A manager's join goes on as a promotion does (its node
  // object already says manager): the role switch joins the Raft group through the leader and
  // starts the manager role, retried until the cluster admits the member. So a join that the
  // Raft group cannot take at once (no leader, a membership change under way) goes on in the
  // background, as Docker's does, instead of leaving a manager node object nobody runs.
  NodeState st;
  st.node_id = joined->node_id;
  st.cluster_id = joined->cluster_id;
  st.role = "worker";
  st.listen_addr = listen;
  st.advertise_addr = *advertise;
  st.managers = {request.remote_addrs().begin(), request.remote_addrs().end()};
  state_ = st;
  absl::Status started = Persist(state_);
  if (started.ok()) started = StartRoles(false, {});
  if (!started.ok()) {
    // Back to no cluster (the node object stays, Down: `swarmctl node rm` removes it).
    StopRoles();
    state_ = NodeState();
    std::error_code ec;
    std::filesystem::remove(std::filesystem::path(options_.state_dir) / "node.json", ec);
    for (const char* d : {"tls", "worker"}) {
      std::filesystem::remove_all(std::filesystem::path(options_.state_dir) / d, ec);
    }
    absl::MutexLock file_lock(&file_mu_);
    saved_ = NodeState();
    return started;
  }
  log::Info(kLog, "joined the cluster",
            {{"cluster", st.cluster_id},
             {"node", st.node_id},
             {"role", joined->role == api::NODE_ROLE_MANAGER ? "manager" : "worker"}});
  response->set_node_id(st.node_id);
  response->set_role(joined->role);
  if (joined->role != api::NODE_ROLE_MANAGER) return absl::OkStatus();
  // Until the manager role runs, as Docker's join waits for the node to be ready (the lock is
  // released meanwhile: the role switch takes it).
  const std::string node_id = st.node_id;
  role_error_ = absl::OkStatus();
  auto manager_runs = [this, &node_id]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return manager_ != nullptr || state_.node_id != node_id || stopping_;
  };
  if (!mu_.AwaitWithTimeout(absl::Condition(&manager_runs), kManagerJoinWait)) {
    return absl::DeadlineExceededError(absl::StrCat(
        "timeout was reached before the node joined the managers' Raft group",
        role_error_.ok() ? "" : absl::StrCat(" (", role_error_.message(), ")"),
        "; the attempt to join continues in the background: `swarmctl info` shows the node's "
        "swarm status"));
  }
  if (state_.node_id != node_id) {
    return absl::AbortedError("the node left the swarm while it joined");
  }
  if (manager_ == nullptr) {
    return absl::UnavailableError(
        "swarmd is stopping: the join goes on when it starts again (node.json keeps the node "
        "in the cluster)");
  }
  return absl::OkStatus();
}

absl::StatusOr<raftpb::JoinResponse> Daemon::JoinRaftGroup(const std::string& via,
                                                           const std::string& cluster_id,
                                                           const std::string& advertise,
                                                           absl::Time deadline) const {
  auto stub = raftpb::Raft::NewStub(
      pki::CreateManagerChannel(via, pki::ClientCredentials(TlsDir(), cluster_id)));
  raftpb::JoinRequest jr;
  jr.set_addr(advertise);
  raftpb::JoinResponse out;
  grpc::Status s(grpc::StatusCode::DEADLINE_EXCEEDED, "no time left to call Join");
  while (absl::Now() < deadline) {
    grpc::ClientContext ctx;
    ctx.set_deadline(absl::ToChronoTime(std::min(deadline, absl::Now() + absl::Seconds(10))));
    s = stub->Join(&ctx, jr, &out);
    if (s.error_code() != grpc::StatusCode::UNAVAILABLE) break;
    absl::SleepFor(absl::Milliseconds(200));  // a back-off while the leader is elected
  }
  if (!s.ok()) {
    return absl::Status(
        static_cast<absl::StatusCode>(s.error_code()),
        absl::StrCat("joining the managers' Raft group through ", via, ": ", s.error_message()));
  }
  return out;
}

grpc::Status Daemon::Leave(grpc::ServerContext*, const api::LeaveRequest* request,
                           api::LeaveResponse*) {
  absl::MutexLock lock(&mu_);
  if (!state_.in_cluster()) {
    return grpc::Status(grpc::StatusCode::FAILED_PRECONDITION, "this node is not part of a swarm");
  }
  if (state_.role == "manager" && !request->force()) {
    return grpc::Status(
        grpc::StatusCode::FAILED_PRECONDITION,
        "this node is a manager: demote it first (swarmctl node demote " + state_.node_id +
            "), or leave with --force (the cluster loses a manager, and with the last one "
            "its state)");
  }
  LeaveLocked();
  return grpc::Status::OK;
}

void Daemon::LeaveLocked() {
  if (agent_ != nullptr) agent_->ShutdownTasks(absl::Seconds(30));
  StopRoles();
  std::error_code ec;
  // node.json first: a crash part-way leaves a node in no cluster, never one whose
  // certificates are gone.
  std::filesystem::remove(std::filesystem::path(options_.state_dir) / "node.json", ec);
  for (const char* d : {"tls", "raft", "worker", "tasks"}) {
    std::filesystem::remove_all(std::filesystem::path(options_.state_dir) / d, ec);
  }
  log::Info(kLog, "left the cluster", {{"node", state_.node_id}});
  state_ = NodeState();
  absl::MutexLock file_lock(&file_mu_);
  saved_ = NodeState();
}

grpc::Status Daemon::Info(grpc::ServerContext*, const api::InfoRequest*,
                          api::InfoResponse* response) {
  absl::MutexLock lock(&mu_);
  response->set_version(kVersion);
  response->set_state_dir(options_.state_dir);
  response->set_executor(options_.executor);
  if (!state_.in_cluster()) {
    response->set_state(api::LOCAL_NODE_STATE_INACTIVE);
    return grpc::Status::OK;
  }
  response->set_node_id(state_.node_id);
  response->set_cluster_id(state_.cluster_id);
  response->set_role(state_.role == "manager" ? api::NODE_ROLE_MANAGER : api::NODE_ROLE_WORKER);
  response->set_advertise_addr(state_.advertise_addr);
  const bool connected = agent_ != nullptr && agent_->connected();
  response->set_state(connected ? api::LOCAL_NODE_STATE_ACTIVE : api::LOCAL_NODE_STATE_PENDING);
  if (agent_ != nullptr) {
    for (const std::string& m : agent_->managers()) {
      auto* p = response->add_managers();
      p->set_addr(m);
    }
  }
  if (manager_ != nullptr) {
    response->set_raft_voter(manager_->voter());
    const std::string leader = manager_->LeaderAddr();
    response->set_leader_addr(leader);
    response->set_control_available(!leader.empty());
    manager_->store().View([&](const manager::store::ReadTx& tx) {
      const auto nodes = tx.List<api::Node>();
      response->set_nodes(nodes.size());
      uint64_t managers = 0;
      for (const api::Node* n : nodes) managers += n->role() == api::NODE_ROLE_MANAGER;
      response->set_manager_count(managers);
    });
  }
  return grpc::Status::OK;
}

grpc::Status Daemon::Unlock(grpc::ServerContext*, const api::UnlockRequest*,
                            api::UnlockResponse*) {
  return grpc::Status(grpc::StatusCode::FAILED_PRECONDITION,
                      "this node is not locked: autolock is not supported yet");
}

}  // namespace shoal::node
