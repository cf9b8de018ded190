// swarmctl end to end: shoal::cli::Run in-process against a TestCluster (three managers on
// Raft behind mutual TLS, fake workers that run tasks at once), over --host (the managers' API
// addresses) and --tls-dir (an operator certificate), as CI runs it.
#include "cli/swarmctl.h"

#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "integration/testing/test_cluster.h"

namespace shoal::integration {
namespace {

using manager::store::ReadTx;
using ::testing::HasSubstr;

struct Result {
  int code = -1;
  std::string out, err;
};

std::ostream& operator<<(std::ostream& o, const Result& r) {
  return o << "exit " << r.code << "\n--- stdout\n" << r.out << "--- stderr\n" << r.err;
}

std::vector<std::string> Lines(const std::string& s) {
  return absl::StrSplit(s, '\n', absl::SkipEmpty());
}

// The cells of a table line (docker's layout: at least 3 spaces between columns).
std::vector<std::string> Cells(const std::string& line) {
  std::vector<std::string> out;
  for (absl::string_view c : absl::StrSplit(line, "   ", absl::SkipWhitespace())) {
    out.emplace_back(absl::StripAsciiWhitespace(c));
  }
  return out;
}

class SwarmctlTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const char* tmp = std::getenv("TEST_TMPDIR");
    base_ = std::filesystem::path(tmp ? tmp : "/tmp") /
            ::testing::UnitTest::GetInstance()->current_test_info()->name();
    std::filesystem::remove_all(base_);
    TestCluster::Options o;
    o.base = base_;
    cluster_ = std::make_unique<TestCluster>(o);
    ASSERT_TRUE(cluster_->Start().ok());
    ASSERT_TRUE(cluster_->WaitFor([&](const ReadTx& tx) {
      int ready = 0;
      for (const api::Node* n : tx.List<api::Node>()) {
        ready += n->status().state() == api::NodeStatus::NODE_STATE_READY;
      }
      return ready == cluster_->workers();
    }));
    hosts_ = absl::StrJoin(cluster_->api_addrs(), ",");
    tls_dir_ = cluster_->operator_dir();
  }

  Result Cli(const std::vector<std::string>& args, std::istream* in = nullptr) {
    std::vector<std::string> full = {"--host", hosts_, "--tls-dir", tls_dir_};
    full.insert(full.end(), args.begin(), args.end());
    std::ostringstream out, err;
    cli::RunOptions o;
    o.poll_interval = absl::Milliseconds(50);
    o.in = in;
    Result r;
    r.code = cli::Run(full, out, err, o);
    r.out = out.str();
    r.err = err.str();
    return r;
  }

  // Fast rolling updates and restarts, so that the test does not wait on defaults.
  static std::vector<std::string> Fast() {
    return {"--restart-delay",    "0s",    "--update-parallelism",   "0",
            "--update-monitor",   "100ms", "--rollback-parallelism", "0",
            "--rollback-monitor", "100ms"};
  }

  std::vector<std::string> Create(const std::string& name, const std::string& replicas,
                                  const std::vector<std::string>& extra = {}) {
    std::vector<std::string> args = {"service", "create", "--name", name, "--replicas", replicas};
    for (const auto& f : Fast()) args.push_back(f);
    args.insert(args.end(), extra.begin(), extra.end());
    args.push_back("nginx:1");
    return args;
  }

  std::filesystem::path base_;
  std::unique_ptr<TestCluster> cluster_;
  std::string hosts_, tls_dir_;
};

TEST_F(SwarmctlTest, AServiceIsCreatedScaledUpdatedRolledBackAndRemovedWithProgress) {
  Result r = Cli(Create("web", "5", {"-p", "8080:80", "--env", "A=1"}));
  ASSERT_EQ(r.code, 0) << r;
  auto lines = Lines(r.out);
  ASSERT_GE(lines.size(), 3u) << r;
  // The service id first, as docker prints it; then progress until it converged.
  EXPECT_EQ(lines[0].size(), 25u) << r;
  const std::string id = lines[0];
  EXPECT_THAT(r.out, HasSubstr("overall progress: 5 out of 5 tasks")) << r;
  EXPECT_THAT(r.out, HasSubstr("1/5: running   [")) << r;
  EXPECT_THAT(r.out, HasSubstr("5/5: running   [")) << r;
  EXPECT_EQ(lines.back(), "verify: Service converged") << r;
  EXPECT_EQ(r.out.find("\x1b["), std::string::npos) << "no cursor movement without a tty";
  EXPECT_TRUE(r.err.empty()) << r;

  r = Cli({"service", "ls"});
  ASSERT_EQ(r.code, 0) << r;
  lines = Lines(r.out);
  ASSERT_EQ(lines.size(), 2u) << r;
  EXPECT_EQ(Cells(lines[0]),
            (std::vector<std::string>{"ID", "NAME", "MODE", "REPLICAS", "IMAGE", "PORTS"}));
  EXPECT_EQ(Cells(lines[1]), (std::vector<std::string>{id.substr(0, 12), "web", "replicated", "5/5",
                                                       "nginx:1", "*:8080->80/tcp"}))
      << r;

  r = Cli({"service", "ps", "web"});
  ASSERT_EQ(r.code, 0) << r;
  lines = Lines(r.out);
  ASSERT_EQ(lines.size(), 6u) << r;
  EXPECT_EQ(Cells(lines[0]),
            (std::vector<std::string>{"ID", "NAME", "IMAGE", "NODE", "DESIRED STATE",
                                      "CURRENT STATE", "ERROR", "PORTS"}));
  for (int slot = 1; slot <= 5; ++slot) {
    const auto cells = Cells(lines[slot]);
    ASSERT_GE(cells.size(), 6u) << lines[slot];
    EXPECT_EQ(cells[0].size(), 12u);
    EXPECT_EQ(cells[1], "web." + std::to_string(slot));
    EXPECT_EQ(cells[2], "nginx:1");
    EXPECT_THAT(cells[3], HasSubstr("worker-"));
    EXPECT_EQ(cells[4], "Running");
    EXPECT_THAT(cells[5], HasSubstr("Running "));
    EXPECT_THAT(cells[5], HasSubstr(" ago"));
  }

  r = Cli({"service", "scale", "web=7"});
  ASSERT_EQ(r.code, 0) << r;
  EXPECT_THAT(r.out, HasSubstr("web scaled to 7\n")) << r;
  EXPECT_THAT(r.out, HasSubstr("overall progress: 7 out of 7 tasks")) << r;
  EXPECT_THAT(r.out, HasSubstr("verify: Service converged")) << r;

  r = Cli({"service", "update", "--env-add", "B=2", "web"});
  ASSERT_EQ(r.code, 0) << r;
  EXPECT_THAT(r.out, HasSubstr("web\n")) << r;
  EXPECT_THAT(r.out, HasSubstr("overall progress: 7 out of 7 tasks")) << r;
  EXPECT_THAT(r.out, HasSubstr("verify: Service converged")) << r;

  r = Cli({"service", "inspect", "web"});
  ASSERT_EQ(r.code, 0) << r;
  auto json = nlohmann::json::parse(r.out);
  ASSERT_TRUE(json.is_array());
  EXPECT_EQ(json[0]["spec"]["task"]["container"]["env"], nlohmann::json::array({"A=1", "B=2"}));

  r = Cli({"service", "rollback", "web"});
  ASSERT_EQ(r.code, 0) << r;
  EXPECT_THAT(r.out, HasSubstr("rollback: manually requested rollback")) << r;
  EXPECT_THAT(r.out, HasSubstr("verify: Service converged")) << r;
  json = nlohmann::json::parse(Cli({"service", "inspect", "web"}).out);
  EXPECT_EQ(json[0]["spec"]["task"]["container"]["env"], nlohmann::json::array({"A=1"}));
  EXPECT_EQ(json[0]["spec"]["replicated"]["replicas"], "7") << "uint64 as a JSON string";

  // --format json is one JSON array of the objects.
  r = Cli({"service", "ls", "--format", "json"});
  ASSERT_EQ(r.code, 0) << r;
  json = nlohmann::json::parse(r.out);
  ASSERT_EQ(json.size(), 1u);
  EXPECT_EQ(json[0]["meta"]["id"], id);
  r = Cli({"service", "ps", "--format", "json", "web"});
  ASSERT_EQ(r.code, 0) << r;
  EXPECT_TRUE(nlohmann::json::parse(r.out).is_array());

  r = Cli({"service", "rm", "web"});
  ASSERT_EQ(r.code, 0) << r;
  EXPECT_EQ(r.out, "web\n");
  r = Cli({"service", "ls", "-q"});
  ASSERT_EQ(r.code, 0) << r;
  EXPECT_EQ(r.out, "");
}

TEST_F(SwarmctlTest, AFailingTaskShowsItsErrorAndTheWaitGivesUp) {
  Result r = Cli({"service", "create", "--name", "bad", "--replicas", "1", "--restart-condition",
                  "none", "--timeout", "3s", "broken"});
  EXPECT_EQ(r.code, 1) << r;
  EXPECT_THAT(r.out, HasSubstr("1/1: failed")) << r;
  ASSERT_EQ(Lines(r.err).size(), 1u) << r;
  EXPECT_THAT(r.err, HasSubstr("Error: service bad did not converge within 3s")) << r;
  EXPECT_THAT(r.err, HasSubstr("1/1 failed: no error reported")) << r;
}

TEST_F(SwarmctlTest, NodesAreListedInspectedAndDrained) {
  Result r = Cli({"node", "ls"});
  ASSERT_EQ(r.code, 0) << r;
  auto lines = Lines(r.out);
  ASSERT_EQ(lines.size(), 4u) << r;
  EXPECT_EQ(Cells(lines[0]), (std::vector<std::string>{"ID", "HOSTNAME", "STATUS", "AVAILABILITY",
                                                       "MANAGER STATUS", "ENGINE VERSION"}));
  const std::string node = cluster_->worker(1).id();
  EXPECT_THAT(r.out, HasSubstr(node)) << r;
  EXPECT_THAT(lines[1], HasSubstr("Ready   ")) << r;
  EXPECT_THAT(lines[1], HasSubstr("Active")) << r;

  r = Cli({"node", "update", "--availability", "drain", "--label-add", "zone=a", node});
  ASSERT_EQ(r.code, 0) << r;
  EXPECT_EQ(r.out, node + "\n");

  r = Cli({"node", "inspect", node});
  ASSERT_EQ(r.code, 0) << r;
  auto json = nlohmann::json::parse(r.out);
  ASSERT_EQ(json.size(), 1u);
  EXPECT_EQ(json[0]["spec"]["availability"], "AVAILABILITY_DRAIN");
  EXPECT_EQ(json[0]["spec"]["annotations"]["labels"]["zone"], "a");

  r = Cli({"node", "inspect", "--pretty", node});
  ASSERT_EQ(r.code, 0) << r;
  EXPECT_THAT(r.out, HasSubstr("Availability:\t\tDrain")) << r;

  r = Cli({"node", "ls", "--format", "json"});
  ASSERT_EQ(r.code, 0) << r;
  EXPECT_EQ(nlohmann::json::parse(r.out).size(), 3u);
  r = Cli({"node", "ls"});
  bool drained = false;
  for (const std::string& line : Lines(r.out)) {
    if (line.find(node) != std::string::npos) drained = line.find("Drain") != std::string::npos;
  }
  EXPECT_TRUE(drained) << r;

  // Nothing is placed on the drained node.
  r = Cli(Create("web", "4"));
  ASSERT_EQ(r.code, 0) << r;
  r = Cli({"task", "ls", "--node", node, "-q"});
  ASSERT_EQ(r.code, 0) << r;
  EXPECT_EQ(r.out, "") << r;
}

TEST_F(SwarmctlTest, SecretsAndJoinTokens) {
  std::istringstream data("s3cret");
  Result r = Cli({"secret", "create", "db-password", "-"}, &data);
  ASSERT_EQ(r.code, 0) << r;
  const std::string id = Lines(r.out).at(0);
  EXPECT_EQ(id.size(), 25u);
  r = Cli({"secret", "ls"});
  ASSERT_EQ(r.code, 0) << r;
  auto lines = Lines(r.out);
  ASSERT_EQ(lines.size(), 2u) << r;
  EXPECT_EQ(Cells(lines[0]),
            (std::vector<std::string>{"ID", "NAME", "DRIVER", "CREATED", "UPDATED"}));
  EXPECT_THAT(lines[1], HasSubstr(id));
  EXPECT_THAT(lines[1], HasSubstr("db-password"));
  EXPECT_THAT(lines[1], HasSubstr("ago"));
  r = Cli({"secret", "inspect", "db-password"});
  ASSERT_EQ(r.code, 0) << r;
  EXPECT_EQ(r.out.find("s3cret"), std::string::npos) << "secret data never printed";
  r = Cli({"secret", "rm", "db-password"});
  ASSERT_EQ(r.code, 0) << r;
  EXPECT_EQ(Cli({"secret", "ls", "-q"}).out, "");

  // The test cluster starts without tokens: asking says how to make one.
  r = Cli({"join-token", "-q", "worker"});
  if (r.code == 1) {
    EXPECT_THAT(r.err, HasSubstr("join-token --rotate worker")) << r;
    ASSERT_EQ(Cli({"join-token", "--rotate", "-q", "worker"}).code, 0);
    r = Cli({"join-token", "-q", "worker"});
  }
  ASSERT_EQ(r.code, 0) << r;
  const std::string token = r.out;
  ASSERT_EQ(token.rfind("SWMTKN-1-", 0), 0u) << r;
  ASSERT_EQ(Lines(token).size(), 1u);
  r = Cli({"join-token", "worker"});
  ASSERT_EQ(r.code, 0) << r;
  EXPECT_THAT(r.out, HasSubstr("To add a worker to this swarm, run the following command:\n\n"
                               "    swarmctl join --token " +
                               Lines(token)[0] + " "))
      << r;
  r = Cli({"join-token", "--rotate", "worker"});
  ASSERT_EQ(r.code, 0) << r;
  EXPECT_THAT(r.out, HasSubstr("Successfully rotated worker join token.")) << r;
  const std::string rotated = Cli({"join-token", "-q", "worker"}).out;
  EXPECT_EQ(rotated.rfind("SWMTKN-1-", 0), 0u);
  EXPECT_NE(rotated, token);
  EXPECT_EQ(Cli({"join-token", "--rotate", "-q", "manager"}).code, 0);
  EXPECT_EQ(Cli({"join-token", "-q", "manager"}).code, 0);
}

TEST_F(SwarmctlTest, ADeadFirstManagerIsSkipped) {
  cluster_->KillManager(1);
  hosts_ =
      absl::StrJoin({cluster_->api_addr(1), cluster_->api_addr(2), cluster_->api_addr(3)}, ",");
  Result r = Cli(Create("web", "2"));
  ASSERT_EQ(r.code, 0) << r;
  EXPECT_THAT(r.out, HasSubstr("verify: Service converged")) << r;
  r = Cli({"service", "ls", "-q"});
  ASSERT_EQ(r.code, 0) << r;
  EXPECT_EQ(Lines(r.out).size(), 1u) << r;

  // Nobody answering is one clear line naming the addresses.
  hosts_ = cluster_->api_addr(1);
  r = Cli({"service", "ls"});
  EXPECT_EQ(r.code, 1) << r;
  ASSERT_EQ(Lines(r.err).size(), 1u) << r;
  EXPECT_THAT(r.err, HasSubstr("Error: cannot reach any manager at " + cluster_->api_addr(1))) << r;
}

TEST_F(SwarmctlTest, ErrorsAreOneLineWithTheRightExitCode) {
  Result r = Cli({"service", "inspect", "nosuch"});
  EXPECT_EQ(r.code, 1) << r;
  EXPECT_EQ(r.err, "Error: service nosuch not found\n") << r;
  EXPECT_EQ(r.out, "");

  r = Cli({"service", "create", "--replicas", "five", "nginx"});
  EXPECT_EQ(r.code, 2) << r;
  EXPECT_EQ(r.err, "Error: invalid --replicas \"five\": expected a non-negative integer\n") << r;

  r = Cli({"service", "create", "--no-such-flag", "nginx"});
  EXPECT_EQ(r.code, 2) << r;
  EXPECT_EQ(Lines(r.err).size(), 1u) << r;

  // The manager's validation message, as it wrote it.
  r = Cli({"service", "create", "--constraint", "node.labels.zone=a", "-d", "nginx"});
  EXPECT_EQ(r.code, 1) << r;
  EXPECT_THAT(r.err, HasSubstr("task.placement.constraints[0]")) << r;
  EXPECT_EQ(Lines(r.err).size(), 1u) << r;

  // A worker's certificate may not call Control.
  auto worker = cluster_->pki().IssueDir("worker-x", api::CERTIFICATE_ROLE_WORKER);
  ASSERT_TRUE(worker.ok());
  tls_dir_ = *worker;
  r = Cli({"service", "create", "--name", "x", "nginx"});
  EXPECT_EQ(r.code, 1) << r;
  EXPECT_EQ(Lines(r.err).size(), 1u) << r;
  EXPECT_THAT(r.err, HasSubstr("Error: ")) << r;
  EXPECT_THAT(r.err, HasSubstr("worker")) << r;
}

}  // namespace
}  // namespace shoal::integration
