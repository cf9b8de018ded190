// The seam between the node loop and the network: how Raft messages leave and arrive.
//
// Implementations: GrpcTransport (raft/grpc_transport.h: long-lived gRPC streams between
// managers, batching, chunked snapshots) and the simulation's in-memory network.
//
// Thread-safety: implementations are thread-safe.
#pragma once

#include <cstdint>
#include <functional>
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

// A transport whose own thread can run the node's loop (GrpcTransport's, the one thread that
// polls gRPC): what arrives is then stepped on the thread that read it, with no hand-off to
// another thread (on this project's hosts a thread woken on another CPU costs tens of
// microseconds of CPU, and a hand-off per batch on each member was a tenth of a write's cost).
class LoopHost {
 public:
  virtual ~LoopHost() = default;
  // Runs `loop` on the transport's thread, soon, and returns at once. `loop` waits with Poll
  // and returns when the node stops; the transport's thread goes on with its own work after.
  virtual void RunLoop(std::function<void()> loop) = 0;
  // Only inside `loop`: waits for the next thing the transport has to do (a message read, a
  // send completed, a Wake) and does it; what arrives is delivered to the handler on this
  // thread, before Poll returns.
  virtual void Poll() = 0;
  // From any thread: a Poll waiting now, or the next one to start, returns.
  virtual void Wake() = 0;
  // Only inside `loop`, around a burst of writes made at once (the answers to the proposals
  // one commit completed, each a gRPC call's Finish): the host may hold back what its
  // connections send until EndBurst, so that the burst leaves in full segments rather than
  // one per answer. Every BeginBurst is followed by EndBurst before the loop polls again.
  virtual void BeginBurst() {}
  virtual void EndBurst() {}
};

class Transport {
 public:
  virtual ~Transport() = default;
  // The transport's LoopHost when its thread can run the node's loop now, or null: the node
  // then runs its loop on a thread of its own (Node::Start asks).
  virtual LoopHost* loop_host() { return nullptr; }
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
