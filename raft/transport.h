// The seam between the node loop and the network: how Raft messages leave and arrive.
//
// Implementations: GrpcTransport (raft/grpc_transport.h: long-lived gRPC streams between
// managers, batching, chunked snapshots) and the simulation's in-memory network.
//
// Thread-safety: implementations are thread-safe.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "proto/raft.pb.h"

namespace shoal::raft {

// Where a transport delivers what arrives, and what it reports about sends. Called from the
// transport's threads; implementations must be thread-safe and must not block for long.
class MessageHandler {
 public:
  virtual ~MessageHandler() = default;
  virtual void Receive(raftpb::Message message) = 0;
  // A message to `peer` could not be delivered (the peer is down or cut off).
  virtual void ReportUnreachable(uint64_t peer) = 0;
  // The outcome of sending a snapshot to `peer`.
  virtual void ReportSnapshot(uint64_t peer, bool failed) = 0;
};

class Transport {
 public:
  virtual ~Transport() = default;
  // Where what arrives, and what is learnt of sends, goes from now on; null stops delivery.
  // When it returns, no call to the previous handler is in progress or will be made, so that
  // handler may be destroyed. Node::Start sets the node as the handler and Node::Stop clears
  // it: a transport serves one node, which is stopped before the transport is destroyed.
  virtual void SetHandler(MessageHandler* handler) = 0;
  // Queues messages for sending and returns at once. Messages to unknown peers are dropped and
  // reported unreachable; so are messages that cannot be sent.
  virtual void Send(std::vector<raftpb::Message> messages) = 0;
  // Adds or updates a peer's address ("host:port"); ignored for a removed member.
  virtual void AddPeer(uint64_t id, const std::string& addr) = 0;
  // `id` was removed from the cluster (ids are never reused): forget its address, and answer
  // whatever it still sends by telling it so, as a MSG_REMOVED from this member delivered to
  // its handler (the core answers with one too, but a transport that forgot the address
  // cannot send it). Called for every removed member, also when a node starts.
  virtual void RemovePeer(uint64_t id) = 0;
};

}  // namespace shoal::raft
