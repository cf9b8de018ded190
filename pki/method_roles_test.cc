#include "pki/method_roles.h"

#include <google/protobuf/descriptor.h>

#include <string>

#include "gtest/gtest.h"
#include "proto/ca.grpc.pb.h"
#include "proto/control.grpc.pb.h"
#include "proto/dispatcher.grpc.pb.h"
#include "proto/logs.grpc.pb.h"
#include "proto/node_control.grpc.pb.h"
#include "proto/raft_service.grpc.pb.h"

namespace shoal::pki {
namespace {

const google::protobuf::ServiceDescriptor* Service(const std::string& name) {
  return google::protobuf::DescriptorPool::generated_pool()->FindServiceByName(name);
}

std::string Path(const google::protobuf::MethodDescriptor* m) {
  return "/" + m->service()->full_name() + "/" + m->name();
}

constexpr uint32_t kW = 1u << api::CERTIFICATE_ROLE_WORKER;
constexpr uint32_t kM = 1u << api::CERTIFICATE_ROLE_MANAGER;
constexpr uint32_t kO = 1u << api::CERTIFICATE_ROLE_OPERATOR;

// Every method of every TCP service, with the roles the issue assigns it.
uint32_t ExpectedRoles(const std::string& service, const std::string& method) {
  if (service == "shoal.api.Control") return kM | kO;
  if (service == "shoal.api.Dispatcher") return kW | kM;
  if (service == "shoal.raftpb.Raft") return kM;
  if (service == "shoal.api.NodeCA") return kW | kM | kO;
  if (service == "shoal.api.Logs") return method == "SubscribeLogs" ? kM | kO : kW | kM;
  return 0;
}

TEST(MethodRolesTest, EveryMethodOfEveryCoveredServiceHasTheRolesTheDesignAssigns) {
  int methods = 0;
  for (const std::string& name : CoveredServices()) {
    const auto* service = Service(name);
    ASSERT_NE(service, nullptr) << name;
    for (int i = 0; i < service->method_count(); ++i) {
      const auto* m = service->method(i);
      const MethodPolicy* policy = PolicyForMethod(Path(m));
      ASSERT_NE(policy, nullptr) << Path(m);
      EXPECT_EQ(policy->roles, ExpectedRoles(name, m->name())) << Path(m);
      EXPECT_EQ(policy->open, name == "shoal.api.NodeCA") << Path(m);
      ++methods;
    }
  }
  EXPECT_GT(methods, 40);
}

TEST(MethodRolesTest, TheLocalNodeControlServiceIsNotReachableOverTcp) {
  const auto* service = Service("shoal.api.NodeControl");
  ASSERT_NE(service, nullptr);
  for (int i = 0; i < service->method_count(); ++i) {
    EXPECT_EQ(PolicyForMethod(Path(service->method(i))), nullptr);
  }
}

TEST(MethodRolesTest, UnknownAndMalformedMethodsHaveNoPolicy) {
  EXPECT_EQ(PolicyForMethod(""), nullptr);
  EXPECT_EQ(PolicyForMethod("/shoal.api.Control/"), nullptr);
  EXPECT_EQ(PolicyForMethod("/shoal.api.Control"), nullptr);
  EXPECT_EQ(PolicyForMethod("/shoal.api.Control/A/B"), nullptr);
  EXPECT_EQ(PolicyForMethod("/shoal.api.ControlX/ListNodes"), nullptr);
  EXPECT_EQ(PolicyForMethod("/shoal.api.NodeCA/Other"), nullptr);
  EXPECT_EQ(PolicyForMethod("/grpc.health.v1.Health/Check"), nullptr);
}

TEST(MethodRolesTest, RolesStringListsAllowedRoles) {
  EXPECT_EQ(PolicyForMethod("/shoal.api.Control/ListNodes")->RolesString(), "manager, operator");
  EXPECT_EQ(PolicyForMethod("/shoal.raftpb.Raft/Join")->RolesString(), "manager");
  EXPECT_EQ(MethodPolicy{}.RolesString(), "none");
}

}  // namespace
}  // namespace shoal::pki
