// The Control gRPC service (proto/control.proto) over ControlApi, plus Watch and
// IssueOperatorCertificate. Roles (manager, operator) are checked by pki::GrpcAuthorizer
// before any handler runs.
//
// Watch streams store events matching the selectors (include_current sends what exists first,
// as CREATE events). Resuming from a version is not kept (OUT_OF_RANGE): watchers list again,
// as level-triggered clients do. Secret data and the cluster's keys never travel.
//
// Thread-safety: thread-safe.
#pragma once

#include <functional>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "manager/controlapi/control_api.h"
#include "pki/root_ca.h"
#include "proto/control.grpc.pb.h"

namespace shoal::manager::controlapi {

class ControlService final : public api::Control::Service {
 public:
  struct Options {
    ControlApi* api = nullptr;
    store::Store* store = nullptr;
    // The CA that signs operator certificates, and the cluster id; null: UNAVAILABLE.
    std::function<const pki::RootCa*()> ca;
    std::string cluster_id;
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

 private:
  const Options options_;
};

}  // namespace shoal::manager::controlapi
