#include "manager/dispatcher/dispatcher_service.h"

#include <utility>

#include "common/grpc_status.h"
#include "common/grpc_stream.h"
#include "pki/grpc_authorizer.h"

namespace shoal::manager::dispatcher {
namespace {

api::NodeRole NodeRoleOf(api::CertificateRole role) {
  return role == api::CERTIFICATE_ROLE_MANAGER ? api::NODE_ROLE_MANAGER : api::NODE_ROLE_WORKER;
}

// The peer's address without the "ipv4:" prefix and port: the node's address for overlay and
// constraints (node.ip).
std::string PeerIp(const grpc::CallbackServerContext& context) {
  std::string peer = context.peer();
  for (const char* prefix : {"ipv4:", "ipv6:"}) {
    if (peer.rfind(prefix, 0) == 0) peer = peer.substr(std::string(prefix).size());
  }
  const size_t colon = peer.rfind(':');
  if (colon != std::string::npos) peer = peer.substr(0, colon);
  if (peer.size() >= 2 && peer.front() == '[' && peer.back() == ']') {
    peer = peer.substr(1, peer.size() - 2);
  }
  return peer;
}

}  // namespace

void DispatcherService::SetDispatcher(std::shared_ptr<Dispatcher> d) {
  absl::MutexLock lock(&mu_);
  dispatcher_ = std::move(d);
}

std::shared_ptr<Dispatcher> DispatcherService::current() {
  absl::MutexLock lock(&mu_);
  return dispatcher_;
}

grpc::Status DispatcherService::NotLeader(grpc::CallbackServerContext* context) {
  const std::string leader = leader_addr_ ? leader_addr_() : "";
  context->AddTrailingMetadata(kLeaderAddrTrailer, leader);
  return grpc::Status(grpc::StatusCode::UNAVAILABLE,
                      leader.empty() ? "this manager is not the leader, and no leader is known"
                                     : "this manager is not the leader: reconnect to " + leader);
}

grpc::ServerWriteReactor<api::SessionMessage>* DispatcherService::Session(
    grpc::CallbackServerContext* context, const api::SessionRequest* request) {
  auto* reactor = new WriteStreamReactor<api::SessionMessage>();
  auto peer = pki::AuthenticatedPeer(*context->auth_context());
  std::shared_ptr<Dispatcher> d = current();
  if (!peer.ok()) {
    reactor->box()->End(ToGrpcStatus(peer.status()));
    return reactor;
  }
  if (d == nullptr) {
    reactor->box()->End(NotLeader(context));
    return reactor;
  }
  auto sink =
      std::make_shared<OutboxSink<api::SessionMessage, Dispatcher::SessionSink>>(reactor->box());
  auto session = d->OpenSession(peer->subject, NodeRoleOf(peer->role), request->description(),
                                PeerIp(*context), sink);
  if (!session.ok()) {
    reactor->box()->End(ToGrpcStatus(session.status()));
    return reactor;
  }
  std::weak_ptr<Dispatcher> weak = d;
  reactor->SetOnCancel([weak, node = peer->subject, id = *session] {
    if (auto d = weak.lock()) d->CloseSession(node, id);
  });
  return reactor;
}

grpc::ServerUnaryReactor* DispatcherService::Heartbeat(grpc::CallbackServerContext* context,
                                                       const api::HeartbeatRequest* request,
                                                       api::HeartbeatResponse* response) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  auto peer = pki::AuthenticatedPeer(*context->auth_context());
  std::shared_ptr<Dispatcher> d = current();
  if (!peer.ok()) {
    reactor->Finish(ToGrpcStatus(peer.status()));
  } else if (d == nullptr) {
    reactor->Finish(NotLeader(context));
  } else {
    auto period = d->Heartbeat(peer->subject, request->session_id());
    if (period.ok()) {
      const int64_t ns = absl::ToInt64Nanoseconds(*period);
      response->mutable_period()->set_seconds(ns / 1000000000);
      response->mutable_period()->set_nanos(static_cast<int32_t>(ns % 1000000000));
    }
    reactor->Finish(ToGrpcStatus(period.status()));
  }
  return reactor;
}

grpc::ServerUnaryReactor* DispatcherService::UpdateTaskStatus(
    grpc::CallbackServerContext* context, const api::UpdateTaskStatusRequest* request,
    api::UpdateTaskStatusResponse*) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  auto peer = pki::AuthenticatedPeer(*context->auth_context());
  std::shared_ptr<Dispatcher> d = current();
  if (!peer.ok()) {
    reactor->Finish(ToGrpcStatus(peer.status()));
  } else if (d == nullptr) {
    reactor->Finish(NotLeader(context));
  } else {
    reactor->Finish(
        ToGrpcStatus(d->UpdateTaskStatus(peer->subject, request->session_id(), *request)));
  }
  return reactor;
}

grpc::ServerWriteReactor<api::AssignmentsMessage>* DispatcherService::Assignments(
    grpc::CallbackServerContext* context, const api::AssignmentsRequest* request) {
  auto* reactor = new WriteStreamReactor<api::AssignmentsMessage>();
  auto peer = pki::AuthenticatedPeer(*context->auth_context());
  std::shared_ptr<Dispatcher> d = current();
  if (!peer.ok()) {
    reactor->box()->End(ToGrpcStatus(peer.status()));
    return reactor;
  }
  if (d == nullptr) {
    reactor->box()->End(NotLeader(context));
    return reactor;
  }
  auto sink = std::make_shared<OutboxSink<api::AssignmentsMessage, Dispatcher::AssignmentSink>>(
      reactor->box());
  const Dispatcher::AssignmentSink* raw = sink.get();
  std::weak_ptr<Dispatcher> weak = d;
  reactor->SetOnCancel([weak, node = peer->subject, raw] {
    if (auto d = weak.lock()) d->CloseAssignments(node, raw);
  });
  absl::Status s = d->OpenAssignments(peer->subject, request->session_id(), std::move(sink));
  if (!s.ok()) reactor->box()->End(ToGrpcStatus(s));
  return reactor;
}

}  // namespace shoal::manager::dispatcher
