#include "manager/store_ca_registry.h"

#include "absl/strings/str_cat.h"

namespace shoal::manager {

using store::ReadTx;
using store::WriteTx;

absl::StatusOr<api::JoinTokens> StoreCaRegistry::GetJoinTokens() {
  absl::StatusOr<api::JoinTokens> out = absl::UnavailableError("the cluster object is not there yet");
  store_->View([&](const ReadTx& tx) {
    auto clusters = tx.List<api::Cluster>();
    if (!clusters.empty()) out = clusters.front()->root_ca().join_tokens();
  });
  return out;
}

bool StoreCaRegistry::NodeIdTaken(absl::string_view node_id) {
  bool taken = false;
  store_->View([&](const ReadTx& tx) { taken = tx.Get<api::Node>(std::string(node_id)) != nullptr; });
  return taken;
}

absl::Status StoreCaRegistry::CreateNode(const pki::NodeRecord& node) {
  auto r = store_->Update([&](WriteTx& tx) -> absl::Status {
    if (tx.Get<api::Node>(node.node_id) != nullptr) {
      return absl::AlreadyExistsError(absl::StrCat("node ", node.node_id, " exists"));
    }
    api::Node n;
    n.mutable_meta()->set_id(node.node_id);
    n.set_role(node.role);
    n.mutable_spec()->set_desired_role(node.desired_role);
    n.mutable_spec()->set_availability(node.availability);
    n.mutable_spec()->set_membership(api::NodeSpec::MEMBERSHIP_ACCEPTED);
    n.mutable_status()->set_state(api::NodeStatus::NODE_STATE_UNKNOWN);
    n.mutable_status()->set_message("joined; waiting for its first session");
    *n.mutable_certificate() = node.certificate;
    return tx.Create(n);
  });
  return r.status();
}

absl::StatusOr<pki::NodeRecord> StoreCaRegistry::GetNode(absl::string_view node_id) {
  absl::StatusOr<pki::NodeRecord> out =
      absl::NotFoundError(absl::StrCat("node ", node_id, " is not in the cluster"));
  store_->View([&](const ReadTx& tx) {
    const api::Node* n = tx.Get<api::Node>(std::string(node_id));
    if (n == nullptr) return;
    pki::NodeRecord r;
    r.node_id = n->meta().id();
    r.desired_role = n->spec().desired_role();
    r.role = n->role();
    r.availability = n->spec().availability();
    r.certificate = n->certificate();
    out = std::move(r);
  });
  return out;
}

absl::Status StoreCaRegistry::UpdateCertificate(absl::string_view node_id,
                                                const api::Certificate& certificate) {
  auto r = store_->Update([&](WriteTx& tx) -> absl::Status {
    const api::Node* n = tx.Get<api::Node>(std::string(node_id));
    if (n == nullptr) return absl::NotFoundError(absl::StrCat("node ", node_id, " is not in the cluster"));
    api::Node u = *n;
    *u.mutable_certificate() = certificate;
    return tx.Update(u);
  });
  return r.status();
}

bool StoreCaRegistry::IsRemoved(absl::string_view node_id) {
  bool removed = false;
  store_->View([&](const store::ReadTx& tx) {
    for (const api::Cluster* c : tx.List<api::Cluster>()) {
      removed |= c->removed_nodes().contains(std::string(node_id));
    }
  });
  return removed;
}

pki::RevocationCheck StoreCaRegistry::Revocation() {
  return [this](const pki::CertificateInfo& peer) {
    return peer.role != api::CERTIFICATE_ROLE_OPERATOR && IsRemoved(peer.subject);
  };
}

}  // namespace shoal::manager
