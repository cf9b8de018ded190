#include "raft/testing/raft_server.h"

#include <utility>

namespace shoal::raft::testing {

RaftServer ServeRaft(GrpcTransport& transport,
                     std::shared_ptr<grpc::ServerCredentials> credentials,
                     const std::string& listen, bool exclusive_port) {
  RaftServer out;
  grpc::ServerBuilder builder;
  if (exclusive_port) builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
  builder.AddListeningPort(listen, std::move(credentials), &out.port);
  transport.AttachToServer(builder);
  out.server = builder.BuildAndStart();
  if (out.server == nullptr || out.port == 0) {
    out.server.reset();
    return out;
  }
  transport.Start();
  out.addr = "127.0.0.1:" + std::to_string(out.port);
  return out;
}

}  // namespace shoal::raft::testing
