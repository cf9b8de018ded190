// init, join, leave, info (NodeControl on the local socket) and join-token (Control).
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstring>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "cli/commands.h"
#include "cli/parse.h"
#include "common/grpc_status.h"

namespace shoal::cli {
namespace {

constexpr auto kNodeControlTimeout = std::chrono::seconds(120);

std::unique_ptr<grpc::ClientContext> NodeControlContext() {
  auto c = std::make_unique<grpc::ClientContext>();
  c->set_deadline(std::chrono::system_clock::now() + kNodeControlTimeout);
  return c;
}

// Whether something accepts connections on the unix socket at `path`.
bool SocketAnswers(const std::string& path) {
  sockaddr_un addr{};
  if (path.size() >= sizeof addr.sun_path) return false;
  addr.sun_family = AF_UNIX;
  std::memcpy(addr.sun_path, path.data(), path.size());
  const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return false;
  const bool ok = ::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
  ::close(fd);
  return ok;
}

// A NodeControl failure: swarmd not running is said plainly. UNAVAILABLE also comes from a
// running swarmd that could not reach a manager (a join): that message is swarmd's own.
int NodeControlFail(Context& ctx, const grpc::Status& s) {
  if (s.error_code() == grpc::StatusCode::UNAVAILABLE && !SocketAnswers(ctx.globals.socket)) {
    return ctx.Fail(absl::UnavailableError(
        absl::StrCat("cannot reach swarmd at unix:", ctx.globals.socket, ": ", s.error_message(),
                     " (is swarmd running? is --socket right?)")));
  }
  return ctx.Fail(FromGrpcStatus(s));
}

struct InitFlags {
  std::string advertise_addr, listen_addr, availability;
  std::string dispatcher_heartbeat, task_history_limit, cert_expiry;
  bool force_new_cluster = false;
};

int Init(Context& ctx, const InitFlags& f) {
  api::InitRequest req;
  req.set_advertise_addr(f.advertise_addr);
  req.set_listen_addr(f.listen_addr);
  req.set_force_new_cluster(f.force_new_cluster);
  if (!f.availability.empty()) {
    auto a = ParseAvailability(f.availability);
    if (!a.ok()) return ctx.Usage(a.status());
    req.set_availability(*a);
  }
  // The cluster's first settings, as `cluster update` changes them later.
  if (!f.dispatcher_heartbeat.empty()) {
    auto d = ParseDuration("--dispatcher-heartbeat", f.dispatcher_heartbeat);
    if (!d.ok()) return ctx.Usage(d.status());
    *req.mutable_spec()->mutable_dispatcher()->mutable_heartbeat_period() = DurationToProto(*d);
  }
  if (!f.cert_expiry.empty()) {
    auto d = ParseDuration("--cert-expiry", f.cert_expiry);
    if (!d.ok()) return ctx.Usage(d.status());
    *req.mutable_spec()->mutable_ca_config()->mutable_node_cert_expiry() = DurationToProto(*d);
  }
  if (!f.task_history_limit.empty()) {
    auto n = ParseUint("--task-history-limit", f.task_history_limit);
    if (!n.ok()) return ctx.Usage(n.status());
    req.mutable_spec()->mutable_orchestration()->set_task_history_retention_limit(
        static_cast<int64_t>(*n));
  }
  auto stub = ctx.NodeControl("init");
  if (!stub.ok()) return ctx.Usage(stub.status());
  api::InitResponse resp;
  const grpc::Status s = (*stub)->Init(NodeControlContext().get(), req, &resp);
  if (!s.ok()) return NodeControlFail(ctx, s);
  ctx.out << "Swarm initialized: current node (" << resp.node_id() << ") is now a manager.\n\n"
          << "To add a worker to this swarm, run the following command:\n\n"
          << "    swarmctl join --token " << resp.join_tokens().worker() << " "
          << resp.advertise_addr() << "\n\n"
          << "To add a manager to this swarm, run 'swarmctl join-token manager' and follow the "
             "instructions.\n\n";
  if (!resp.unlock_key().empty()) {
    ctx.out << "To unlock a swarm manager after it restarts, run `swarmctl unlock` and provide "
               "the following key:\n\n    "
            << resp.unlock_key() << "\n\n";
  }
  return 0;
}

struct JoinFlags {
  std::string token, advertise_addr, listen_addr, availability;
  std::vector<std::string> addrs;
};

int Join(Context& ctx, const JoinFlags& f) {
  api::JoinRequest req;
  req.set_join_token(f.token);
  req.set_advertise_addr(f.advertise_addr);
  req.set_listen_addr(f.listen_addr);
  for (const std::string& a : f.addrs) req.add_remote_addrs(a);
  if (!f.availability.empty()) {
    auto a = ParseAvailability(f.availability);
    if (!a.ok()) return ctx.Usage(a.status());
    req.set_availability(*a);
  }
  auto stub = ctx.NodeControl("join");
  if (!stub.ok()) return ctx.Usage(stub.status());
  api::JoinResponse resp;
  const grpc::Status s = (*stub)->Join(NodeControlContext().get(), req, &resp);
  if (!s.ok()) return NodeControlFail(ctx, s);
  ctx.out << "This node joined a swarm as a "
          << (resp.role() == api::NODE_ROLE_MANAGER ? "manager" : "worker") << ".\n";
  return 0;
}

int Leave(Context& ctx, bool force) {
  auto stub = ctx.NodeControl("leave");
  if (!stub.ok()) return ctx.Usage(stub.status());
  api::LeaveRequest req;
  req.set_force(force);
  api::LeaveResponse resp;
  const grpc::Status s = (*stub)->Leave(NodeControlContext().get(), req, &resp);
  if (!s.ok()) return NodeControlFail(ctx, s);
  ctx.out << "Node left the swarm.\n";
  return 0;
}

int Info(Context& ctx) {
  auto stub = ctx.NodeControl("info");
  if (!stub.ok()) return ctx.Usage(stub.status());
  api::InfoResponse info;
  const grpc::Status s = (*stub)->Info(NodeControlContext().get(), api::InfoRequest(), &info);
  if (!s.ok()) return NodeControlFail(ctx, s);
  std::string state = api::LocalNodeState_Name(info.state());
  state = absl::AsciiStrToLower(absl::string_view(state).substr(sizeof("LOCAL_NODE_STATE_") - 1));
  std::ostream& o = ctx.out;
  o << "Swarm: " << state << "\n";
  if (info.state() != api::LOCAL_NODE_STATE_INACTIVE) {
    o << " NodeID: " << info.node_id() << "\n";
    if (!info.error().empty()) o << " Error: " << info.error() << "\n";
    o << " Is Manager: " << (info.role() == api::NODE_ROLE_MANAGER ? "true" : "false") << "\n";
    if (info.role() == api::NODE_ROLE_MANAGER) {
      o << " ClusterID: " << info.cluster_id() << "\n"
        << " Managers: " << info.manager_count() << "\n"
        << " Nodes: " << info.nodes() << "\n"
        << " Control Available: " << (info.control_available() ? "true" : "false") << "\n";
    }
    if (!info.leader_addr().empty()) o << " Leader Address: " << info.leader_addr() << "\n";
    o << " Node Address: " << info.advertise_addr() << "\n";
    if (!info.managers().empty()) {
      o << " Manager Addresses:\n";
      for (const api::WeightedPeer& m : info.managers()) o << "  " << m.addr() << "\n";
    }
  }
  if (!info.executor().empty()) o << " Executor: " << info.executor() << "\n";
  if (!info.state_dir().empty()) o << " State Dir: " << info.state_dir() << "\n";
  if (!info.version().empty()) o << " swarmd Version: " << info.version() << "\n";
  return 0;
}

struct JoinTokenFlags {
  std::string role;
  bool rotate = false;
  bool quiet = false;
};

// The address a joining node should use: the leader's (else any manager's) as the node list
// has it; else the manager swarmctl talks to.
std::string ManagerAddress(Context& ctx, ControlClient& control) {
  api::ListNodesRequest req;
  req.mutable_filters()->add_roles(api::NODE_ROLE_MANAGER);
  api::ListNodesResponse nodes;
  std::string any;
  if (control.Call(&api::Control::StubInterface::ListNodes, req, &nodes).ok()) {
    for (const api::Node& n : nodes.nodes()) {
      if (n.manager_status().addr().empty()) continue;
      if (n.manager_status().leader()) return n.manager_status().addr();
      if (any.empty()) any = n.manager_status().addr();
    }
  }
  if (!any.empty()) return any;
  if (!control.local()) return control.current_address();
  auto stub = NodeControlStub(ctx.globals.socket);
  api::InfoResponse info;
  if (stub->Info(NodeControlContext().get(), api::InfoRequest(), &info).ok()) {
    return info.advertise_addr();
  }
  return "<manager address>";
}

int JoinToken(Context& ctx, const JoinTokenFlags& f) {
  const std::string role = absl::AsciiStrToLower(f.role);
  if (role != "worker" && role != "manager") {
    return ctx.Usage(absl::InvalidArgumentError(
        absl::StrCat("invalid role \"", f.role, "\": expected worker or manager")));
  }
  auto control = ctx.Control();
  if (!control.ok()) return ctx.FailOrUsage(control.status(), false);
  api::ListClustersResponse clusters;
  if (auto s = (*control)->Call(&api::Control::StubInterface::ListClusters,
                                api::ListClustersRequest(), &clusters);
      !s.ok()) {
    return ctx.Fail(s);
  }
  if (clusters.clusters().empty()) return ctx.Fail(absl::NotFoundError("no cluster object found"));
  api::Cluster cluster = clusters.clusters(0);
  if (f.rotate) {
    api::UpdateClusterRequest req;
    req.set_cluster_id(cluster.meta().id());
    *req.mutable_cluster_version() = cluster.meta().version();
    *req.mutable_spec() = cluster.spec();
    if (role == "worker") {
      req.mutable_rotation()->set_worker_join_token(true);
    } else {
      req.mutable_rotation()->set_manager_join_token(true);
    }
    api::UpdateClusterResponse resp;
    if (auto s = (*control)->Call(&api::Control::StubInterface::UpdateCluster, req, &resp);
        !s.ok()) {
      return ctx.Fail(s);
    }
    cluster = resp.cluster();
  }
  const std::string token = role == "worker" ? cluster.root_ca().join_tokens().worker()
                                             : cluster.root_ca().join_tokens().manager();
  if (token.empty()) {
    return ctx.Fail(
        absl::FailedPreconditionError(absl::StrCat("the cluster has no ", role,
                                                   " join token; make one with `swarmctl "
                                                   "join-token --rotate ",
                                                   role, "`")));
  }
  if (f.quiet) {
    ctx.out << token << "\n";
    return 0;
  }
  if (f.rotate) ctx.out << "Successfully rotated " << role << " join token.\n\n";
  ctx.out << "To add a " << role << " to this swarm, run the following command:\n\n"
          << "    swarmctl join --token " << token << " " << ManagerAddress(ctx, **control)
          << "\n\n";
  return 0;
}

}  // namespace

void AddSwarmCommands(CLI::App& app, Context& ctx, Handlers& handlers) {
  {
    auto f = std::make_shared<InitFlags>();
    auto* c = app.add_subcommand("init", "Initialize a swarm with this node as its first manager");
    c->add_option("--advertise-addr", f->advertise_addr, "Address other nodes reach this one at");
    c->add_option("--listen-addr", f->listen_addr, "Listen address (default 0.0.0.0:4242)");
    c->add_flag("--force-new-cluster", f->force_new_cluster,
                "Force create a new cluster from current state (quorum-loss recovery)");
    c->add_option("--availability", f->availability,
                  "Availability of the node (active|pause|drain)");
    c->add_option("--dispatcher-heartbeat", f->dispatcher_heartbeat,
                  "Dispatcher heartbeat period (default 5s)");
    c->add_option("--task-history-limit", f->task_history_limit,
                  "Task history retention limit (default 5)");
    c->add_option("--cert-expiry", f->cert_expiry,
                  "Validity period for node certificates (default 2160h0m0s)");
    handlers[c] = [&ctx, f] { return Init(ctx, *f); };
  }
  {
    auto f = std::make_shared<JoinFlags>();
    auto* c = app.add_subcommand("join", "Join a swarm as a node and/or manager");
    c->add_option("--token", f->token, "Token for entry into the swarm")->required();
    c->add_option("--advertise-addr", f->advertise_addr, "Address other nodes reach this one at");
    c->add_option("--listen-addr", f->listen_addr, "Listen address (default 0.0.0.0:4242)");
    c->add_option("--availability", f->availability,
                  "Availability of the node (active|pause|drain)");
    c->add_option("addr", f->addrs, "Manager address HOST:PORT")->required();
    handlers[c] = [&ctx, f] { return Join(ctx, *f); };
  }
  {
    auto force = std::make_shared<bool>(false);
    auto* c = app.add_subcommand("leave", "Leave the swarm");
    c->add_flag("-f,--force", *force, "Force this node to leave the swarm, ignoring warnings");
    handlers[c] = [&ctx, force] { return Leave(ctx, *force); };
  }
  {
    auto* c = app.add_subcommand("info", "Show this node's view of the swarm");
    handlers[c] = [&ctx] { return Info(ctx); };
  }
  {
    auto f = std::make_shared<JoinTokenFlags>();
    auto* c = app.add_subcommand("join-token", "Manage join tokens");
    c->add_option("role", f->role, "worker or manager")->required();
    c->add_flag("--rotate", f->rotate, "Rotate join token");
    c->add_flag("-q,--quiet", f->quiet, "Only display token");
    handlers[c] = [&ctx, f] { return JoinToken(ctx, *f); };
  }
}

}  // namespace shoal::cli
