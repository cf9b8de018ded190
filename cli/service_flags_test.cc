#include "cli/service_flags.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace shoal::cli {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

TEST(ServiceFlagsTest, CreateMapsEveryFlagToTheSpec) {
  ServiceFlags f;
  f.name = "web";
  f.image = "nginx:1";
  f.args = {"-g", "daemon off;"};
  f.args_given = true;
  f.replicas = "3";
  f.env = {"A=1", "B=2"};
  f.workdir = "/srv";
  f.user = "www";
  f.entrypoint = "/bin/sh -c";
  f.constraint = {"node.labels.zone==a", "node.role!=manager"};
  f.placement_pref = {"spread=node.labels.zone"};
  f.label = {"team=web"};
  f.container_label = {"c=1"};
  f.limit_cpu = "0.5";
  f.limit_memory = "512M";
  f.reserve_cpu = "0.25";
  f.reserve_memory = "128M";
  f.publish = {"8080:80"};
  f.restart_condition = "on-failure";
  f.restart_delay = "10s";
  f.restart_max_attempts = "3";
  f.update.parallelism = "2";
  f.update.delay = "1s";
  f.update.failure_action = "rollback";
  f.update.order = "start-first";
  f.stop_signal = "SIGINT";
  f.stop_grace_period = "30s";
  f.secret = {"db"};
  f.config = {"conf"};
  f.network = {"backend"};
  api::ServiceSpec spec;
  ASSERT_TRUE(ApplyServiceFlags(f, true, &spec).ok());
  EXPECT_EQ(spec.annotations().name(), "web");
  EXPECT_EQ(spec.annotations().labels().at("team"), "web");
  EXPECT_EQ(spec.replicated().replicas(), 3u);
  const auto& c = spec.task().container();
  EXPECT_EQ(c.image(), "nginx:1");
  EXPECT_THAT(c.args(), ElementsAre("-g", "daemon off;"));
  EXPECT_THAT(c.command(), ElementsAre("/bin/sh", "-c"));
  EXPECT_THAT(c.env(), ElementsAre("A=1", "B=2"));
  EXPECT_EQ(c.dir(), "/srv");
  EXPECT_EQ(c.user(), "www");
  EXPECT_EQ(c.labels().at("c"), "1");
  EXPECT_EQ(c.stop_signal(), "SIGINT");
  EXPECT_EQ(c.stop_grace_period().seconds(), 30);
  ASSERT_EQ(c.secrets_size(), 1);
  EXPECT_EQ(c.secrets(0).secret_name(), "db");
  ASSERT_EQ(c.configs_size(), 1);
  EXPECT_THAT(spec.task().placement().constraints(),
              ElementsAre("node.labels.zone==a", "node.role!=manager"))
      << "passed through as typed";
  EXPECT_EQ(spec.task().placement().preferences(0).spread().spread_descriptor(),
            "node.labels.zone");
  EXPECT_EQ(spec.task().resources().limits().nano_cpus(), 500000000);
  EXPECT_EQ(spec.task().resources().limits().memory_bytes(), 512LL << 20);
  EXPECT_EQ(spec.task().resources().reservations().nano_cpus(), 250000000);
  EXPECT_EQ(spec.task().resources().reservations().memory_bytes(), 128LL << 20);
  EXPECT_EQ(spec.endpoint().ports(0).published_port(), 8080u);
  EXPECT_EQ(spec.task().restart().condition(), api::RestartPolicy::RESTART_CONDITION_ON_FAILURE);
  EXPECT_EQ(spec.task().restart().delay().seconds(), 10);
  EXPECT_EQ(spec.task().restart().max_attempts(), 3u);
  EXPECT_EQ(spec.update().parallelism(), 2u);
  EXPECT_EQ(spec.update().failure_action(), api::UpdateConfig::FAILURE_ACTION_ROLLBACK);
  EXPECT_EQ(spec.update().order(), api::UpdateConfig::ORDER_START_FIRST);
  EXPECT_EQ(spec.task().networks(0).target(), "backend");
  EXPECT_FALSE(spec.has_rollback()) << "only what was given";
}

TEST(ServiceFlagsTest, ModesAndReplicas) {
  ServiceFlags f;
  f.mode = "global";
  api::ServiceSpec spec;
  ASSERT_TRUE(ApplyServiceFlags(f, true, &spec).ok());
  EXPECT_TRUE(spec.has_global());

  f.replicas = "3";
  spec.Clear();
  EXPECT_THAT(ApplyServiceFlags(f, true, &spec).message(),
              HasSubstr("only replicated services and replicated jobs"));

  f.mode = "replicated-job";
  f.max_concurrent = "2";
  spec.Clear();
  ASSERT_TRUE(ApplyServiceFlags(f, true, &spec).ok());
  EXPECT_EQ(spec.replicated_job().total_completions(), 3u);
  EXPECT_EQ(spec.replicated_job().max_concurrent(), 2u);

  f = ServiceFlags();
  spec.Clear();
  ASSERT_TRUE(ApplyServiceFlags(f, true, &spec).ok());
  EXPECT_EQ(spec.replicated().replicas(), 1u) << "replicated with 1 replica by default";
}

TEST(ServiceFlagsTest, UpdateAddsReplacesAndRemoves) {
  api::ServiceSpec spec;
  spec.mutable_replicated()->set_replicas(2);
  auto* c = spec.mutable_task()->mutable_container();
  c->set_image("nginx:1");
  c->add_env("A=1");
  c->add_env("B=2");
  (*spec.mutable_annotations()->mutable_labels())["x"] = "1";
  spec.mutable_task()->mutable_placement()->add_constraints("node.role==worker");
  auto* port = spec.mutable_endpoint()->add_ports();
  port->set_target_port(80);
  port->set_published_port(8080);

  ServiceFlags f;
  f.env = {"A=3", "C=4"};
  f.env_rm = {"B"};
  f.label_rm = {"x"};
  f.constraint = {"node.role==worker", "node.labels.zone==b"};
  f.publish_rm = {"80"};
  f.publish = {"9090:90"};
  f.image = "nginx:2";
  f.force = true;
  ASSERT_TRUE(ApplyServiceFlags(f, false, &spec).ok());
  EXPECT_THAT(spec.task().container().env(), ElementsAre("A=3", "C=4"));
  EXPECT_TRUE(spec.annotations().labels().empty());
  EXPECT_THAT(spec.task().placement().constraints(),
              ElementsAre("node.role==worker", "node.labels.zone==b"));
  ASSERT_EQ(spec.endpoint().ports_size(), 1);
  EXPECT_EQ(spec.endpoint().ports(0).target_port(), 90u);
  EXPECT_EQ(spec.task().container().image(), "nginx:2");
  EXPECT_EQ(spec.task().force_update(), 1u);
  EXPECT_EQ(spec.replicated().replicas(), 2u) << "untouched";
}

TEST(ServiceFlagsTest, BadValuesNameTheFlag) {
  const std::pair<std::function<void(ServiceFlags&)>, const char*> cases[] = {
      {[](ServiceFlags& f) { f.replicas = "-1"; }, "invalid --replicas \"-1\""},
      {[](ServiceFlags& f) { f.limit_memory = "lots"; }, "invalid --limit-memory \"lots\""},
      {[](ServiceFlags& f) { f.reserve_cpu = "half"; }, "invalid --reserve-cpu \"half\""},
      {[](ServiceFlags& f) { f.update.delay = "soon"; }, "invalid --update-delay \"soon\""},
      {[](ServiceFlags& f) { f.rollback.failure_action = "rollback"; },
       "invalid --rollback-failure-action \"rollback\""},
      {[](ServiceFlags& f) { f.restart_condition = "always"; },
       "invalid --restart-condition \"always\""},
      {[](ServiceFlags& f) { f.publish = {"x:80"}; }, "invalid --publish \"x:80\""},
      {[](ServiceFlags& f) { f.env = {"=x"}; }, "invalid --env \"=x\""},
      {[](ServiceFlags& f) { f.mode = "daemon"; }, "invalid --mode \"daemon\""},
      {[](ServiceFlags& f) { f.stop_grace_period = "10"; }, "invalid --stop-grace-period \"10\""},
  };
  for (const auto& [edit, message] : cases) {
    ServiceFlags f;
    edit(f);
    api::ServiceSpec spec;
    const absl::Status s = ApplyServiceFlags(f, true, &spec);
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << message;
    EXPECT_THAT(s.message(), HasSubstr(message));
  }
}

}  // namespace
}  // namespace shoal::cli
