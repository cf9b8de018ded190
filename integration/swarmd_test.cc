// Real swarmd processes, each in a network namespace of its own on a private bridge (when the
// test runs as root; on loopback otherwise): `swarmctl init` on one, `swarmctl join` with
// tokens on the others, a service spread over them, and what happens when a worker or the
// leader is killed, when a manager is cut off from the network and comes back, when every
// manager restarts, when a running node is promoted and demoted, when a node is removed, and
// when input is wrong. Each node is its own process with its own state directory and control
// socket; the test drives them with the swarmctl binary, as an operator does, and reads their
// state through their sockets.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sched.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <iostream>
#include <fstream>
#include <map>
#include <set>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "integration/testing/swarmd_process.h"
#include "integration/testing/test_network.h"
#include "node/node_state.h"

namespace shoal::integration {
namespace {

using ::testing::HasSubstr;
using ::testing::StartsWith;

constexpr absl::Duration kWait = absl::Seconds(60);

// Waits for `done`, looking again every 50 ms (the test watches other processes, which no
// event of its own announces); false after `wait`.
// Holds a TCP address taken (a listening socket in a child process of the test, in the network
// namespace held by `netns`, or the test's own), until Release or destruction: the child is
// killed and reaped by its pid.
class PortBlocker {
 public:
  PortBlocker(pid_t netns, const std::string& addr) {
    const std::vector<std::string> hp = absl::StrSplit(addr, ':');
    sockaddr_in sa{};
    sa.sin_family = AF_INET;
    sa.sin_port = htons(static_cast<uint16_t>(std::stoi(hp.at(1))));
    if (::inet_pton(AF_INET, hp.at(0).c_str(), &sa.sin_addr) != 1) return;
    // Made before the fork: the child of a threaded process may not allocate.
    const std::string ns_path = absl::StrCat("/proc/", netns, "/ns/net");
    int ready[2];
    if (::pipe2(ready, O_CLOEXEC) != 0) return;
    const pid_t parent = ::getpid();
    pid_ = ::fork();
    if (pid_ == 0) {
      ::prctl(PR_SET_PDEATHSIG, SIGKILL);
      if (::getppid() != parent) _exit(1);
      if (netns > 0) {
        const int fd = ::open(ns_path.c_str(), O_RDONLY | O_CLOEXEC);
        if (fd < 0 || ::setns(fd, CLONE_NEWNET) != 0) _exit(1);
      }
      const int s = ::socket(AF_INET, SOCK_STREAM, 0);
      if (s < 0 || ::bind(s, reinterpret_cast<const sockaddr*>(&sa), sizeof sa) != 0 ||
          ::listen(s, 1) != 0) {
        _exit(2);
      }
      const char c = 1;
      (void)!::write(ready[1], &c, 1);
      ::pause();
      _exit(0);
    }
    ::close(ready[1]);
    char c = 0;
    held_ = pid_ > 0 && ::read(ready[0], &c, 1) == 1;
    ::close(ready[0]);
  }
  ~PortBlocker() { Release(); }
  bool held() const { return held_; }
  void Release() {
    if (pid_ > 0) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
    }
    pid_ = -1;
    held_ = false;
  }

 private:
  pid_t pid_ = -1;
  bool held_ = false;
};

bool Eventually(const std::function<bool()>& done, absl::Duration wait = kWait) {
  const absl::Time deadline = absl::Now() + wait;
  while (absl::Now() < deadline) {
    if (done()) return true;
    absl::SleepFor(absl::Milliseconds(50));  // polling other processes' state
  }
  return done();
}

template <typename Stub, typename Req, typename Resp>
grpc::Status Call(Stub& stub,
                  grpc::Status (Stub::*method)(grpc::ClientContext*, const Req&, Resp*),
                  const Req& req, Resp* resp) {
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(20));
  return (stub.*method)(&ctx, req, resp);
}

class SwarmdTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const char* tmp = std::getenv("TEST_TMPDIR");
    base_ = absl::StrCat(tmp ? tmp : "/tmp", "/",
                         ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::remove_all(base_);
    auto network = TestNetwork::Create();
    if (network.ok()) {
      network_ = *std::move(network);
    } else {
      std::cerr << "no network namespaces, every node on loopback: " << network.status() << "\n";
    }
  }
  void TearDown() override {
    if (HasFailure()) {
      for (auto& [name, n] : nodes_) {
        std::cerr << "----- " << name << " -----\n" << n->LogTail() << "\n";
      }
    }
    nodes_.clear();  // SIGKILL, reaped
    network_.reset();
    // Each node's RocksDB stores preallocate tens of MiB: gone unless a failure needs them.
    std::error_code ec;
    if (!HasFailure()) std::filesystem::remove_all(base_, ec);
  }

  SwarmdProcess& Node(const std::string& name) {
    auto& n = nodes_[name];
    if (n == nullptr) {
      SwarmdProcess::Options o;
      o.name = name;
      o.dir = base_ + "/" + name;
      o.executor = executor_;
      if (network_ != nullptr) {
        const absl::Status added = network_->AddHost(name);
        EXPECT_TRUE(added.ok()) << added;
        o.netns = network_->holder(name);
        o.ip = network_->ip(name);
      }
      n = std::make_unique<SwarmdProcess>(o);
    }
    return *n;
  }

  // The swarmctl binary, run in the hub's network namespace (it reaches every node there).
  CommandResult Swarmctl(std::vector<std::string> args) {
    args.insert(args.begin(), "cli/swarmctl");
    CommandResult r = RunCommand(args, network_ != nullptr ? network_->hub() : 0);
    if (r.exit_code != 0) {
      std::cerr << "$ " << absl::StrJoin(args, " ") << "\n" << r.out << r.err << "(exit "
                << r.exit_code << ")\n";
    }
    return r;
  }
  // swarmctl through the local socket of `node`.
  CommandResult Local(SwarmdProcess& node, std::vector<std::string> args) {
    args.insert(args.begin(), {"--socket", node.socket()});
    return Swarmctl(std::move(args));
  }

  // `m1` inits (a 400 ms heartbeat, so that a dead node is noticed quickly); the other
  // managers and the workers join with the tokens it printed.
  void Bring(int managers, int workers) {
    SwarmdProcess& first = Node("m1");
    ASSERT_TRUE(first.Start().ok());
    CommandResult r = Local(first, {"init", "--dispatcher-heartbeat", "400ms"});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    // The join command to copy, with the address swarmd advertises.
    EXPECT_THAT(r.out, HasSubstr(absl::StrCat(" ", first.addr(), "\n")));
    for (const char* role : {"worker", "manager"}) {
      r = Local(first, {"join-token", "-q", role});
      ASSERT_EQ(r.exit_code, 0) << r.err;
      const std::string token(absl::StripAsciiWhitespace(r.out));
      ASSERT_THAT(token, StartsWith("SWMTKN-1-"));
      if (std::string(role) == "worker") {
        tokens_.set_worker(token);
      } else {
        tokens_.set_manager(token);
      }
    }
    for (int i = 2; i <= managers; ++i) {
      ASSERT_NO_FATAL_FAILURE(Join(absl::StrCat("m", i), tokens_.manager()));
    }
    for (int i = 1; i <= workers; ++i) {
      ASSERT_NO_FATAL_FAILURE(Join(absl::StrCat("w", i), tokens_.worker()));
    }
    ASSERT_TRUE(Eventually([&] { return ReadyNodes() == managers + workers; })) << NodeStates();
  }

  void Join(const std::string& name, const std::string& token) {
    SwarmdProcess& n = Node(name);
    ASSERT_TRUE(n.Start().ok());
    const CommandResult r = Local(n, {"join", "--token", token, Node("m1").addr()});
    ASSERT_EQ(r.exit_code, 0) << name << ": " << r.err;
    EXPECT_EQ(r.out, absl::StrCat("This node joined a swarm as a ",
                                  token == tokens_.manager() ? "manager" : "worker", ".\n"));
  }

  // A manager whose process runs.
  SwarmdProcess& AnyManager() {
    for (auto& [name, n] : nodes_) {
      if (name[0] == 'm' && n->running()) return *n;
    }
    return Node("m1");
  }

  // Each node's hostname, state and status message, for failure messages.
  std::string NodeStates() {
    api::ListNodesResponse resp;
    const grpc::Status s = Call(AnyManager().control(), &api::Control::Stub::ListNodes,
                                api::ListNodesRequest(), &resp);
    if (!s.ok()) return "cannot list the nodes: " + s.error_message();
    std::string out;
    for (const auto& n : resp.nodes()) {
      absl::StrAppend(&out, n.description().hostname(), ": ",
                      api::NodeStatus::State_Name(n.status().state()), " ", n.status().message(),
                      "; ");
    }
    return out;
  }

  int ReadyNodes() {
    api::ListNodesResponse resp;
    if (!Call(AnyManager().control(), &api::Control::Stub::ListNodes, api::ListNodesRequest(),
              &resp)
             .ok()) {
      return -1;
    }
    int ready = 0;
    for (const auto& n : resp.nodes()) {
      ready += n.status().state() == api::NodeStatus::NODE_STATE_READY;
    }
    return ready;
  }

  // The running tasks of a service, by node id; empty when it cannot be read.
  std::map<std::string, int> RunningByNode(SwarmdProcess& via, const std::string& service) {
    api::ListTasksRequest req;
    api::ListTasksResponse resp;
    std::map<std::string, int> out;
    if (!Call(via.control(), &api::Control::Stub::ListTasks, req, &resp).ok()) return out;
    api::GetServiceRequest g;
    g.set_service_id(service);
    api::GetServiceResponse svc;
    if (!Call(via.control(), &api::Control::Stub::GetService, g, &svc).ok()) return out;
    for (const auto& t : resp.tasks()) {
      if (t.service_id() == svc.service().meta().id() &&
          t.status().state() == api::TASK_STATE_RUNNING &&
          t.desired_state() == api::TASK_STATE_RUNNING) {
        ++out[t.node_id()];
      }
    }
    return out;
  }
  static int Total(const std::map<std::string, int>& m) {
    int n = 0;
    for (const auto& [k, v] : m) n += v;
    return n;
  }

  void CreateService(SwarmdProcess& via, const std::string& name, uint64_t replicas,
                     const std::vector<std::string>& command = {}) {
    api::CreateServiceRequest req;
    req.mutable_spec()->mutable_annotations()->set_name(name);
    req.mutable_spec()->mutable_task()->mutable_container()->set_image("sim:run");
    for (const std::string& c : command) {
      req.mutable_spec()->mutable_task()->mutable_container()->add_command(c);
    }
    req.mutable_spec()->mutable_task()->mutable_restart()->mutable_delay()->set_seconds(0);
    req.mutable_spec()->mutable_replicated()->set_replicas(replicas);
    api::CreateServiceResponse resp;
    const grpc::Status s = Call(via.control(), &api::Control::Stub::CreateService, req, &resp);
    ASSERT_TRUE(s.ok()) << s.error_message();
  }

  api::InfoResponse Info(SwarmdProcess& node) {
    api::InfoResponse info;
    if (!Call(node.node_control(), &api::NodeControl::Stub::Info, api::InfoRequest(), &info).ok()) {
      return api::InfoResponse();
    }
    return info;
  }

  // `swarmctl node promote|demote NODE` through `via`: the node's spec with the desired role,
  // written against the version read (again when the node changed meanwhile).
  grpc::Status SetDesiredRole(SwarmdProcess& via, const std::string& node_id, api::NodeRole role) {
    grpc::Status s;
    for (int attempt = 0; attempt < 5; ++attempt) {
      api::GetNodeRequest get;
      get.set_node_id(node_id);
      api::GetNodeResponse node;
      s = Call(via.control(), &api::Control::Stub::GetNode, get, &node);
      if (!s.ok()) return s;
      api::UpdateNodeRequest req;
      req.set_node_id(node_id);
      *req.mutable_node_version() = node.node().meta().version();
      *req.mutable_spec() = node.node().spec();
      req.mutable_spec()->set_desired_role(role);
      api::UpdateNodeResponse resp;
      s = Call(via.control(), &api::Control::Stub::UpdateNode, req, &resp);
      if (s.error_code() != grpc::StatusCode::ABORTED) return s;
    }
    return s;
  }

  // `node promote` of each of `names` through m1, then until each runs its manager role as a
  // voter of a group of `managers`.
  void PromoteToVoters(const std::vector<std::string>& names, uint64_t managers) {
    for (const std::string& w : names) {
      const grpc::Status s =
          SetDesiredRole(Node("m1"), Info(Node(w)).node_id(), api::NODE_ROLE_MANAGER);
      ASSERT_TRUE(s.ok()) << w << ": " << s.error_message();
    }
    for (const std::string& w : names) {
      ASSERT_TRUE(Eventually([&] {
        const api::InfoResponse info = Info(Node(w));
        return info.role() == api::NODE_ROLE_MANAGER && info.raft_voter() &&
               info.manager_count() == managers;
      })) << w << ": " << Info(Node(w)).DebugString();
    }
  }

  // Until `name` runs as a worker again (demoted): its socket then refuses the Control API, and
  // its Raft state is deleted.
  void ExpectAWorkerAgain(const std::string& name) {
    ASSERT_TRUE(Eventually([&] {
      const api::InfoResponse info = Info(Node(name));
      return info.role() == api::NODE_ROLE_WORKER && info.state() == api::LOCAL_NODE_STATE_ACTIVE;
    })) << Info(Node(name)).DebugString();
    api::ListServicesResponse services;
    const grpc::Status s = Call(Node(name).control(), &api::Control::Stub::ListServices,
                                api::ListServicesRequest(), &services);
    EXPECT_EQ(s.error_code(), grpc::StatusCode::FAILED_PRECONDITION) << s.error_message();
    EXPECT_NE(s.error_message().find("not a swarm manager"), std::string::npos);
    EXPECT_FALSE(std::filesystem::exists(Node(name).state_dir() + "/raft"));
  }

  // Ids of the tasks RUNNING on `node_id`, as `via` sees them.
  std::set<std::string> RunningTasksOn(SwarmdProcess& via, const std::string& node_id) {
    api::ListTasksRequest req;
    req.mutable_filters()->add_node_ids(node_id);
    api::ListTasksResponse resp;
    std::set<std::string> out;
    if (!Call(via.control(), &api::Control::Stub::ListTasks, req, &resp).ok()) return out;
    for (const auto& t : resp.tasks()) {
      if (t.status().state() == api::TASK_STATE_RUNNING) out.insert(t.meta().id());
    }
    return out;
  }

  // Whether `node`'s socket serves the Control API (it lists `services` services).
  bool ServesControl(SwarmdProcess& node, int services) {
    api::ListServicesResponse resp;
    return Call(node.control(), &api::Control::Stub::ListServices, api::ListServicesRequest(),
                &resp)
               .ok() &&
           resp.services_size() == services;
  }

  grpc::Status Scale(SwarmdProcess& via, const std::string& name, uint64_t replicas) {
    api::GetServiceRequest g;
    g.set_service_id(name);
    api::GetServiceResponse svc;
    grpc::Status s = Call(via.control(), &api::Control::Stub::GetService, g, &svc);
    if (!s.ok()) return s;
    api::UpdateServiceRequest u;
    u.set_service_id(svc.service().meta().id());
    *u.mutable_service_version() = svc.service().meta().version();
    *u.mutable_spec() = svc.service().spec();
    u.mutable_spec()->mutable_replicated()->set_replicas(replicas);
    api::UpdateServiceResponse out;
    return Call(via.control(), &api::Control::Stub::UpdateService, u, &out);
  }

  std::string executor_ = "sim";
  std::string base_;
  std::unique_ptr<TestNetwork> network_;  // null: on loopback
  std::map<std::string, std::unique_ptr<SwarmdProcess>> nodes_;
  api::JoinTokens tokens_;
};

TEST_F(SwarmdTest, InitJoinAndFiveReplicasSpreadOverTheNodes) {
  ASSERT_NO_FATAL_FAILURE(Bring(3, 2));
  CreateService(Node("m1"), "web", 5);
  std::map<std::string, int> spread;
  ASSERT_TRUE(Eventually([&] {
    spread = RunningByNode(Node("m1"), "web");
    return Total(spread) == 5;
  }));
  // 5 tasks over 5 nodes: one each.
  EXPECT_EQ(spread.size(), 5u);

  // Every node says it is in the cluster; a worker's socket serves no Control API.
  api::InfoResponse info;
  ASSERT_TRUE(Call(Node("w1").node_control(), &api::NodeControl::Stub::Info, api::InfoRequest(),
                   &info)
                  .ok());
  EXPECT_EQ(info.state(), api::LOCAL_NODE_STATE_ACTIVE);
  EXPECT_EQ(info.role(), api::NODE_ROLE_WORKER);
  api::ListServicesResponse services;
  const grpc::Status refused = Call(Node("w1").control(), &api::Control::Stub::ListServices,
                                    api::ListServicesRequest(), &services);
  EXPECT_EQ(refused.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_NE(refused.error_message().find("not a swarm manager"), std::string::npos);
  ASSERT_TRUE(Call(Node("m2").node_control(), &api::NodeControl::Stub::Info, api::InfoRequest(),
                   &info)
                  .ok());
  EXPECT_EQ(info.role(), api::NODE_ROLE_MANAGER);
  EXPECT_EQ(info.manager_count(), 3u);
  EXPECT_EQ(info.nodes(), 5u);
}

TEST_F(SwarmdTest, AKilledWorkersTasksAreReplacedAndAKilledLeaderIsReplaced) {
  ASSERT_NO_FATAL_FAILURE(Bring(3, 2));
  CreateService(Node("m1"), "web", 4);
  ASSERT_TRUE(Eventually([&] { return Total(RunningByNode(Node("m1"), "web")) == 4; }));

  // kill -9 a worker: its tasks run elsewhere once its heartbeats are missed.
  Node("w1").Kill();
  ASSERT_TRUE(Eventually([&] {
    auto spread = RunningByNode(Node("m1"), "web");
    return Total(spread) == 4 && spread.size() == 4;  // 4 live nodes, one each
  })) << "tasks of the dead worker were not replaced";

  // kill -9 the first manager (it leads: it bootstrapped the cluster); the two others elect a
  // leader, and `service scale` works through either of them.
  Node("m1").Kill();
  ASSERT_TRUE(Eventually([&] { return Scale(Node("m3"), "web", 6).ok(); }));
  ASSERT_TRUE(Eventually([&] { return Total(RunningByNode(Node("m2"), "web")) == 6; }));
}

TEST_F(SwarmdTest, RestartingEveryManagerKeepsServicesAndTasks) {
  ASSERT_NO_FATAL_FAILURE(Bring(3, 1));
  CreateService(Node("m1"), "web", 3);
  ASSERT_TRUE(Eventually([&] { return Total(RunningByNode(Node("m1"), "web")) == 3; }));
  for (const char* m : {"m1", "m2", "m3"}) {
    const absl::Status stopped = Node(m).Stop();
    ASSERT_TRUE(stopped.ok()) << stopped;
  }
  for (const char* m : {"m1", "m2", "m3"}) {
    const absl::Status started = Node(m).Start();
    ASSERT_TRUE(started.ok()) << started;
  }
  ASSERT_TRUE(Eventually([&] { return Total(RunningByNode(Node("m2"), "web")) == 3; }));
  // m3 reads from its own store, which may still be catching up with the log after the restart.
  EXPECT_TRUE(Eventually([&] { return ServesControl(Node("m3"), 1); }));
}

// `node promote` and `node demote` take effect on a running swarmd: its manager role starts
// (it serves the Control API and joins the Raft group) and stops again, while its worker role
// and its tasks carry on; a restart keeps the last role.
TEST_F(SwarmdTest, PromoteAndDemoteSwitchARunningNodesRoleAndItsTasksRunOn) {
  ASSERT_NO_FATAL_FAILURE(Bring(1, 2));
  CreateService(Node("m1"), "web", 6);
  ASSERT_TRUE(Eventually([&] {
    auto spread = RunningByNode(Node("m1"), "web");
    return Total(spread) == 6 && spread.size() == 3;
  }));
  const std::string w1 = Info(Node("w1")).node_id();
  ASSERT_FALSE(w1.empty());
  const std::set<std::string> tasks = RunningTasksOn(Node("m1"), w1);
  ASSERT_EQ(tasks.size(), 2u);
  const std::string raft_dir = Node("w1").state_dir() + "/raft";
  EXPECT_FALSE(std::filesystem::exists(raft_dir));

  // Promoted: a manager, and a voter once it caught up with the log.
  grpc::Status s = SetDesiredRole(Node("m1"), w1, api::NODE_ROLE_MANAGER);
  ASSERT_TRUE(s.ok()) << s.error_message();
  ASSERT_TRUE(Eventually([&] {
    const api::InfoResponse info = Info(Node("w1"));
    return info.role() == api::NODE_ROLE_MANAGER && info.manager_count() == 2 &&
           info.raft_voter() && ServesControl(Node("w1"), 1);
  })) << Info(Node("w1")).DebugString();
  EXPECT_EQ(Info(Node("m1")).manager_count(), 2u);
  EXPECT_TRUE(std::filesystem::exists(raft_dir));
  // A write through the new manager (forwarded to the leader).
  ASSERT_TRUE(Eventually([&] { return Scale(Node("w1"), "web", 6).ok(); }));
  // Its tasks were not disturbed: the same ones, still running.
  EXPECT_EQ(RunningTasksOn(Node("m1"), w1), tasks);
  EXPECT_EQ(RunningTasksOn(Node("w1"), w1), tasks);

  // Demoted: a worker again, whose socket refuses the Control API.
  s = SetDesiredRole(Node("m1"), w1, api::NODE_ROLE_WORKER);
  ASSERT_TRUE(s.ok()) << s.error_message();
  ASSERT_NO_FATAL_FAILURE(ExpectAWorkerAgain("w1"));
  ASSERT_TRUE(Eventually([&] { return Info(Node("m1")).manager_count() == 1; }));
  EXPECT_EQ(RunningTasksOn(Node("m1"), w1), tasks);
  // The cluster still takes writes with its one manager.
  ASSERT_TRUE(Eventually([&] { return Scale(Node("m1"), "web", 6).ok(); }));

  // A restart keeps it a worker.
  ASSERT_TRUE(Node("w1").Stop().ok());
  ASSERT_TRUE(Node("w1").Start().ok());
  ASSERT_NO_FATAL_FAILURE(ExpectAWorkerAgain("w1"));
  EXPECT_EQ(Info(Node("m1")).manager_count(), 1u);
}

// Two workers promoted make three managers: real voters, which elect a leader among themselves
// and take writes once the first manager is killed.
TEST_F(SwarmdTest, PromotedManagersCarryOnWhenTheFirstManagerIsKilled) {
  ASSERT_NO_FATAL_FAILURE(Bring(1, 2));
  CreateService(Node("m1"), "web", 3);
  ASSERT_TRUE(Eventually([&] { return Total(RunningByNode(Node("m1"), "web")) == 3; }));
  ASSERT_NO_FATAL_FAILURE(PromoteToVoters({"w1", "w2"}, 3));

  Node("m1").Kill();
  ASSERT_TRUE(Eventually([&] { return Scale(Node("w1"), "web", 5).ok(); }));
  ASSERT_TRUE(Eventually([&] {
    const std::string leader = Info(Node("w2")).leader_addr();
    return leader == Node("w1").addr() || leader == Node("w2").addr();
  }));
  ASSERT_TRUE(Eventually([&] { return Total(RunningByNode(Node("w2"), "web")) == 5; }));
}

// The first manager demoted (through its own socket) hands its leadership to a promoted
// manager and goes on as a worker with its tasks.
TEST_F(SwarmdTest, TheFirstManagerDemotedHandsOverAndGoesOnAsAWorker) {
  ASSERT_NO_FATAL_FAILURE(Bring(1, 2));
  CreateService(Node("m1"), "web", 3);
  ASSERT_TRUE(Eventually([&] { return RunningByNode(Node("m1"), "web").size() == 3; }));
  ASSERT_NO_FATAL_FAILURE(PromoteToVoters({"w1", "w2"}, 3));
  const std::string m1 = Info(Node("m1")).node_id();
  const std::set<std::string> tasks = RunningTasksOn(Node("m1"), m1);
  ASSERT_EQ(tasks.size(), 1u);

  const grpc::Status s = SetDesiredRole(Node("m1"), m1, api::NODE_ROLE_WORKER);
  ASSERT_TRUE(s.ok()) << s.error_message();
  ASSERT_TRUE(Eventually([&] {
    return Info(Node("m1")).role() == api::NODE_ROLE_WORKER &&
           Info(Node("w1")).manager_count() == 2;
  })) << Info(Node("m1")).DebugString();
  ASSERT_TRUE(Eventually([&] {
    const std::string leader = Info(Node("w1")).leader_addr();
    return leader == Node("w1").addr() || leader == Node("w2").addr();
  }));
  api::ListServicesResponse services;
  const grpc::Status refused = Call(Node("m1").control(), &api::Control::Stub::ListServices,
                                    api::ListServicesRequest(), &services);
  EXPECT_EQ(refused.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_EQ(RunningTasksOn(Node("w1"), m1), tasks);  // its task runs on, undisturbed
  EXPECT_FALSE(std::filesystem::exists(Node("m1").state_dir() + "/raft"));
  ASSERT_TRUE(Eventually([&] { return Scale(Node("w2"), "web", 4).ok(); }));
  ASSERT_TRUE(Eventually([&] { return Total(RunningByNode(Node("w1"), "web")) == 4; }));
}

// A manager demoted while its swarmd was stopped starts as a manager (its node.json says so),
// hears that its member was removed, and goes on as a worker.
TEST_F(SwarmdTest, AManagerDemotedWhileStoppedComesBackAsAWorker) {
  ASSERT_NO_FATAL_FAILURE(Bring(2, 1));
  const std::string w1 = Info(Node("w1")).node_id();
  grpc::Status s = SetDesiredRole(Node("m1"), w1, api::NODE_ROLE_MANAGER);
  ASSERT_TRUE(s.ok()) << s.error_message();
  ASSERT_TRUE(Eventually([&] {
    const api::InfoResponse info = Info(Node("w1"));
    return info.role() == api::NODE_ROLE_MANAGER && info.raft_voter() && info.manager_count() == 3;
  })) << Info(Node("w1")).DebugString();

  ASSERT_TRUE(Node("w1").Stop().ok());
  // m1 and m2 are a quorum of the three: the demotion goes through.
  s = SetDesiredRole(Node("m1"), w1, api::NODE_ROLE_WORKER);
  ASSERT_TRUE(s.ok()) << s.error_message();
  ASSERT_TRUE(Eventually([&] { return Info(Node("m1")).manager_count() == 2; }));

  ASSERT_TRUE(Node("w1").Start().ok());
  ASSERT_NO_FATAL_FAILURE(ExpectAWorkerAgain("w1"));
  ASSERT_TRUE(Eventually([&] { return ReadyNodes() == 3; })) << NodeStates();
}

// A manager's join whose manager role cannot start (its listen port is taken): `join` waits, then
// says why and that the join goes on in the background; the node runs as a worker meanwhile,
// and becomes a manager once the port is free, with no other command (as a join the Raft group
// cannot take at once goes on).
TEST_F(SwarmdTest, AManagersJoinGoesOnInTheBackgroundUntilItCanListen) {
  ASSERT_NO_FATAL_FAILURE(Bring(1, 0));
  SwarmdProcess& m2 = Node("m2");
  ASSERT_TRUE(m2.Start().ok());
  PortBlocker taken(network_ != nullptr ? network_->holder("m2") : 0, m2.addr());
  ASSERT_TRUE(taken.held());
  CommandResult r = Local(m2, {"join", "--token", tokens_.manager(), Node("m1").addr()});
  EXPECT_EQ(r.exit_code, 1) << r.out;
  EXPECT_THAT(r.err, HasSubstr("the attempt to join continues in the background"));
  EXPECT_THAT(r.err, HasSubstr("cannot listen on " + m2.addr()));
  api::InfoResponse info = Info(m2);
  EXPECT_EQ(info.state(), api::LOCAL_NODE_STATE_ACTIVE) << info.DebugString();
  EXPECT_EQ(info.role(), api::NODE_ROLE_WORKER);
  EXPECT_FALSE(ServesControl(m2, 0));
  taken.Release();
  ASSERT_TRUE(Eventually([&] {
    const api::InfoResponse i = Info(m2);
    return i.role() == api::NODE_ROLE_MANAGER && i.raft_voter() && i.manager_count() == 2;
  })) << Info(m2).DebugString() << m2.LogTail();
  EXPECT_TRUE(ServesControl(m2, 0));
}

// A promotion (or a manager's join) stopped between writing node.json as a manager and the
// member's first start, which makes the Raft directory: the restarted node joins the Raft group
// again (its member never voted) instead of failing to start, and serves as a manager.
TEST_F(SwarmdTest, AnInterruptedPromotionIsTakenUpAfterARestart) {
  ASSERT_NO_FATAL_FAILURE(Bring(1, 1));
  const std::string w1 = Info(Node("w1")).node_id();
  ASSERT_TRUE(Node("w1").Stop().ok());
  grpc::Status s = SetDesiredRole(Node("m1"), w1, api::NODE_ROLE_MANAGER);
  ASSERT_TRUE(s.ok()) << s.error_message();
  auto state = node::LoadNodeState(Node("w1").state_dir());
  ASSERT_TRUE(state.ok()) << state.status();
  state->role = "manager";
  state->raft_id = 77;
  ASSERT_TRUE(node::SaveNodeState(Node("w1").state_dir(), *state).ok());
  ASSERT_FALSE(std::filesystem::exists(Node("w1").state_dir() + "/raft"));

  ASSERT_TRUE(Node("w1").Start().ok());
  ASSERT_TRUE(Eventually([&] {
    const api::InfoResponse info = Info(Node("w1"));
    return info.role() == api::NODE_ROLE_MANAGER && info.raft_voter() && info.manager_count() == 2;
  })) << Info(Node("w1")).DebugString() << Node("w1").LogTail();
  EXPECT_THAT(Node("w1").LogTail(1 << 20), HasSubstr("an interrupted join or promotion"));
  EXPECT_TRUE(ServesControl(Node("w1"), 0));
  auto after = node::LoadNodeState(Node("w1").state_dir());
  ASSERT_TRUE(after.ok()) << after.status();
  EXPECT_EQ(after->role, "manager");
  EXPECT_NE(after->raft_id, 77u);  // a new seat: 77 was never the cluster's
}

// Two of three managers lost for good: no quorum, no write. `swarmctl init --force-new-cluster`
// on the survivor makes it a one-member cluster with everything it held; it serves writes and
// takes new managers.
TEST_F(SwarmdTest, QuorumLossIsRecoveredWithForceNewCluster) {
  ASSERT_NO_FATAL_FAILURE(Bring(3, 1));
  CreateService(Node("m1"), "web", 3);
  ASSERT_TRUE(Eventually([&] { return Total(RunningByNode(Node("m1"), "web")) == 3; }));
  // Refused where there is nothing to recover from: on a worker.
  CommandResult r = Local(Node("w1"), {"init", "--force-new-cluster"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_THAT(r.err, HasSubstr("no manager state"));
  Node("m2").Kill();
  Node("m3").Kill();

  r = Local(Node("m1"), {"init", "--force-new-cluster"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_THAT(r.out, StartsWith("Swarm initialized: current node ("));
  r = Local(Node("m1"), {"service", "scale", "-d", "web=4"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  ASSERT_TRUE(Eventually([&] { return Total(RunningByNode(Node("m1"), "web")) == 4; }));
  r = Local(Node("m1"), {"info"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("Is Manager: true"));

  // The same tokens still work: a new manager joins the new cluster, and the pair carries on
  // when the survivor restarts.
  r = Local(Node("m1"), {"join-token", "-q", "manager"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(std::string(absl::StripAsciiWhitespace(r.out)), tokens_.manager());
  ASSERT_NO_FATAL_FAILURE(Join("m4", tokens_.manager()));
  ASSERT_TRUE(Node("m1").Stop().ok());
  ASSERT_TRUE(Node("m1").Start().ok());
  ASSERT_TRUE(Eventually([&] { return Scale(Node("m4"), "web", 2).ok(); }));
  ASSERT_TRUE(Eventually([&] { return Total(RunningByNode(Node("m4"), "web")) == 2; }));
}

// `node rm --force` of a live worker: every manager refuses its certificate from then on, and
// the node, told so by its session's refusal, stops its tasks and leaves the swarm (inactive,
// the cluster's state deleted), as Docker's does; its tasks run elsewhere. It can join again, as
// a new node. A node removed while it was away leaves when it comes back.
TEST_F(SwarmdTest, ARemovedNodeIsRefusedAndLeavesTheSwarm) {
  ASSERT_NO_FATAL_FAILURE(Bring(1, 2));
  CreateService(Node("m1"), "web", 3);
  ASSERT_TRUE(Eventually([&] { return RunningByNode(Node("m1"), "web").size() == 3; }));
  const std::string w1_id = Info(Node("w1")).node_id();
  ASSERT_FALSE(w1_id.empty());
  CommandResult r = Local(Node("m1"), {"node", "rm", "w1"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_THAT(r.err, HasSubstr("use --force"));
  r = Local(Node("m1"), {"node", "rm", "--force", "w1"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  ASSERT_TRUE(Eventually([&] {
    return Info(Node("w1")).state() == api::LOCAL_NODE_STATE_INACTIVE;
  })) << "w1 did not leave: " << Node("w1").LogTail();
  EXPECT_THAT(Node("w1").LogTail(1 << 20),
              HasSubstr("has been removed from the cluster; its certificate is revoked"));
  r = Local(Node("w1"), {"info"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_THAT(r.out, StartsWith("Swarm: inactive\n"));
  for (const char* gone : {"node.json", "tls", "worker"}) {
    EXPECT_FALSE(std::filesystem::exists(std::filesystem::path(Node("w1").state_dir()) / gone))
        << gone;
  }
  // Its task runs elsewhere: one on each of the two nodes left.
  ASSERT_TRUE(Eventually([&] {
    auto spread = RunningByNode(Node("m1"), "web");
    return Total(spread) == 3 && spread.count(w1_id) == 0;
  }));
  // Restarted, it stays out; it joins again as a new node.
  ASSERT_TRUE(Node("w1").Stop().ok());
  ASSERT_TRUE(Node("w1").Start().ok());
  EXPECT_EQ(Info(Node("w1")).state(), api::LOCAL_NODE_STATE_INACTIVE);
  ASSERT_NO_FATAL_FAILURE(Join("w1", tokens_.worker()));
  EXPECT_NE(Info(Node("w1")).node_id(), w1_id);

  // w2 removed while it is stopped (Down: no --force needed) leaves when it comes back.
  const std::string w2_id = Info(Node("w2")).node_id();
  ASSERT_TRUE(Node("w2").Stop().ok());
  ASSERT_TRUE(Eventually([&] {
    return Local(Node("m1"), {"node", "rm", w2_id}).exit_code == 0;
  })) << NodeStates();
  ASSERT_TRUE(Node("w2").Start().ok());
  ASSERT_TRUE(Eventually([&] {
    return Info(Node("w2")).state() == api::LOCAL_NODE_STATE_INACTIVE;
  })) << "w2 did not leave: " << Node("w2").LogTail();
  r = Local(Node("m1"), {"node", "ls", "-q"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  std::vector<std::string> ids = absl::StrSplit(r.out, '\n', absl::SkipEmpty());
  EXPECT_EQ(ids.size(), 2u) << r.out;  // m1 and the new w1
}

// Every refusal is one line, `Error: ...`, exit code 1, and changes nothing.
TEST_F(SwarmdTest, BadInputGetsAClearError) {
  ASSERT_NO_FATAL_FAILURE(Bring(1, 0));
  auto one_error_line = [](const CommandResult& r) {
    EXPECT_EQ(r.exit_code, 1) << r.out << r.err;
    EXPECT_THAT(r.err, StartsWith("Error: "));
    EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
    return r.err;
  };
  SwarmdProcess& stranger = Node("w9");
  ASSERT_TRUE(stranger.Start().ok());
  // A token of another cluster (a valid shape, another CA): refused, naming why.
  std::string err = one_error_line(
      Local(stranger, {"join", "--token",
                       "SWMTKN-1-" + std::string(50, '1') + "-" + std::string(25, 'a'),
                       Node("m1").addr()}));
  EXPECT_THAT(err, HasSubstr("token"));
  // A malformed token never leaves the machine.
  err = one_error_line(Local(stranger, {"join", "--token", "not-a-token", Node("m1").addr()}));
  EXPECT_THAT(err, HasSubstr("token"));
  // An unreachable manager: an address on the network that nobody has (on loopback, a port
  // nobody listens on).
  const std::string nobody = network_ != nullptr ? TestNetwork::UnusedIp() + ":4242"
                                                 : absl::StrCat("127.0.0.1:", FreePort());
  err = one_error_line(Local(stranger, {"join", "--token", tokens_.worker(), nobody}));
  EXPECT_THAT(err, StartsWith("Error: joining through " + nobody));
  // The stranger is still in no cluster; init twice is refused.
  CommandResult r = Local(stranger, {"info"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_THAT(r.out, StartsWith("Swarm: inactive\n"));
  err = one_error_line(Local(Node("m1"), {"init"}));
  EXPECT_THAT(err, HasSubstr("already part of a swarm"));
  // A worker cannot create services through its socket (no manager there), and a manager
  // refuses a malformed spec.
  ASSERT_NO_FATAL_FAILURE(Join("w1", tokens_.worker()));
  err = one_error_line(Local(Node("w1"), {"service", "create", "--name", "x", "sim:run"}));
  EXPECT_THAT(err, HasSubstr("not a swarm manager"));
  r = Local(Node("m1"), {"service", "create", "--name", "x", "--replicas", "-3", "sim:run"});
  EXPECT_NE(r.exit_code, 0);
  r = Local(Node("m1"), {"service", "ls", "-q"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "");
}

// A manager cut off from the network (its link down): the others carry on without it (a new
// leader if it led, its node's tasks replaced), and swarmctl fails over past it. Healed, it
// catches up and is a voter again: with another manager cut off, it makes the quorum.
TEST_F(SwarmdTest, AManagerCutOffIsWorkedAroundAndCatchesUpWhenHealed) {
  if (network_ == nullptr) GTEST_SKIP() << "needs network namespaces (run as root)";
  ASSERT_NO_FATAL_FAILURE(Bring(3, 1));
  CreateService(Node("m1"), "web", 4);
  ASSERT_TRUE(Eventually([&] { return Total(RunningByNode(Node("m1"), "web")) == 4; }));
  // An operator certificate, for swarmctl --host from the bridge.
  const std::string op = base_ + "/operator";
  CommandResult r = Local(Node("m1"), {"ca", "issue-operator", "--out", op});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const std::string hosts =
      absl::StrJoin({Node("m1").addr(), Node("m2").addr(), Node("m3").addr()}, ",");
  auto remote = [&](std::vector<std::string> args) {
    args.insert(args.begin(), {"--host", hosts, "--tls-dir", op, "--connect-timeout", "2s"});
    return Swarmctl(std::move(args));
  };
  api::InfoResponse info;
  ASSERT_TRUE(Call(Node("m1").node_control(), &api::NodeControl::Stub::Info, api::InfoRequest(),
                   &info)
                  .ok());
  const std::string m1_id = info.node_id();

  // m1 (the leader: it bootstrapped the cluster) is cut off.
  ASSERT_TRUE(network_->SetLink("m1", false).ok());
  ASSERT_TRUE(Eventually([&] {
    return remote({"service", "scale", "-d", "web=6"}).exit_code == 0;
  })) << "no write through the managers left";
  ASSERT_TRUE(Eventually([&] {
    auto spread = RunningByNode(Node("m2"), "web");
    return Total(spread) == 6 && spread.count(m1_id) == 0;
  })) << "the cut-off node's tasks were not replaced";
  // m1 is Down and Unreachable; one of the others leads.
  r = remote({"node", "ls"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("Down"));
  EXPECT_THAT(r.out, HasSubstr("Unreachable"));
  std::vector<std::string> pieces = absl::StrSplit(r.out, "Leader");
  EXPECT_EQ(pieces.size(), 2u) << r.out;

  // Healed: m1's node is ready again, and its Raft member holds the log: with m2 cut off in
  // turn, m1 and m3 make the quorum that accepts a write.
  ASSERT_TRUE(network_->SetLink("m1", true).ok());
  ASSERT_TRUE(Eventually([&] {
    api::ListNodesResponse nodes;
    if (!Call(Node("m3").control(), &api::Control::Stub::ListNodes, api::ListNodesRequest(),
              &nodes)
             .ok()) {
      return false;
    }
    for (const auto& n : nodes.nodes()) {
      if (n.status().state() != api::NodeStatus::NODE_STATE_READY) return false;
    }
    return nodes.nodes_size() == 4;
  })) << "m1 did not come back";
  ASSERT_TRUE(network_->SetLink("m2", false).ok());
  ASSERT_TRUE(Eventually([&] {
    return remote({"service", "scale", "-d", "web=2"}).exit_code == 0;
  })) << "m1 and m3 did not make a quorum";
  ASSERT_TRUE(Eventually([&] { return Total(RunningByNode(Node("m1"), "web")) == 2; }));
  ASSERT_TRUE(network_->SetLink("m2", true).ok());
}

// Host processes as tasks: their output in per-task log files, adopted by a restarted swarmd
// (the same tasks go on running), stopped when the service goes.
class ProcessExecutorTest : public SwarmdTest {
 protected:
  ProcessExecutorTest() { executor_ = "process"; }

  // Task id -> pid of the processes running on `node`, from its task directories.
  std::map<std::string, pid_t> Processes(SwarmdProcess& node) {
    std::map<std::string, pid_t> out;
    std::error_code ec;
    for (const auto& e : std::filesystem::directory_iterator(node.state_dir() + "/tasks", ec)) {
      std::ifstream in(e.path() / "pid");
      long pid = 0;
      if (in >> pid && pid > 1 && ::kill(static_cast<pid_t>(pid), 0) == 0) {
        out[e.path().filename().string()] = static_cast<pid_t>(pid);
      }
    }
    return out;
  }
};

TEST_F(ProcessExecutorTest, TasksRunAsProcessesSurviveARestartOfTheirDaemonAndStop) {
  ASSERT_NO_FATAL_FAILURE(Bring(1, 1));
  CreateService(Node("m1"), "echo", 4,
                {"/bin/sh", "-c", "echo hello from $SHOAL_TASK_ID; exec sleep 1000"});
  ASSERT_TRUE(Eventually([&] { return Total(RunningByNode(Node("m1"), "echo")) == 4; }));
  auto before = Processes(Node("w1"));
  ASSERT_EQ(before.size(), 2u);  // two of the four on the worker
  for (const auto& [task, pid] : before) {
    std::ifstream log(Node("w1").state_dir() + "/tasks/" + task + "/stdout.log");
    std::string line;
    std::getline(log, line);
    EXPECT_EQ(line, "hello from " + task);
  }

  // A clean restart of the worker's daemon: the same processes go on, adopted.
  ASSERT_TRUE(Node("w1").Stop().ok());
  ASSERT_TRUE(Node("w1").Start().ok());
  ASSERT_TRUE(Eventually([&] { return ReadyNodes() == 2; }));
  EXPECT_EQ(Processes(Node("w1")), before);
  ASSERT_TRUE(Eventually([&] { return Total(RunningByNode(Node("m1"), "echo")) == 4; }));

  // Scaled to zero: every process is stopped; the task directories (logs) stay while the
  // tasks are in the cluster's history.
  ASSERT_TRUE(Scale(Node("m1"), "echo", 0).ok());
  ASSERT_TRUE(Eventually([&] {
    return Processes(Node("w1")).empty() && Processes(Node("m1")).empty();
  }));
  for (const auto& [task, pid] : before) {
    EXPECT_TRUE(std::filesystem::exists(Node("w1").state_dir() + "/tasks/" + task + "/stdout.log"));
  }
  // Removed with the service: the tasks leave the store, and their files leave the nodes.
  const CommandResult r = Local(Node("m1"), {"service", "rm", "echo"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto task_dirs = [](SwarmdProcess& node) {
    std::error_code ec;
    size_t n = 0;
    for (const auto& e : std::filesystem::directory_iterator(node.state_dir() + "/tasks", ec)) {
      n += e.is_directory();
    }
    return n;
  };
  ASSERT_TRUE(Eventually([&] { return task_dirs(Node("w1")) + task_dirs(Node("m1")) == 0; }))
      << task_dirs(Node("w1")) << " task directories left on w1, " << task_dirs(Node("m1"))
      << " on m1";
}

// `swarmctl service logs` through a manager's socket, the leader's and a follower's (which
// passes the subscription on to the leader): every task's lines with Docker's prefix, a task's
// stderr on stderr; one task alone by its id; and a worker that died named in a warning
// instead of a hang.
TEST_F(ProcessExecutorTest, ServiceLogsShowEveryTasksLinesThroughAnyManager) {
  ASSERT_NO_FATAL_FAILURE(Bring(2, 1));
  CreateService(
      Node("m1"), "echo", 3,
      {"/bin/sh", "-c", "echo hello from $SHOAL_TASK_ID; echo oops >&2; exec sleep 1000"});
  ASSERT_TRUE(Eventually([&] { return Total(RunningByNode(Node("m1"), "echo")) == 3; }));

  // What each task's line should look like: echo.<slot>.<short task id>@<hostname>.
  api::ListNodesResponse nodes;
  ASSERT_TRUE(
      Call(Node("m1").control(), &api::Control::Stub::ListNodes, api::ListNodesRequest(), &nodes)
          .ok());
  std::map<std::string, std::string> hostname;
  for (const auto& n : nodes.nodes()) hostname[n.meta().id()] = n.description().hostname();
  api::ListTasksResponse tasks;
  ASSERT_TRUE(
      Call(Node("m1").control(), &api::Control::Stub::ListTasks, api::ListTasksRequest(), &tasks)
          .ok());
  std::set<std::string> want_out, want_err;
  std::string a_task, its_line, w1_id;
  for (const auto& t : tasks.tasks()) {
    if (t.desired_state() != api::TASK_STATE_RUNNING) continue;
    const std::string prefix = absl::StrCat("echo.", t.slot(), ".", t.meta().id().substr(0, 12),
                                            "@", hostname[t.node_id()], "    | ");
    want_out.insert(absl::StrCat(prefix, "hello from ", t.meta().id()));
    want_err.insert(absl::StrCat(prefix, "oops"));
    a_task = t.meta().id();
    its_line = absl::StrCat(prefix, "hello from ", t.meta().id(), "\n");
    if (hostname[t.node_id()] == "w1") w1_id = t.node_id();
  }
  ASSERT_EQ(want_out.size(), 3u);
  ASSERT_FALSE(w1_id.empty()) << "a task on the worker";
  auto lines = [](const std::string& text) {
    std::vector<std::string> v = absl::StrSplit(text, '\n', absl::SkipEmpty());
    return std::set<std::string>(v.begin(), v.end());
  };
  for (const char* via : {"m1", "m2"}) {
    CommandResult r;
    // The tasks write their lines as they start: wait until every one has.
    const bool all = Eventually([&] {
      r = Local(Node(via), {"service", "logs", "echo"});
      return r.exit_code == 0 && lines(r.out) == want_out;
    });
    ASSERT_TRUE(all) << "through " << via << ":\n" << r.out << r.err;
    EXPECT_EQ(lines(r.err), want_err) << "through " << via;
  }
  CommandResult r = Local(Node("m2"), {"service", "logs", "--no-task-ids", a_task});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const std::string short_prefix =
      its_line.substr(0, its_line.find('.', 5)) + its_line.substr(its_line.find('@'));
  EXPECT_EQ(r.out, short_prefix) << "one task, without its id";

  // The worker dies: its tasks' lines are missing, and swarmctl says so within the broker's
  // bound (5 s of silence) rather than hanging.
  Node("w1").Kill();
  const absl::Time before = absl::Now();
  r = Local(Node("m1"), {"service", "logs", "echo"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_LT(absl::Now() - before, absl::Seconds(30));
  EXPECT_THAT(r.err, HasSubstr("Warning: incomplete log stream: no answer from node w1"));
}

}  // namespace
}  // namespace shoal::integration
