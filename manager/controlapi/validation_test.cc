#include "manager/controlapi/validation.h"

#include <string>

#include "gtest/gtest.h"

namespace shoal::manager::controlapi {
namespace {

api::ServiceSpec Good() {
  api::ServiceSpec s;
  s.mutable_annotations()->set_name("web");
  s.mutable_task()->mutable_container()->set_image("nginx:1.25");
  s.mutable_replicated()->set_replicas(3);
  return s;
}

// The error for `spec`, which must be INVALID_ARGUMENT.
std::string Error(const api::ServiceSpec& spec) {
  const absl::Status s = ValidateServiceSpec(spec);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << s;
  return std::string(s.message());
}

TEST(ValidationTest, AGoodSpecPasses) { EXPECT_TRUE(ValidateServiceSpec(Good()).ok()); }

TEST(ValidationTest, NamesFollowDockersRules) {
  EXPECT_TRUE(ValidateName("name", "web_1.prod-a").ok());
  EXPECT_EQ(ValidateName("name", "").message(), "name: a name is required");
  EXPECT_EQ(ValidateName("name", "-web").message(),
            "name: \"-web\" must start with a letter or digit");
  EXPECT_EQ(ValidateName("name", "web/1").message(),
            "name: \"web/1\" may hold only letters, digits, '_', '.' and '-'");
  EXPECT_NE(ValidateName("name", std::string(64, 'a')).message().find("longer than 63"),
            std::string::npos);
}

TEST(ValidationTest, EachBadFieldIsNamed) {
  api::ServiceSpec s = Good();
  s.mutable_task()->mutable_container()->set_image(" ");
  EXPECT_EQ(Error(s), "task.container.image: an image is required");

  s = Good();
  s.mutable_task()->mutable_restart()->mutable_delay()->set_seconds(-1);
  EXPECT_EQ(Error(s), "task.restart.delay: must not be negative");

  s = Good();
  s.mutable_task()->mutable_resources()->mutable_reservations()->set_memory_bytes(-5);
  EXPECT_EQ(Error(s), "task.resources.reservations.memory_bytes: must not be negative");

  s = Good();
  s.mutable_task()->mutable_placement()->add_constraints("node.role=manager");
  EXPECT_NE(Error(s).find("task.placement.constraints[0]"), std::string::npos);

  s = Good();
  s.mutable_task()->mutable_placement()->add_preferences()->mutable_spread()->set_spread_descriptor(
      "zone");
  EXPECT_NE(Error(s).find("task.placement.preferences[0]: spread=zone"), std::string::npos);

  s = Good();
  s.clear_replicated();
  s.mutable_global();
  s.mutable_task()->mutable_placement()->set_max_replicas(2);
  EXPECT_EQ(Error(s), "task.placement.max_replicas: only replicated services have a per-node limit");

  s = Good();
  s.mutable_update()->set_max_failure_ratio(1.5);
  EXPECT_EQ(Error(s), "update.max_failure_ratio: must be between 0 and 1");

  s = Good();
  s.mutable_rollback()->set_failure_action(api::UpdateConfig::FAILURE_ACTION_ROLLBACK);
  EXPECT_EQ(Error(s), "rollback.failure_action: a rollback cannot itself roll back (pause or continue)");
}

TEST(ValidationTest, PortsAndFileTargets) {
  api::ServiceSpec s = Good();
  auto* p = s.mutable_endpoint()->add_ports();
  p->set_target_port(80);
  p->set_published_port(8080);
  p = s.mutable_endpoint()->add_ports();
  p->set_target_port(81);
  p->set_published_port(8080);
  EXPECT_EQ(Error(s), "endpoint.ports[1]: published port 8080 is used twice");
  s.mutable_endpoint()->mutable_ports(1)->set_protocol(api::PortConfig::PROTOCOL_UDP);
  EXPECT_TRUE(ValidateServiceSpec(s).ok()) << "8080/udp is another port";
  s.mutable_endpoint()->mutable_ports(1)->set_target_port(0);
  EXPECT_EQ(Error(s), "endpoint.ports[1]: target port 0 is not in 1-65535");

  s = Good();
  s.mutable_endpoint()->set_mode(api::EndpointSpec::RESOLUTION_MODE_DNSRR);
  s.mutable_endpoint()->add_ports()->set_target_port(80);
  EXPECT_NE(Error(s).find("dnsrr services publish ports in host mode only"), std::string::npos);

  s = Good();
  for (int i = 0; i < 2; ++i) {
    auto* r = s.mutable_task()->mutable_container()->add_secrets();
    r->set_secret_name(i == 0 ? "a" : "b");
    r->mutable_target()->set_name("key");
  }
  EXPECT_EQ(Error(s), "task.container.secrets[1]: target \"key\" is used twice");
}

TEST(ValidationTest, SecretsConfigsAndNetworks) {
  api::SecretSpec secret;
  secret.mutable_annotations()->set_name("db_password");
  EXPECT_NE(ValidateSecretSpec(secret).message().find("secret data must be 1 byte to 512000"),
            std::string::npos);
  secret.set_data(std::string(512000, 'x'));
  EXPECT_TRUE(ValidateSecretSpec(secret).ok());
  secret.set_data(std::string(512001, 'x'));
  EXPECT_FALSE(ValidateSecretSpec(secret).ok());

  api::NetworkSpec net;
  net.mutable_annotations()->set_name("backend");
  EXPECT_TRUE(ValidateNetworkSpec(net).ok());
  net.mutable_driver_config()->set_name("bridge");
  EXPECT_EQ(ValidateNetworkSpec(net).message(),
            "driver_config.name: driver \"bridge\" is not supported (overlay)");
  net.mutable_driver_config()->set_name("overlay");
  net.mutable_ipam()->add_configs()->set_subnet("10.0.9.0");
  EXPECT_EQ(ValidateNetworkSpec(net).message(),
            "ipam.configs[0].subnet: \"10.0.9.0\" is not a CIDR network (10.0.9.0/24)");
}

}  // namespace
}  // namespace shoal::manager::controlapi
