// A gRPC server hosting a member's Raft transport, for tests, listening on loopback: the
// transport is attached to it (GrpcTransport::AttachToServer) and started once it runs.
//
//   RaftServer s = ServeRaft(*transport);
//   ASSERT_NE(s.server, nullptr);
//   other_transport->AddPeer(1, s.addr);
#pragma once

#include <grpcpp/grpcpp.h>

#include <memory>
#include <string>

#include "raft/grpc_transport.h"

namespace shoal::raft::testing {

struct RaftServer {
  std::unique_ptr<grpc::Server> server;  // null when it could not listen
  int port = 0;
  std::string addr;  // "127.0.0.1:<port>"
};

// Serves `transport`'s Raft service on `listen` (port 0: any free one) with `credentials`, and
// starts the transport (when the server could listen: otherwise call again, on another address).
// With `exclusive_port`, a port still in use is a failure rather than a second listener
// (SO_REUSEPORT off), so a test can tell that a port is free again.
RaftServer ServeRaft(GrpcTransport& transport,
                     std::shared_ptr<grpc::ServerCredentials> credentials =
                         grpc::InsecureServerCredentials(),
                     const std::string& listen = "127.0.0.1:0", bool exclusive_port = false);

}  // namespace shoal::raft::testing
