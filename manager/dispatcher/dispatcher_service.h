// The Dispatcher gRPC service (proto/dispatcher.proto) over a Dispatcher, with gRPC's
// callback API: a node's two streams cost no thread while idle, so a manager holds thousands
// of sessions.
//
// The caller is the node its certificate names (CN = node id; role worker or manager,
// checked by pki::GrpcAuthorizer before any handler runs). While this manager runs no
// dispatcher (it does not lead), every call answers UNAVAILABLE with the leader's address in
// the "shoal-leader-addr" trailer, so that the worker reconnects there.
//
// Thread-safety: thread-safe; SetDispatcher from the leader components.
#pragma once

#include <functional>
#include <memory>
#include <string>

#include "absl/synchronization/mutex.h"
#include "manager/dispatcher/dispatcher.h"
#include "proto/dispatcher.grpc.pb.h"

namespace shoal::manager::dispatcher {

inline constexpr char kLeaderAddrTrailer[] = "shoal-leader-addr";

class DispatcherService final : public api::Dispatcher::CallbackService {
 public:
  // `leader_addr`: the current leader's address for the redirect trailer ("" when unknown).
  explicit DispatcherService(std::function<std::string()> leader_addr)
      : leader_addr_(std::move(leader_addr)) {}

  // The dispatcher to serve with; null while this manager does not lead.
  void SetDispatcher(std::shared_ptr<Dispatcher> d);

  grpc::ServerWriteReactor<api::SessionMessage>* Session(
      grpc::CallbackServerContext* context, const api::SessionRequest* request) override;
  grpc::ServerUnaryReactor* Heartbeat(grpc::CallbackServerContext* context,
                                      const api::HeartbeatRequest* request,
                                      api::HeartbeatResponse* response) override;
  grpc::ServerUnaryReactor* UpdateTaskStatus(grpc::CallbackServerContext* context,
                                             const api::UpdateTaskStatusRequest* request,
                                             api::UpdateTaskStatusResponse* response) override;
  grpc::ServerWriteReactor<api::AssignmentsMessage>* Assignments(
      grpc::CallbackServerContext* context, const api::AssignmentsRequest* request) override;

 private:
  std::shared_ptr<Dispatcher> current();
  grpc::Status NotLeader(grpc::CallbackServerContext* context);

  const std::function<std::string()> leader_addr_;
  absl::Mutex mu_;
  std::shared_ptr<Dispatcher> dispatcher_ ABSL_GUARDED_BY(mu_);
};

}  // namespace shoal::manager::dispatcher
