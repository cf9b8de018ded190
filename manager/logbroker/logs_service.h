// The Logs gRPC service (proto/logs.proto) over a LogBroker. Roles are checked by
// pki::GrpcAuthorizer before any handler runs (SubscribeLogs: manager, operator;
// ListenSubscriptions and PublishLogs: worker, manager); the broker checks that a worker
// publishes only lines of tasks on its own node.
//
//   - ListenSubscriptions uses gRPC's callback API: every worker holds one for the life of its
//     session, idle nearly always, and costs no thread. SubscribeLogs and PublishLogs are
//     synchronous: they are busy while they last, and a blocked Write is how a slow subscriber
//     holds up the workers publishing for it.
//   - While this manager runs no broker (it does not lead), SubscribeLogs is proxied to the
//     leader over this manager's own certificate (a manager may subscribe, and an operator may
//     do nothing more through it), as the Control API forwards its calls; the client's
//     cancellation and deadline travel with it, and the caller is named in kForwardedFor. A
//     proxied call is never proxied again (UNAVAILABLE when the leader moved meanwhile: the
//     client subscribes again). The worker methods answer UNAVAILABLE with the leader's
//     address in the "shoal-leader-addr" trailer, as the Dispatcher does.
//   - The same instance serves swarmd's local socket (node/daemon.cc), which has no peer
//     certificate: SubscribeLogs needs no caller identity.
//
// Thread-safety: thread-safe; SetBroker from the leader components.
#pragma once

#include <functional>
#include <memory>
#include <string>

#include "absl/synchronization/mutex.h"
#include "manager/logbroker/log_broker.h"
#include "proto/logs.grpc.pb.h"

namespace shoal::manager::logbroker {

// As the Control API's forwarded calls (manager/controlapi/control_service.h).
inline constexpr char kForwardedFor[] = "shoal-forwarded-for";

class LogsService final
    : public api::Logs::WithCallbackMethod_ListenSubscriptions<api::Logs::Service> {
 public:
  struct Options {
    // The current leader's API address ("" when unknown), for the workers' redirect trailer.
    std::function<std::string()> leader_addr;
    // The leader's Logs API when another manager leads; null when this one does or no leader
    // is known. Optional.
    std::function<std::shared_ptr<api::Logs::StubInterface>()> leader;
  };
  explicit LogsService(Options options) : options_(std::move(options)) {}

  // The broker to serve with; null while this manager does not lead.
  void SetBroker(std::shared_ptr<LogBroker> broker);

  grpc::Status SubscribeLogs(grpc::ServerContext* context, const api::SubscribeLogsRequest* request,
                             grpc::ServerWriter<api::SubscribeLogsMessage>* writer) override;
  grpc::ServerWriteReactor<api::SubscriptionMessage>* ListenSubscriptions(
      grpc::CallbackServerContext* context,
      const api::ListenSubscriptionsRequest* request) override;
  grpc::Status PublishLogs(grpc::ServerContext* context,
                           grpc::ServerReader<api::PublishLogsMessage>* reader,
                           api::PublishLogsResponse* response) override;

  // Subscriptions proxied to the leader so far (for tests).
  uint64_t proxied() const;

 private:
  std::shared_ptr<LogBroker> current();
  grpc::Status NotLeader(grpc::ServerContextBase* context);
  grpc::Status Proxy(grpc::ServerContext* context, const api::SubscribeLogsRequest& request,
                     grpc::ServerWriter<api::SubscribeLogsMessage>* writer);

  const Options options_;
  mutable absl::Mutex mu_;
  std::shared_ptr<LogBroker> broker_ ABSL_GUARDED_BY(mu_);
  uint64_t proxied_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace shoal::manager::logbroker
