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
#include "pki/certificate.h"
#include "pki/root_ca.h"
#include "proto/control.grpc.pb.h"

namespace shoal::manager::controlapi {

inline constexpr char kForwardedFor[] = "shoal-forwarded-for";
inline constexpr char kForwardedRole[] = "shoal-forwarded-role";

// Every unary Control method, for X-macros (the socket proxy of node/ uses it too).
#define SHOAL_CONTROL_METHODS(X) \
  X(GetNode) \
  X(ListNodes) \
  X(UpdateNode) \
  X(RemoveNode) \
  X(GetTask) \
  X(ListTasks) \
  X(RemoveTask) \
  X(CreateService) \
  X(GetService) \
  X(UpdateService) \
  X(RemoveService) \
  X(ListServices) \
  X(ListServiceStatuses) \
  X(CreateNetwork) \
  X(GetNetwork) \
  X(ListNetworks) \
  X(RemoveNetwork) \
  X(GetCluster) \
  X(ListClusters) \
  X(UpdateCluster) \
  X(GetUnlockKey) \
  X(GetSecret) \
  X(UpdateSecret) \
  X(ListSecrets) \
  X(CreateSecret) \
  X(RemoveSecret) \
  X(GetConfig) \
  X(UpdateConfig) \
  X(ListConfigs) \
  X(CreateConfig) \
  X(RemoveConfig) \
  X(IssueOperatorCertificate)

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
    // Set for the instance a node daemon serves on its local control socket (no TLS there:
    // the socket's permissions admit root only): every caller is taken to be this identity,
    // the node's own manager certificate's, as root on a manager holds its keys anyway.
    std::optional<pki::CertificateInfo> local_caller;
  };
  explicit ControlService(Options options) : options_(std::move(options)) {}

#define SHOAL_CONTROL_METHOD(Name)                                                   \
  grpc::Status Name(grpc::ServerContext*, const api::Name##Request* request,       \
                    api::Name##Response* response) override;
  SHOAL_CONTROL_METHODS(SHOAL_CONTROL_METHOD)
#undef SHOAL_CONTROL_METHOD

  grpc::Status Watch(grpc::ServerContext* context, const api::WatchRequest* request,
                     grpc::ServerWriter<api::WatchMessage>* writer) override;

  // Calls served here that a follower forwarded.
  uint64_t forwarded_served() const { return forwarded_served_.load(); }

 private:
  // Whether to serve `context`'s call here: OK; or the status of the call forwarded to the
  // leader (`forward` makes it); or a refusal of forged forwarding metadata.
  // Who calls: the verified peer, or the local caller.
  absl::StatusOr<pki::CertificateInfo> Caller(const grpc::ServerContext& context) const;
  std::optional<grpc::Status> Route(
      grpc::ServerContext* context,
      const std::function<grpc::Status(api::Control::StubInterface&, grpc::ClientContext*)>&
          forward);

  const Options options_;
  std::atomic<uint64_t> forwarded_served_{0};
};

}  // namespace shoal::manager::controlapi
