#include "manager/controlapi/control_service.h"

#include "absl/strings/str_cat.h"
#include "common/grpc_status.h"
#include "pki/certificate.h"
#include "pki/grpc_authorizer.h"
#include "pki/operator_certificate.h"

namespace shoal::manager::controlapi {
namespace {

template <typename Resp>
grpc::Status Answer(absl::StatusOr<Resp> result, Resp* response) {
  if (!result.ok()) return ToGrpcStatus(result.status());
  *response = *std::move(result);
  return grpc::Status::OK;
}

std::optional<store::Kind> KindOf(api::WatchSelector::Kind k) {
  switch (k) {
    case api::WatchSelector::KIND_NODE:
      return store::Kind::kNode;
    case api::WatchSelector::KIND_SERVICE:
      return store::Kind::kService;
    case api::WatchSelector::KIND_TASK:
      return store::Kind::kTask;
    case api::WatchSelector::KIND_SECRET:
      return store::Kind::kSecret;
    case api::WatchSelector::KIND_CONFIG:
      return store::Kind::kConfig;
    case api::WatchSelector::KIND_NETWORK:
      return store::Kind::kNetwork;
    case api::WatchSelector::KIND_CLUSTER:
      return store::Kind::kCluster;
    default:
      return std::nullopt;
  }
}

const std::string& IdOf(store::Kind kind, const google::protobuf::Message& o) {
  switch (kind) {
    case store::Kind::kNode:
      return static_cast<const api::Node&>(o).meta().id();
    case store::Kind::kService:
      return static_cast<const api::Service&>(o).meta().id();
    case store::Kind::kTask:
      return static_cast<const api::Task&>(o).meta().id();
    case store::Kind::kSecret:
      return static_cast<const api::Secret&>(o).meta().id();
    case store::Kind::kConfig:
      return static_cast<const api::Config&>(o).meta().id();
    case store::Kind::kNetwork:
      return static_cast<const api::Network&>(o).meta().id();
    case store::Kind::kCluster:
      return static_cast<const api::Cluster&>(o).meta().id();
  }
  return api::Meta::default_instance().id();
}

bool Selected(const api::WatchSelector& sel, store::Kind kind, const google::protobuf::Message& o) {
  if (KindOf(sel.kind()) != kind) return false;
  if (!sel.id().empty() && IdOf(kind, o) != sel.id()) return false;
  if (kind == store::Kind::kTask) {
    const auto& t = static_cast<const api::Task&>(o);
    if (!sel.service_id().empty() && t.service_id() != sel.service_id()) return false;
    if (!sel.node_id().empty() && t.node_id() != sel.node_id()) return false;
  }
  return true;
}

// The object as a watcher may see it: no secret data, no cluster keys.
api::StoreObject Packed(store::Kind kind, const google::protobuf::Message& o) {
  api::StoreObject out;
  switch (kind) {
    case store::Kind::kNode:
      *out.mutable_node() = static_cast<const api::Node&>(o);
      break;
    case store::Kind::kService:
      *out.mutable_service() = static_cast<const api::Service&>(o);
      break;
    case store::Kind::kTask:
      *out.mutable_task() = static_cast<const api::Task&>(o);
      break;
    case store::Kind::kSecret:
      *out.mutable_secret() = static_cast<const api::Secret&>(o);
      out.mutable_secret()->mutable_spec()->clear_data();
      break;
    case store::Kind::kConfig:
      *out.mutable_config() = static_cast<const api::Config&>(o);
      break;
    case store::Kind::kNetwork:
      *out.mutable_network() = static_cast<const api::Network&>(o);
      break;
    case store::Kind::kCluster:
      *out.mutable_cluster() = static_cast<const api::Cluster&>(o);
      out.mutable_cluster()->mutable_root_ca()->clear_ca_key();
      out.mutable_cluster()->clear_unlock_keys();
      out.mutable_cluster()->clear_network_bootstrap_keys();
      break;
  }
  return out;
}

}  // namespace

absl::StatusOr<pki::CertificateInfo> ControlService::Caller(
    const grpc::ServerContext& context) const {
  if (options_.local_caller.has_value()) return *options_.local_caller;
  return pki::AuthenticatedPeer(context);
}

std::optional<grpc::Status> ControlService::Route(
    grpc::ServerContext* context,
    const std::function<grpc::Status(api::Control::StubInterface&, grpc::ClientContext*)>&
        forward) {
  const auto& md = context->client_metadata();
  auto forwarded_for = md.find(kForwardedFor);
  auto forwarded_role = md.find(kForwardedRole);
  if (forwarded_for != md.end() || forwarded_role != md.end()) {
    // Only a manager forwards, and only for a role the Control API serves.
    auto peer = Caller(*context);
    if (!peer.ok() || peer->role != api::CERTIFICATE_ROLE_MANAGER) {
      return grpc::Status(grpc::StatusCode::PERMISSION_DENIED,
                          "only a manager may forward a call on someone's behalf");
    }
    const std::string role = forwarded_role == md.end()
                                 ? ""
                                 : std::string(forwarded_role->second.data(),
                                               forwarded_role->second.size());
    auto parsed = pki::RoleFromName(role);
    if (!parsed.ok() || (*parsed != api::CERTIFICATE_ROLE_MANAGER &&
                         *parsed != api::CERTIFICATE_ROLE_OPERATOR)) {
      return grpc::Status(grpc::StatusCode::PERMISSION_DENIED,
                          "the forwarded caller's role may not call the Control API");
    }
    ++forwarded_served_;
    return std::nullopt;  // served here, never forwarded again
  }
  std::shared_ptr<api::Control::StubInterface> leader = options_.leader ? options_.leader() : nullptr;
  if (leader == nullptr) return std::nullopt;
  auto peer = Caller(*context);
  if (!peer.ok()) return ToGrpcStatus(peer.status());
  grpc::ClientContext out;
  out.set_deadline(context->deadline());
  out.AddMetadata(kForwardedFor, peer->subject);
  out.AddMetadata(kForwardedRole, std::string(pki::RoleName(peer->role)));
  return forward(*leader, &out);
}

#define SHOAL_CONTROL_FORWARD(Name)                                                            \
  grpc::Status ControlService::Name(grpc::ServerContext* context,                             \
                                    const api::Name##Request* request,                        \
                                    api::Name##Response* response) {                          \
    auto routed = Route(context, [&](api::Control::StubInterface& leader,                     \
                                     grpc::ClientContext* out) {                              \
      return leader.Name(out, *request, response);                                            \
    });                                                                                       \
    if (routed) return *routed;                                                               \
    return Answer(options_.api->Name(*request), response);                                    \
  }
SHOAL_CONTROL_FORWARD(GetNode)
SHOAL_CONTROL_FORWARD(ListNodes)
SHOAL_CONTROL_FORWARD(UpdateNode)
SHOAL_CONTROL_FORWARD(RemoveNode)
SHOAL_CONTROL_FORWARD(GetTask)
SHOAL_CONTROL_FORWARD(ListTasks)
SHOAL_CONTROL_FORWARD(RemoveTask)
SHOAL_CONTROL_FORWARD(CreateService)
SHOAL_CONTROL_FORWARD(GetService)
SHOAL_CONTROL_FORWARD(UpdateService)
SHOAL_CONTROL_FORWARD(RemoveService)
SHOAL_CONTROL_FORWARD(ListServices)
SHOAL_CONTROL_FORWARD(ListServiceStatuses)
SHOAL_CONTROL_FORWARD(CreateNetwork)
SHOAL_CONTROL_FORWARD(GetNetwork)
SHOAL_CONTROL_FORWARD(ListNetworks)
SHOAL_CONTROL_FORWARD(RemoveNetwork)
SHOAL_CONTROL_FORWARD(GetCluster)
SHOAL_CONTROL_FORWARD(ListClusters)
SHOAL_CONTROL_FORWARD(UpdateCluster)
SHOAL_CONTROL_FORWARD(GetSecret)
SHOAL_CONTROL_FORWARD(UpdateSecret)
SHOAL_CONTROL_FORWARD(ListSecrets)
SHOAL_CONTROL_FORWARD(CreateSecret)
SHOAL_CONTROL_FORWARD(RemoveSecret)
SHOAL_CONTROL_FORWARD(GetConfig)
SHOAL_CONTROL_FORWARD(UpdateConfig)
SHOAL_CONTROL_FORWARD(ListConfigs)
SHOAL_CONTROL_FORWARD(CreateConfig)
SHOAL_CONTROL_FORWARD(RemoveConfig)
#undef SHOAL_CONTROL_FORWARD

grpc::Status ControlService::GetUnlockKey(grpc::ServerContext*, const api::GetUnlockKeyRequest*,
                                          api::GetUnlockKeyResponse* response) {
  // Autolock is not offered yet: no key (the documented answer for an unlocked cluster).
  options_.store->View([&](const store::ReadTx& tx) {
    for (const api::Cluster* c : tx.List<api::Cluster>()) *response->mutable_version() = c->meta().version();
  });
  return grpc::Status::OK;
}

grpc::Status ControlService::IssueOperatorCertificate(
    grpc::ServerContext* context, const api::IssueOperatorCertificateRequest* request,
    api::IssueOperatorCertificateResponse* response) {
  auto routed = Route(context, [&](api::Control::StubInterface& leader, grpc::ClientContext* out) {
    return leader.IssueOperatorCertificate(out, *request, response);
  });
  if (routed) return *routed;
  const pki::RootCa* ca = options_.ca ? options_.ca() : nullptr;
  if (ca == nullptr) {
    return grpc::Status(grpc::StatusCode::UNAVAILABLE,
                        "this manager holds no signing CA: ask the leader");
  }
  return Answer(pki::SignOperatorCertificate(*ca, options_.cluster_id, *request), response);
}

grpc::Status ControlService::Watch(grpc::ServerContext* context,
                                   const api::WatchRequest* request,
                                   grpc::ServerWriter<api::WatchMessage>* writer) {
  if (request->selectors().empty()) {
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "selectors: at least one is needed");
  }
  for (int i = 0; i < request->selectors_size(); ++i) {
    if (!KindOf(request->selectors(i).kind())) {
      return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                          absl::StrCat("selectors[", i, "].kind: choose an object kind"));
    }
  }
  if (request->resume_from().index() != 0) {
    return grpc::Status(grpc::StatusCode::OUT_OF_RANGE,
                        "resuming a watch is not kept: list again with include_current");
  }
  auto selected = [&](store::Kind kind, const google::protobuf::Message& o) {
    for (const auto& sel : request->selectors()) {
      if (Selected(sel, kind, o)) return true;
    }
    return false;
  };
  api::WatchMessage current;
  auto watch = options_.store->Watch(
      [&](const store::Event& e) { return selected(e.kind, *e.object); },
      [&](const store::ReadTx& tx) {
        if (!request->include_current()) return;
        current.mutable_version()->set_index(tx.index());
        for (int k = 0; k < 7; ++k) {
          const auto kind = static_cast<store::Kind>(k);
          for (const google::protobuf::Message* o : tx.ListAll(kind, nullptr)) {
            if (!selected(kind, *o)) continue;
            auto* e = current.add_events();
            e->set_action(api::WatchMessage::Event::ACTION_CREATE);
            *e->mutable_object() = Packed(kind, *o);
          }
        }
      });
  if (request->include_current() && !writer->Write(current)) return grpc::Status::OK;
  api::WatchMessage batch;
  while (!context->IsCancelled()) {
    auto e = watch->Next(absl::Now() + absl::Milliseconds(200));
    if (!e.ok()) return ToGrpcStatus(e.status());
    if (!e->has_value()) continue;
    const store::Event& ev = **e;
    if (ev.type == store::Event::Type::kCommit) {
      if (batch.events_size() == 0) continue;
      batch.mutable_version()->set_index(ev.index);
      if (!writer->Write(batch)) break;
      batch.Clear();
      continue;
    }
    auto* out = batch.add_events();
    out->set_action(ev.type == store::Event::Type::kCreate   ? api::WatchMessage::Event::ACTION_CREATE
                    : ev.type == store::Event::Type::kUpdate ? api::WatchMessage::Event::ACTION_UPDATE
                                                              : api::WatchMessage::Event::ACTION_REMOVE);
    *out->mutable_object() = Packed(ev.kind, *ev.object);
  }
  watch->Close();
  return grpc::Status::OK;
}

}  // namespace shoal::manager::controlapi
