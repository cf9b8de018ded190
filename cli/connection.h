// How swarmctl reaches the cluster.
//
// With --host: the managers' gRPC addresses over mutual TLS with the operator certificate of
// --tls-dir (key.pem, cert.pem, ca.pem; the cluster id is the O of cert.pem). A call that
// answers UNAVAILABLE, or an address that does not connect within the connect timeout, moves
// on to the next address; the address that answered is tried first by the next call. When
// every address answered UNAVAILABLE (a leader election, say), the round is retried with a
// backoff for at most `retry_for`.
//
// Without --host: the local daemon's unix socket with insecure credentials (the socket's file
// permissions are the authorisation); swarmd serves both Control and NodeControl there.
//
//   ASSIGN_OR_RETURN(auto client, ControlClient::Create(options));
//   api::ListNodesResponse nodes;
//   RETURN_IF_ERROR(client->Call(&api::Control::StubInterface::ListNodes, req, &nodes));
//
// Not thread-safe: one per command.
#pragma once

#include <grpcpp/grpcpp.h>

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "proto/control.grpc.pb.h"
#include "proto/node_control.grpc.pb.h"

namespace shoal::cli {

inline constexpr char kDefaultSocket[] = "/run/swarmd/swarmd.sock";

struct ConnectOptions {
  // Managers' "host:port" addresses; empty = the local socket.
  std::vector<std::string> hosts;
  std::string tls_dir;
  std::string socket = kDefaultSocket;
  // Per address: how long to wait for a connection before trying the next.
  absl::Duration connect_timeout = absl::Seconds(5);
  // Per call, once connected.
  absl::Duration call_timeout = absl::Seconds(30);
  // How long to keep retrying when every manager answered UNAVAILABLE.
  absl::Duration retry_for = absl::Seconds(10);
};

// The cluster id of an operator certificate directory: the O of its cert.pem. NOT_FOUND or
// INVALID_ARGUMENT naming the file.
absl::StatusOr<std::string> ClusterIdOf(const std::string& tls_dir);

class ControlClient {
 public:
  template <typename Req, typename Resp>
  using Method = grpc::Status (api::Control::StubInterface::*)(grpc::ClientContext*, const Req&,
                                                               Resp*);

  // Checks the options (the TLS directory's files) and makes the channels; connects lazily.
  static absl::StatusOr<std::unique_ptr<ControlClient>> Create(const ConnectOptions& options);

  // Calls `method` with failover. The manager's status (code and message as written) on an
  // answer; UNAVAILABLE "cannot reach any manager at A, B: <last error>" when none answered.
  template <typename Req, typename Resp>
  absl::Status Call(Method<Req, Resp> method, const Req& request, Resp* response) {
    return CallWithFailover([&](api::Control::StubInterface& stub, grpc::ClientContext* ctx) {
      return (stub.*method)(ctx, request, response);
    });
  }

  absl::Status CallWithFailover(
      const std::function<grpc::Status(api::Control::StubInterface&, grpc::ClientContext*)>& fn);

  // For a server stream of another API on the same managers (Logs' SubscribeLogs): runs `fn`
  // with the channel of each address in turn, as Call does, but without a call deadline (a
  // stream lasts as long as it must), and moving on only while the call failed UNAVAILABLE
  // before `fn` received anything (`*received`).
  absl::Status StreamWithFailover(
      const std::function<grpc::Status(const std::shared_ptr<grpc::Channel>& channel,
                                       grpc::ClientContext*, bool* received)>& fn);

  // The address of the manager that answered last (the first one before any call), and its
  // stub, for helpers that take a stub (pki::RequestOperatorBundle).
  const std::string& current_address() const { return endpoints_[current_].address; }
  api::Control::StubInterface& current_stub() { return *endpoints_[current_].stub; }
  bool local() const { return local_; }

 private:
  struct Endpoint {
    std::string address;  // as the user wrote it (or "unix:PATH")
    std::shared_ptr<grpc::Channel> channel;
    std::unique_ptr<api::Control::Stub> stub;
  };
  ControlClient(ConnectOptions options, std::vector<Endpoint> endpoints, bool local)
      : options_(std::move(options)), endpoints_(std::move(endpoints)), local_(local) {}

  // READY or TRANSIENT_FAILURE (the call then fails fast with gRPC's reason) within the
  // connect timeout: true; still connecting at the deadline: false.
  bool Settle(Endpoint& e);
  // The failover of both: `fn` with a fresh context on each endpoint in turn (a call deadline
  // when `deadline`).
  absl::Status Failover(
      const std::function<grpc::Status(Endpoint&, grpc::ClientContext*, bool* received)>& fn,
      bool deadline);

  ConnectOptions options_;
  std::vector<Endpoint> endpoints_;
  bool local_;
  size_t current_ = 0;
};

// A NodeControl client on the local socket (insecure credentials).
std::unique_ptr<api::NodeControl::Stub> NodeControlStub(const std::string& socket);

}  // namespace shoal::cli
