// The Control gRPC service (proto/control.proto) over ControlApi, plus Watch and
// IssueOperatorCertificate. Roles (manager, operator) are checked by pki::GrpcAuthorizer
// before any handler runs.
//
// A manager that does not lead forwards every call (but Watch, served from its own store) to
// the leader, over its own manager certificate, naming the original caller and role in the
// call's metadata (kForwardedFor, kForwardedRole), as SwarmKit's raft proxy does: decisions
// are made on the leader's state, and the caller's identity travels with them. The leader
// honours that metadata only from a manager, and only for the roles that may call the Control
// API, so going through a follower raises no one's privileges. A forwarded call is never
// forwarded again (a leader that lost its leadership meanwhile answers UNAVAILABLE).
//
// Watch streams store events matching the selectors (include_current sends what exists first,
// as CREATE events). Resuming from a version is not kept (OUT_OF_RANGE): watchers list again,
// as level-triggered clients do. Secret data and the cluster's keys never travel.
//
// Thread-safety: thread-safe.
#pragma once

#include <atomic>
#include <functional>
#include <optional>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "manager/controlapi/control_api.h"
#include "pki/root_ca.h"
#include "proto/control.grpc.pb.h"

namespace shoal::manager::controlapi {

inline constexpr char kForwardedFor[] = "shoal-forwarded-for";
inline constexpr char kForwardedRole[] = "shoal-forwarded-role";

class ControlService final : public api::Control::Service {
 public:
  struct Options {
    ControlApi* api = nullptr;
    store::Store* store = nullptr;
    // The CA that signs operator certificates, and the cluster id; null: UNAVAILABLE.
    std::function<const pki::RootCa*()> ca;
    std::string cluster_id;
    // The leader's Control API when another manager leads; null when this one does (or no
    // leader is known: served here, and writes fail with "no leader"). Optional.
    std::function<std::shared_ptr<api::Control::StubInterface>()> leader;
  };
  explicit ControlService(Options options) : options_(std::move(options)) {}

#define SHOAL_CONTROL_METHOD(Name)                                                   \
  grpc::Status Name(grpc::ServerContext*, const api::Name##Request* request,       \
                    api::Name##Response* response) override;
  SHOAL_CONTROL_METHOD(GetNode)
  SHOAL_CONTROL_METHOD(ListNodes)
  SHOAL_CONTROL_METHOD(UpdateNode)
  SHOAL_CONTROL_METHOD(RemoveNode)
  SHOAL_CONTROL_METHOD(GetTask)
  SHOAL_CONTROL_METHOD(ListTasks)
  SHOAL_CONTROL_METHOD(RemoveTask)
  SHOAL_CONTROL_METHOD(CreateService)
  SHOAL_CONTROL_METHOD(GetService)
  SHOAL_CONTROL_METHOD(UpdateService)
  SHOAL_CONTROL_METHOD(RemoveService)
  SHOAL_CONTROL_METHOD(ListServices)
  SHOAL_CONTROL_METHOD(ListServiceStatuses)
  SHOAL_CONTROL_METHOD(CreateNetwork)
  SHOAL_CONTROL_METHOD(GetNetwork)
  SHOAL_CONTROL_METHOD(ListNetworks)
  SHOAL_CONTROL_METHOD(RemoveNetwork)
  SHOAL_CONTROL_METHOD(GetCluster)
  SHOAL_CONTROL_METHOD(ListClusters)
  SHOAL_CONTROL_METHOD(UpdateCluster)
  SHOAL_CONTROL_METHOD(GetUnlockKey)
  SHOAL_CONTROL_METHOD(GetSecret)
  SHOAL_CONTROL_METHOD(UpdateSecret)
  SHOAL_CONTROL_METHOD(ListSecrets)
  SHOAL_CONTROL_METHOD(CreateSecret)
  SHOAL_CONTROL_METHOD(RemoveSecret)
  SHOAL_CONTROL_METHOD(GetConfig)
  SHOAL_CONTROL_METHOD(UpdateConfig)
  SHOAL_CONTROL_METHOD(ListConfigs)
  SHOAL_CONTROL_METHOD(CreateConfig)
  SHOAL_CONTROL_METHOD(RemoveConfig)
  SHOAL_CONTROL_METHOD(IssueOperatorCertificate)
#undef SHOAL_CONTROL_METHOD

  grpc::Status Watch(grpc::ServerContext* context, const api::WatchRequest* request,
                     grpc::ServerWriter<api::WatchMessage>* writer) override;

  // Calls served here that a follower forwarded.
  uint64_t forwarded_served() const { return forwarded_served_.load(); }

 private:
  // Whether to serve `context`'s call here: OK; or the status of the call forwarded to the
  // leader (`forward` makes it); or a refusal of forged forwarding metadata.
  std::optional<grpc::Status> Route(
      grpc::ServerContext* context,
      const std::function<grpc::Status(api::Control::StubInterface&, grpc::ClientContext*)>&
          forward);

  const Options options_;
  std::atomic<uint64_t> forwarded_served_{0};
};

}  // namespace shoal::manager::controlapi
