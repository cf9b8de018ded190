#include "manager/raft_join.h"

#include <algorithm>
#include <map>

#include "absl/random/random.h"
#include "absl/strings/str_cat.h"
#include "common/grpc_status.h"
#include "pki/grpc_authorizer.h"

namespace shoal::manager {

using store::ReadTx;
using store::WriteTx;

grpc::Status JoinService::Serve(grpc::ServerContext* context, const raftpb::JoinRequest& request,
                                raftpb::JoinResponse* response) {
  auto peer = pki::AuthenticatedPeer(*context);
  if (!peer.ok()) return ToGrpcStatus(peer.status());
  auto joined = Join(peer->subject, request.addr());
  if (!joined.ok()) return ToGrpcStatus(joined.status());
  *response = *std::move(joined);
  return grpc::Status::OK;
}

absl::StatusOr<raftpb::JoinResponse> JoinService::Join(const std::string& node_id,
                                                       const std::string& addr) {
  if (addr.empty()) return absl::InvalidArgumentError("addr: the joining manager's address is required");
  auto members = options_.membership->Members();
  if (!members.ok()) {
    return absl::UnavailableError(
        absl::StrCat("this manager does not lead: join through the leader (",
                     members.status().message(), ")"));
  }
  std::optional<api::Node> node;
  options_.store->View([&](const ReadTx& tx) {
    if (const api::Node* n = tx.Get<api::Node>(node_id)) node = *n;
  });
  if (!node || node->spec().desired_role() != api::NODE_ROLE_MANAGER) {
    return absl::FailedPreconditionError(absl::StrCat(
        "node ", node_id, " is not promoted: run `swarmctl node promote ", node_id, "` first"));
  }
  auto is_member = [&](uint64_t id) {
    return std::any_of(members->begin(), members->end(), [&](const auto& m) { return m.id == id; });
  };
  // The id is recorded on the node before the member is added: a join that fails half-way
  // (the write done, the learner not added, or the answer lost) is retried under the same id,
  // so no member is ever added that no node object names.
  uint64_t raft_id = node->manager_status().raft_id();
  if (raft_id == 0) {
    if (options_.new_raft_id) {
      raft_id = options_.new_raft_id();
    } else {
      absl::BitGen gen;
      do {
        raft_id = absl::Uniform<uint64_t>(gen);
      } while (raft_id == 0 || is_member(raft_id));
    }
  }
  // A learner asks again after a join that failed half-way: it never voted. A voter's node asks
  // again only when it lost its Raft state, and an empty log under an id that voted could vote
  // twice in one term: refused.
  for (const auto& m : *members) {
    if (m.id == raft_id && !m.learner && m.id != options_.membership->self()) {
      return absl::FailedPreconditionError(absl::StrCat(
          "node ", node_id, "'s Raft member ", raft_id,
          " votes already: a member that lost its Raft state cannot join again under its id; "
          "run `swarmctl node demote ", node_id, "` then `swarmctl node promote ", node_id, "`"));
    }
  }
  auto written = options_.store->Update([&](WriteTx& tx) -> absl::Status {
    const api::Node* n = tx.Get<api::Node>(node_id);
    if (n == nullptr) return absl::NotFoundError(absl::StrCat("node ", node_id, " not found"));
    if (n->manager_status().raft_id() == raft_id && n->manager_status().addr() == addr) {
      return absl::OkStatus();
    }
    api::Node u = *n;
    u.mutable_manager_status()->set_raft_id(raft_id);
    u.mutable_manager_status()->set_addr(addr);
    return tx.Update(u);
  });
  if (!written.ok()) return written.status();
  if (!is_member(raft_id)) {
    raftpb::RaftMember me;
    me.set_raft_id(raft_id);
    me.set_node_id(node_id);
    me.set_addr(addr);
    if (absl::Status s = options_.membership->AddLearner(raft_id, me.SerializeAsString()); !s.ok()) {
      return absl::Status(s.code(), absl::StrCat("adding member ", raft_id, " for node ", node_id,
                                                  " failed (", s.message(),
                                                  "): call Join again; it reuses the id"));
    }
  }

  raftpb::JoinResponse out;
  out.set_raft_id(raft_id);
  std::map<uint64_t, api::Node> by_id;
  options_.store->View([&](const ReadTx& tx) {
    for (const api::Node* n : tx.List<api::Node>()) {
      if (n->manager_status().raft_id() != 0) by_id[n->manager_status().raft_id()] = *n;
    }
  });
  auto now = options_.membership->Members();
  if (now.ok()) members = std::move(now);
  for (const auto& m : *members) {
    raftpb::RaftMember* r = out.add_members();
    r->set_raft_id(m.id);
    if (auto it = by_id.find(m.id); it != by_id.end()) {
      r->set_node_id(it->second.meta().id());
      r->set_addr(it->second.manager_status().addr());
    }
  }
  return out;
}

}  // namespace shoal::manager
