// swarmctl's local commands against a fake swarmd: NodeControl (and a Control that answers as a
// worker's does) on a unix socket, reached with --socket; `service logs` against a manager's
// Control and Logs; and what needs no server at all (usage errors, help, version, completion).
#include "cli/swarmctl.h"

#include <grpcpp/grpcpp.h>
#include <unistd.h>

#include <filesystem>
#include <sstream>
#include <tuple>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "proto/control.grpc.pb.h"
#include "proto/logs.grpc.pb.h"
#include "proto/node_control.grpc.pb.h"

namespace shoal::cli {
namespace {

using ::testing::HasSubstr;

long Newlines(const std::string& s) { return std::count(s.begin(), s.end(), '\n'); }

class FakeNodeControl final : public api::NodeControl::Service {
 public:
  grpc::Status Init(grpc::ServerContext*, const api::InitRequest* req,
                    api::InitResponse* resp) override {
    init = *req;
    if (already_in_cluster) {
      return grpc::Status(grpc::StatusCode::FAILED_PRECONDITION,
                          "this node is already part of a swarm");
    }
    resp->set_node_id("node1");
    resp->set_cluster_id("cluster1");
    resp->mutable_join_tokens()->set_worker("SWMTKN-1-aaa-bbb");
    resp->mutable_join_tokens()->set_manager("SWMTKN-1-aaa-ccc");
    resp->set_advertise_addr("10.0.0.1:4242");
    return grpc::Status::OK;
  }
  grpc::Status Join(grpc::ServerContext*, const api::JoinRequest* req,
                    api::JoinResponse* resp) override {
    join = *req;
    if (req->remote_addrs(0) == "10.0.0.9:4242") {
      return grpc::Status(grpc::StatusCode::UNAVAILABLE,
                          "joining through 10.0.0.9:4242: No route to host");
    }
    resp->set_node_id("node2");
    resp->set_role(req->join_token().find("ccc") != std::string::npos ? api::NODE_ROLE_MANAGER
                                                                      : api::NODE_ROLE_WORKER);
    return grpc::Status::OK;
  }
  grpc::Status Leave(grpc::ServerContext*, const api::LeaveRequest* req,
                     api::LeaveResponse*) override {
    if (!req->force()) {
      return grpc::Status(grpc::StatusCode::FAILED_PRECONDITION,
                          "you are attempting to leave the swarm on a node that is participating "
                          "as a manager; use --force");
    }
    return grpc::Status::OK;
  }
  grpc::Status Info(grpc::ServerContext*, const api::InfoRequest*,
                    api::InfoResponse* resp) override {
    resp->set_state(api::LOCAL_NODE_STATE_ACTIVE);
    resp->set_node_id("node1");
    resp->set_cluster_id("cluster1");
    resp->set_role(api::NODE_ROLE_MANAGER);
    resp->set_control_available(true);
    resp->set_nodes(4);
    resp->set_manager_count(1);
    resp->set_advertise_addr("10.0.0.1:4242");
    auto* m = resp->add_managers();
    m->set_addr("10.0.0.1:4242");
    resp->set_executor("sim");
    return grpc::Status::OK;
  }

  bool already_in_cluster = false;
  api::InitRequest init;
  api::JoinRequest join;
};

// Control as a worker's swarmd serves it.
class WorkerControl final : public api::Control::Service {
 public:
  grpc::Status ListServices(grpc::ServerContext*, const api::ListServicesRequest*,
                            api::ListServicesResponse*) override {
    return grpc::Status(grpc::StatusCode::FAILED_PRECONDITION,
                        "this node is not a swarm manager. Worker nodes can't be used to view or "
                        "modify cluster state");
  }
};

// swarmctl (shoal::cli::Run) against fake services on a unix socket, as swarmd serves them.
class SocketTest : public ::testing::Test {
 protected:
  void Serve(const std::string& name, std::initializer_list<grpc::Service*> services) {
    const char* tmp = std::getenv("TEST_TMPDIR");
    socket_ = std::string(tmp ? tmp : "/tmp") + "/" + name + ".sock";
    if (socket_.size() > 100) {
      socket_ = "/tmp/swarmctl-" + name + "-" + std::to_string(getpid()) + ".sock";
    }
    std::filesystem::remove(socket_);
    grpc::ServerBuilder b;
    b.AddListeningPort("unix:" + socket_, grpc::InsecureServerCredentials());
    for (grpc::Service* s : services) b.RegisterService(s);
    server_ = b.BuildAndStart();
    ASSERT_NE(server_, nullptr);
  }
  void TearDown() override {
    if (server_ != nullptr) server_->Shutdown();
    std::filesystem::remove(socket_);
  }

  struct Result {
    int code;
    std::string out, err;
  };
  Result Run(std::vector<std::string> args) {
    args.insert(args.begin(), {"--socket", socket_});
    std::ostringstream out, err;
    const int code = shoal::cli::Run(args, out, err);
    return {code, out.str(), err.str()};
  }

  std::string socket_;
  std::unique_ptr<grpc::Server> server_;
};

class SwarmctlTest : public SocketTest {
 protected:
  void SetUp() override { Serve("swarmd", {&node_control_, &control_}); }
  Result Cli(std::vector<std::string> args) { return Run(std::move(args)); }

  FakeNodeControl node_control_;
  WorkerControl control_;
};

TEST_F(SwarmctlTest, InitPrintsTheJoinCommandAsDockerDoes) {
  const Result r = Cli({"init", "--advertise-addr", "10.0.0.1:4242", "--availability", "drain"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out,
            "Swarm initialized: current node (node1) is now a manager.\n\n"
            "To add a worker to this swarm, run the following command:\n\n"
            "    swarmctl join --token SWMTKN-1-aaa-bbb 10.0.0.1:4242\n\n"
            "To add a manager to this swarm, run 'swarmctl join-token manager' and follow the "
            "instructions.\n\n");
  EXPECT_EQ(node_control_.init.advertise_addr(), "10.0.0.1:4242");
  EXPECT_EQ(node_control_.init.availability(), api::NodeSpec::AVAILABILITY_DRAIN);
}

TEST_F(SwarmctlTest, InitTakesTheClustersFirstSettings) {
  Result r = Cli({"init", "--dispatcher-heartbeat", "400ms", "--task-history-limit", "2",
                  "--cert-expiry", "720h"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(node_control_.init.spec().dispatcher().heartbeat_period().nanos(), 400'000'000);
  EXPECT_EQ(node_control_.init.spec().orchestration().task_history_retention_limit(), 2);
  EXPECT_EQ(node_control_.init.spec().ca_config().node_cert_expiry().seconds(), 720 * 3600);
  r = Cli({"init", "--dispatcher-heartbeat", "often"});
  EXPECT_EQ(r.code, 2);
  EXPECT_THAT(r.err, HasSubstr("--dispatcher-heartbeat"));
}

TEST_F(SwarmctlTest, InitRefusedIsOneLine) {
  node_control_.already_in_cluster = true;
  const Result r = Cli({"init"});
  EXPECT_EQ(r.code, 1);
  EXPECT_EQ(r.err, "Error: this node is already part of a swarm\n");
}

TEST_F(SwarmctlTest, JoinAndLeave) {
  Result r = Cli({"join", "--token", "SWMTKN-1-aaa-bbb", "10.0.0.1:4242"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out, "This node joined a swarm as a worker.\n");
  EXPECT_EQ(node_control_.join.remote_addrs(0), "10.0.0.1:4242");
  r = Cli({"join", "--token", "SWMTKN-1-aaa-ccc", "10.0.0.1:4242"});
  EXPECT_EQ(r.out, "This node joined a swarm as a manager.\n");
  r = Cli({"join", "10.0.0.1:4242"});
  EXPECT_EQ(r.code, 2) << "--token is required";
  EXPECT_THAT(r.err, HasSubstr("--token"));

  r = Cli({"leave"});
  EXPECT_EQ(r.code, 1);
  EXPECT_THAT(r.err, HasSubstr("use --force"));
  r = Cli({"leave", "--force"});
  EXPECT_EQ(r.code, 0);
  EXPECT_EQ(r.out, "Node left the swarm.\n");
}

TEST_F(SwarmctlTest, InfoShowsTheSwarmSection) {
  const Result r = Cli({"info"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("Swarm: active\n NodeID: node1\n Is Manager: true\n"
                               " ClusterID: cluster1\n Managers: 1\n Nodes: 4\n"));
  EXPECT_THAT(r.out, HasSubstr(" Manager Addresses:\n  10.0.0.1:4242\n"));
}

TEST_F(SwarmctlTest, ControlOnAWorkerSaysSo) {
  const Result r = Cli({"service", "ls"});
  EXPECT_EQ(r.code, 1);
  EXPECT_EQ(r.err,
            "Error: this node is not a swarm manager. Worker nodes can't be used to view or "
            "modify cluster state\n");
}

TEST_F(SwarmctlTest, LocalCommandsRefuseHost) {
  const Result r = Cli({"--host", "10.0.0.1:4242", "info"});
  EXPECT_EQ(r.code, 2);
  EXPECT_THAT(r.err, HasSubstr("without --host"));
}

TEST_F(SwarmctlTest, NoDaemonIsOneClearLine) {
  std::ostringstream out, err;
  EXPECT_EQ(shoal::cli::Run({"--socket", socket_ + ".missing", "info"}, out, err), 1);
  EXPECT_THAT(err.str(), HasSubstr("Error: cannot reach swarmd at unix:" + socket_ + ".missing"));
  EXPECT_EQ(Newlines(err.str()), 1);
}

// UNAVAILABLE from a running swarmd (it could not reach the manager) is swarmd's message, not
// "cannot reach swarmd".
TEST_F(SwarmctlTest, AnUnreachableManagerIsNotAMissingDaemon) {
  const Result r = Cli({"join", "--token", "SWMTKN-1-aaa-bbb", "10.0.0.9:4242"});
  EXPECT_EQ(r.code, 1);
  EXPECT_EQ(r.err, "Error: joining through 10.0.0.9:4242: No route to host\n");
}

TEST(SwarmctlUsageTest, UsageErrorsExitTwoWithOneLine) {
  const std::vector<std::vector<std::string>> cases = {
      {"service", "create", "--replicas", "x", "nginx"},
      {"service", "create", "--limit-memory", "12x", "nginx"},
      {"service", "create", "--publish", "99999:80", "nginx"},
      {"service", "scale", "web"},
      {"service", "create"},
      {"service"},
      {"nosuch"},
      {"node", "update", "--availability", "away", "n1"},
      {"service", "ls", "--format", "yaml"},
      {"cluster", "update", "--heartbeat-period", "often"},
  };
  for (const auto& args : cases) {
    std::ostringstream out, err;
    EXPECT_EQ(shoal::cli::Run(args, out, err), 2)
        << args[0] << " " << (args.size() > 1 ? args[1] : "");
    EXPECT_EQ(Newlines(err.str()), 1) << err.str();
    EXPECT_EQ(err.str().rfind("Error: ", 0), 0u) << err.str();
    EXPECT_EQ(out.str(), "");
  }
}

TEST(SwarmctlUsageTest, HelpVersionAndCompletion) {
  std::ostringstream out, err;
  EXPECT_EQ(shoal::cli::Run({"--help"}, out, err), 0);
  EXPECT_THAT(out.str(), HasSubstr("service"));
  out.str("");
  EXPECT_EQ(shoal::cli::Run({"service", "create", "--help"}, out, err), 0);
  EXPECT_THAT(out.str(), HasSubstr("--replicas"));
  out.str("");
  EXPECT_EQ(shoal::cli::Run({"version"}, out, err), 0);
  EXPECT_EQ(out.str(), std::string("swarmctl version ") + kVersion + "\n");
  out.str("");
  EXPECT_EQ(shoal::cli::Run({"completion", "bash"}, out, err), 0);
  EXPECT_THAT(out.str(), HasSubstr("complete -F _swarmctl swarmctl"));
  EXPECT_THAT(out.str(), HasSubstr("_swarmctl_subs[\"service\"]=\"create update rollback scale"));
  EXPECT_THAT(out.str(), HasSubstr("--update-parallelism"));
  EXPECT_EQ(shoal::cli::Run({"completion", "fish"}, out, err), 2);
}

// ---- service logs ----

constexpr char kWebId[] = "webservice0000000000000001";
constexpr char kTask1[] = "task1aaaaaaaaaaaaaaaaaaaa";
constexpr char kTask2[] = "task2bbbbbbbbbbbbbbbbbbbb";

// Control as a manager's swarmd serves it, with one service "web" (10 replicas) and two of its
// tasks, on nodes n1 (host-a) and n2 (host-b).
class ManagerControl final : public api::Control::Service {
 public:
  ManagerControl() {
    web_.mutable_meta()->set_id(kWebId);
    web_.mutable_spec()->mutable_annotations()->set_name("web");
    web_.mutable_spec()->mutable_replicated()->set_replicas(10);
    for (auto [id, slot, node] :
         {std::make_tuple(kTask1, 1, "n1"), std::make_tuple(kTask2, 10, "n2")}) {
      api::Task t;
      t.mutable_meta()->set_id(id);
      t.set_service_id(kWebId);
      t.set_slot(slot);
      t.set_node_id(node);
      tasks_.push_back(t);
    }
  }
  grpc::Status GetService(grpc::ServerContext*, const api::GetServiceRequest* req,
                          api::GetServiceResponse* resp) override {
    if (req->service_id() != "web" && req->service_id() != kWebId) {
      return grpc::Status(grpc::StatusCode::NOT_FOUND,
                          "service " + req->service_id() + " not found");
    }
    *resp->mutable_service() = web_;
    return grpc::Status::OK;
  }
  grpc::Status GetTask(grpc::ServerContext*, const api::GetTaskRequest* req,
                       api::GetTaskResponse* resp) override {
    for (const api::Task& t : tasks_) {
      if (t.meta().id().rfind(req->task_id(), 0) == 0) {
        *resp->mutable_task() = t;
        return grpc::Status::OK;
      }
    }
    return grpc::Status(grpc::StatusCode::NOT_FOUND, "task " + req->task_id() + " not found");
  }
  grpc::Status ListTasks(grpc::ServerContext*, const api::ListTasksRequest*,
                         api::ListTasksResponse* resp) override {
    for (const api::Task& t : tasks_) *resp->add_tasks() = t;
    return grpc::Status::OK;
  }
  grpc::Status ListNodes(grpc::ServerContext*, const api::ListNodesRequest*,
                         api::ListNodesResponse* resp) override {
    for (auto [id, host] : {std::make_pair("n1", "host-a"), std::make_pair("n2", "host-b")}) {
      api::Node* n = resp->add_nodes();
      n->mutable_meta()->set_id(id);
      n->mutable_description()->set_hostname(host);
    }
    return grpc::Status::OK;
  }

 private:
  api::Service web_;
  std::vector<api::Task> tasks_;
};

// The Logs API: records the subscription, answers with canned messages.
class FakeLogs final : public api::Logs::Service {
 public:
  grpc::Status SubscribeLogs(grpc::ServerContext*, const api::SubscribeLogsRequest* req,
                             grpc::ServerWriter<api::SubscribeLogsMessage>* writer) override {
    request = *req;
    for (const auto& m : replies) writer->Write(m);
    return grpc::Status::OK;
  }

  static api::LogMessage Line(const std::string& task, const std::string& node,
                              const std::string& data, bool is_stderr = false) {
    api::LogMessage m;
    m.mutable_context()->set_service_id(kWebId);
    m.mutable_context()->set_node_id(node);
    m.mutable_context()->set_task_id(task);
    m.mutable_timestamp()->set_seconds(1700000000);
    m.mutable_timestamp()->set_nanos(5);
    m.set_stream(is_stderr ? api::LOG_STREAM_STDERR : api::LOG_STREAM_STDOUT);
    m.set_data(data);
    return m;
  }

  api::SubscribeLogsRequest request;
  std::vector<api::SubscribeLogsMessage> replies;
};

class ServiceLogsTest : public SocketTest {
 protected:
  void SetUp() override {
    api::SubscribeLogsMessage first;
    *first.add_messages() = FakeLogs::Line(kTask1, "n1", "hello\n");
    *first.add_messages() = FakeLogs::Line(kTask2, "n2", "oops\n", /*is_stderr=*/true);
    api::SubscribeLogsMessage last;
    *last.add_messages() = FakeLogs::Line(kTask1, "n1", "no newline");
    logs_.replies = {first, last};
    Serve("manager", {&control_, &logs_});
  }
  Result Cli(std::vector<std::string> args) {
    args.insert(args.begin(), {"service", "logs"});
    return Run(std::move(args));
  }

  ManagerControl control_;
  FakeLogs logs_;
};

TEST_F(ServiceLogsTest, EachLineIsPrefixedWithItsTaskAndNodeAsDockerDoes) {
  const auto r = Cli({"web"});
  ASSERT_EQ(r.code, 0) << r.err;
  // Slots are padded to the width of the replica count (10), then "    | ".
  EXPECT_EQ(r.out,
            "web.1.task1aaaaaaa@host-a     | hello\n"
            "web.1.task1aaaaaaa@host-a     | no newline\n");
  EXPECT_EQ(r.err, "web.10.task2bbbbbbb@host-b    | oops\n") << "a task's stderr on stderr";
  const api::SubscribeLogsRequest& req = logs_.request;
  ASSERT_EQ(req.selector().service_ids_size(), 1);
  EXPECT_EQ(req.selector().service_ids(0), kWebId);
  EXPECT_EQ(req.options().tail(), -1) << "all lines by default";
  EXPECT_FALSE(req.options().follow());
  EXPECT_FALSE(req.options().has_since());
}

TEST_F(ServiceLogsTest, FlagsShapeTheRequestAndTheOutput) {
  auto r =
      Cli({"--no-task-ids", "--timestamps", "--tail", "5", "--since", "1700000000.5", "-f", "web"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_THAT(r.out,
              ::testing::StartsWith("2023-11-14T22:13:20.000000005Z web.1@host-a     | hello\n"));
  EXPECT_EQ(logs_.request.options().tail(), 5);
  EXPECT_TRUE(logs_.request.options().follow());
  EXPECT_EQ(logs_.request.options().since().seconds(), 1700000000);
  EXPECT_EQ(logs_.request.options().since().nanos(), 500000000);

  r = Cli({"--no-resolve", "--no-trunc", "web"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_THAT(r.out,
              ::testing::StartsWith(absl::StrCat(kWebId, ".1.", kTask1, "@n1     | hello\n")));

  r = Cli({"--raw", "web"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out, "hello\nno newline");
  EXPECT_EQ(r.err, "oops\n");
}

TEST_F(ServiceLogsTest, ATaskIdSelectsThatTask) {
  const auto r = Cli({"task2bbb"});
  ASSERT_EQ(r.code, 0) << r.err;
  ASSERT_EQ(logs_.request.selector().task_ids_size(), 1);
  EXPECT_EQ(logs_.request.selector().task_ids(0), kTask2);
  EXPECT_TRUE(logs_.request.selector().service_ids().empty());
}

TEST_F(ServiceLogsTest, NodesThatDidNotAnswerAreNamedInAWarning) {
  logs_.replies.back().add_unreachable_node_ids("n2");
  const auto r = Cli({"web"});
  EXPECT_EQ(r.code, 0) << "what was received is the answer";
  EXPECT_THAT(r.out, HasSubstr("| hello\n"));
  EXPECT_THAT(r.err, ::testing::EndsWith(
                         "Warning: incomplete log stream: no answer from node host-b (down, or "
                         "silent for too long): the logs of its tasks are missing\n"));
}

TEST_F(ServiceLogsTest, UnknownReferencesAndBadFlagsAreOneLine) {
  auto r = Cli({"nope"});
  EXPECT_EQ(r.code, 1);
  EXPECT_EQ(r.err, "Error: no such task or service: nope\n");
  r = Cli({"--tail", "ten", "web"});
  EXPECT_EQ(r.code, 2);
  EXPECT_THAT(r.err, HasSubstr("--tail"));
  EXPECT_EQ(Newlines(r.err), 1);
  r = Cli({"--since", "yesterday", "web"});
  EXPECT_EQ(r.code, 2);
  EXPECT_THAT(r.err, HasSubstr("--since"));
}

}  // namespace
}  // namespace shoal::cli
