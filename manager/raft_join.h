// The Raft Join RPC, served by the leader (raft::GrpcTransport::SetJoinHandler): a manager
// whose node was promoted (`node promote`) asks to join the Raft group. It is added as a
// learner under a fresh member id (random, never reused), its node object records the id and
// address, and the role manager makes it a voter once it has caught up.
//
// A node that was not promoted is refused (FAILED_PRECONDITION naming the command to run); a
// manager that does not lead answers UNAVAILABLE; a node already a learner gets its id again
// (its join was interrupted); a node whose member votes already is refused (it lost its Raft
// state: an empty log under an id that voted could vote twice in a term).
//
// Thread-safety: thread-safe.
#pragma once

#include <functional>
#include <string>

#include <grpcpp/grpcpp.h>

#include "absl/status/statusor.h"
#include "manager/role_manager.h"
#include "manager/store/store.h"
#include "proto/raft_service.pb.h"

namespace shoal::manager {

class JoinService {
 public:
  struct Options {
    store::Store* store = nullptr;
    Membership* membership = nullptr;
    // A fresh member id; default random (as SwarmKit's), never 0 nor a current member's.
    std::function<uint64_t()> new_raft_id;
  };
  explicit JoinService(Options options) : options_(std::move(options)) {}

  // The RPC: the caller is the node its (manager) certificate names.
  grpc::Status Serve(grpc::ServerContext* context, const raftpb::JoinRequest& request,
                     raftpb::JoinResponse* response);
  // The same for node `node_id` at `addr`.
  absl::StatusOr<raftpb::JoinResponse> Join(const std::string& node_id, const std::string& addr);

 private:
  const Options options_;
};

}  // namespace shoal::manager
