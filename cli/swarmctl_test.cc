// swarmctl's local commands against a fake swarmd: NodeControl (and a Control that answers as a
// worker's does) on a unix socket, reached with --socket; and what needs no server at all
// (usage errors, help, version, completion).
#include "cli/swarmctl.h"

#include <grpcpp/grpcpp.h>
#include <unistd.h>

#include <filesystem>
#include <sstream>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "proto/control.grpc.pb.h"
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

class SwarmctlTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const char* tmp = std::getenv("TEST_TMPDIR");
    socket_ = std::string(tmp ? tmp : "/tmp") + "/swarmd.sock";
    if (socket_.size() > 100) socket_ = "/tmp/swarmctl-test-" + std::to_string(getpid()) + ".sock";
    std::filesystem::remove(socket_);
    grpc::ServerBuilder b;
    b.AddListeningPort("unix:" + socket_, grpc::InsecureServerCredentials());
    b.RegisterService(&node_control_);
    b.RegisterService(&control_);
    server_ = b.BuildAndStart();
    ASSERT_NE(server_, nullptr);
  }
  void TearDown() override {
    server_->Shutdown();
    std::filesystem::remove(socket_);
  }

  struct Result {
    int code;
    std::string out, err;
  };
  Result Cli(std::vector<std::string> args) {
    args.insert(args.begin(), {"--socket", socket_});
    std::ostringstream out, err;
    const int code = shoal::cli::Run(args, out, err);
    return {code, out.str(), err.str()};
  }

  std::string socket_;
  FakeNodeControl node_control_;
  WorkerControl control_;
  std::unique_ptr<grpc::Server> server_;
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

}  // namespace
}  // namespace shoal::cli
