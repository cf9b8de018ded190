#include "manager/logbroker/logs_service.h"

#include <map>
#include <utility>

#include "absl/time/clock.h"
#include "common/grpc_status.h"
#include "common/grpc_stream.h"
#include "pki/grpc_authorizer.h"

namespace shoal::manager::logbroker {
namespace {

// The worker's redirect trailer, as the Dispatcher's (dispatcher_service.h).
constexpr char kLeaderAddrTrailer[] = "shoal-leader-addr";
// How often a subscription's handler looks whether its client went away.
constexpr absl::Duration kCancelCheck = absl::Milliseconds(200);

}  // namespace

void LogsService::SetBroker(std::shared_ptr<LogBroker> broker) {
  absl::MutexLock lock(&mu_);
  broker_ = std::move(broker);
}

std::shared_ptr<LogBroker> LogsService::current() {
  absl::MutexLock lock(&mu_);
  return broker_;
}

uint64_t LogsService::proxied() const {
  absl::MutexLock lock(&mu_);
  return proxied_;
}

grpc::Status LogsService::NotLeader(grpc::ServerContextBase* context) {
  const std::string leader = options_.leader_addr ? options_.leader_addr() : "";
  context->AddTrailingMetadata(kLeaderAddrTrailer, leader);
  return grpc::Status(grpc::StatusCode::UNAVAILABLE,
                      leader.empty() ? "this manager is not the leader, and no leader is known"
                                     : "this manager is not the leader: reconnect to " + leader);
}

grpc::Status LogsService::SubscribeLogs(grpc::ServerContext* context,
                                        const api::SubscribeLogsRequest* request,
                                        grpc::ServerWriter<api::SubscribeLogsMessage>* writer) {
  std::shared_ptr<LogBroker> broker = current();
  if (broker == nullptr) return Proxy(context, *request, writer);
  absl::StatusOr<std::shared_ptr<LogSubscription>> sub = broker->Subscribe(*request);
  if (!sub.ok()) return ToGrpcStatus(sub.status());
  const std::string id = (*sub)->id();
  while (true) {
    if (context->IsCancelled()) {
      broker->Cancel(id);
      return grpc::Status(grpc::StatusCode::CANCELLED, "cancelled by the client");
    }
    auto next = (*sub)->Read(absl::Now() + kCancelCheck);
    if (!next.ok()) {
      broker->Cancel(id);
      return ToGrpcStatus(next.status());
    }
    if (!next->has_value()) continue;
    if (!writer->Write((*next)->message)) {
      broker->Cancel(id);  // the client went away
      return grpc::Status::OK;
    }
    if ((*next)->last) return grpc::Status::OK;
  }
}

grpc::Status LogsService::Proxy(grpc::ServerContext* context,
                                const api::SubscribeLogsRequest& request,
                                grpc::ServerWriter<api::SubscribeLogsMessage>* writer) {
  if (context->client_metadata().count(kForwardedFor) > 0) {
    return grpc::Status(grpc::StatusCode::UNAVAILABLE,
                        "this manager no longer leads (the subscription was forwarded to it): "
                        "subscribe again");
  }
  std::shared_ptr<api::Logs::StubInterface> leader = options_.leader ? options_.leader() : nullptr;
  if (leader == nullptr) {
    return grpc::Status(grpc::StatusCode::UNAVAILABLE,
                        "no leader is known to serve the logs: try again");
  }
  // Cancellation and deadline travel with the proxied call.
  std::unique_ptr<grpc::ClientContext> out = grpc::ClientContext::FromServerContext(*context);
  auto caller = pki::AuthenticatedPeer(*context);
  out->AddMetadata(kForwardedFor, caller.ok() ? caller->subject : "local socket");
  {
    absl::MutexLock lock(&mu_);
    ++proxied_;
  }
  std::unique_ptr<grpc::ClientReaderInterface<api::SubscribeLogsMessage>> reader =
      leader->SubscribeLogs(out.get(), request);
  api::SubscribeLogsMessage m;
  while (reader->Read(&m)) {
    if (!writer->Write(m)) {
      out->TryCancel();
      break;
    }
  }
  return reader->Finish();
}

grpc::ServerWriteReactor<api::SubscriptionMessage>* LogsService::ListenSubscriptions(
    grpc::CallbackServerContext* context, const api::ListenSubscriptionsRequest*) {
  auto* reactor = new WriteStreamReactor<api::SubscriptionMessage>();
  auto peer = pki::AuthenticatedPeer(*context->auth_context());
  if (!peer.ok()) {
    reactor->box()->End(ToGrpcStatus(peer.status()));
    return reactor;
  }
  std::shared_ptr<LogBroker> broker = current();
  if (broker == nullptr) {
    reactor->box()->End(NotLeader(context));
    return reactor;
  }
  auto sink = std::make_shared<OutboxSink<api::SubscriptionMessage, LogBroker::ListenerSink>>(
      reactor->box());
  const LogBroker::ListenerSink* raw = sink.get();
  std::weak_ptr<LogBroker> weak = broker;
  reactor->SetOnCancel([weak, node = peer->subject, raw] {
    if (auto b = weak.lock()) b->StopListening(node, raw);
  });
  broker->Listen(peer->subject, std::move(sink));
  return reactor;
}

grpc::Status LogsService::PublishLogs(grpc::ServerContext* context,
                                      grpc::ServerReader<api::PublishLogsMessage>* reader,
                                      api::PublishLogsResponse*) {
  auto peer = pki::AuthenticatedPeer(*context);
  if (!peer.ok()) return ToGrpcStatus(peer.status());
  std::shared_ptr<LogBroker> broker = current();
  if (broker == nullptr) return NotLeader(context);
  // The subscriptions this stream published for, and whether it closed each.
  std::map<std::string, bool> closed;
  api::PublishLogsMessage m;
  grpc::Status result = grpc::Status::OK;
  while (reader->Read(&m)) {
    closed.emplace(m.subscription_id(), false);
    if (absl::Status s = broker->Publish(peer->subject, m); !s.ok()) {
      result = ToGrpcStatus(s);
      break;
    }
    if (m.close()) closed[m.subscription_id()] = true;
  }
  for (const auto& [id, done] : closed) {
    if (!done) broker->PublisherGone(peer->subject, id);
  }
  return result;
}

}  // namespace shoal::manager::logbroker
