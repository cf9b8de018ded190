// Transport over gRPC: one long-lived client stream (Raft.StreamMessages) per peer carries
// batches of messages; snapshots go through Raft.InstallSnapshot in chunks of at most 1 MiB
// with a CRC-32 over the whole. A stream is opened when its peer is added, and names its
// sender in its metadata; one that breaks, or that the peer ends, is reported (the core then
// probes the peer) and re-opened on the next send. A member removed from the cluster
// (RemovePeer) has its streams and snapshots refused with trailing metadata saying so, which
// its own transport hands to its node as a MSG_REMOVED from the refusing member.
//
// Threads: one thread ("raft-io") polls one completion queue that carries everything the
// transport does on the network, both ways: the streams it writes to its peers and the
// streams its peers write to it (StreamMessages is served on gRPC's asynchronous API, on the
// server's completion queue). Four more threads send snapshots (one each at a time), and
// InstallSnapshot is served by the gRPC server's own threads. Why one thread: every gRPC thread
// that waits on a completion queue takes turns with the others at polling the process's
// sockets, and on this project's hosts a thread woken on another CPU costs tens of
// microseconds. With gRPC's callback API (which this replaced) a member's two "nexting"
// threads and the sender's thread woke one another about 15 times per write on a leader with
// one client, and a leader or follower spent a fifth more CPU per write at 64 clients.
// Other services of the same server can have their calls polled by the same thread (queue(),
// with CqTag tags) rather than start pollers of their own.
//
//   GrpcTransport::Options o;  o.self = 1;
//   auto t = GrpcTransport::Create(o);
//   auto node = Node::Create({..., .transport = t.get()});
//   grpc::ServerBuilder builder;  builder.AddListeningPort(...);
//   t->AttachToServer(builder);                   // before BuildAndStart
//   auto server = builder.BuildAndStart();
//   t->Start();                                   // after it
//   node->Start();                                // the node is the transport's handler
//   t->AddPeer(2, "10.0.0.2:4242");
//   ...
//   node->Stop();  server->Shutdown(deadline);  t.reset();  server.reset();  // in this order
//
// The order matters: the transport's destructor shuts its queue down and drains it, which
// gRPC allows only once the server is shut down, and draining finishes the server's pending
// requests for new streams, which reads the server object: destroy the server after the
// transport (a server destroyed first crashed the draining thread).
//
// A transport that only sends (a test's outsider) skips AttachToServer and calls Start.
#pragma once

#include <grpcpp/grpcpp.h>

#include <atomic>
#include <cstdint>
#include <deque>
#include <map>
#include <functional>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "absl/synchronization/mutex.h"
#include "proto/raft_service.grpc.pb.h"
#include "raft/socket_cork.h"
#include "raft/transport.h"

namespace shoal::raft {

class GrpcTransport final : public Transport, private LoopHost {
 public:
  struct Options {
    // This member's Raft id (required): messages arriving for any other id are refused. The
    // core sets `from` on what it sends.
    uint64_t self = 0;
    // Credentials for connections to peers; insecure when null (tests and benchmarks on
    // loopback only: every port of a real cluster is mutual TLS, supplied by pki/).
    std::shared_ptr<grpc::ChannelCredentials> channel_credentials;
    // The TLS server name asked of every peer, when not empty: pki::kManagerServerName with
    // Shoal's credentials (certificates name roles, not hosts; without it every connection
    // logged an error that the peer's address is not in its certificate).
    std::string tls_server_name;
    // Messages queued for one peer beyond this are dropped (and the peer reported
    // unreachable): Raft retransmits what matters.
    size_t max_queued_messages = 8192;
    // Largest batch put in one stream write, in messages and in bytes (a message larger than
    // max_batch_bytes goes alone). A member's gRPC server refuses a write over its receive
    // limit (gRPC's default, 4 MiB, unless the server raises it) and the stream then breaks:
    // keep max_batch_bytes, and the core's largest message (Config::max_size_per_msg or
    // one entry of Config::max_entry_bytes), below it. At most kMaxBatchBytes.
    size_t max_batch_messages = 512;
    size_t max_batch_bytes = 2 << 20;
    // Appends wait for the peer's answer when they come faster than it answers: once appends
    // with entries were written to a peer, the next ones queue until it sends anything back
    // (its acknowledgement), then go out together in one write. A follower steps what arrives
    // while it syncs as one batch anyway, and each write costs both members a system call,
    // the loopback or network stack and a read: at 64 clients on loopback a follower was sent
    // 2.4 appends per synced write; waiting, its synced writes carry about 20 entries rather
    // than 16, and the followers' CPU per write fell 12% (2026-12-04 A/B). They wait
    // only while the last answer found two or more appends sent since the one before that
    // could not go alone at once: with one client the next proposal's append goes at once,
    // rather than wait for a member slower than the quorum. Only appends wait, and only while
    // fewer than kHoldBytes of them are queued: any other message (a heartbeat, a vote) takes
    // them along at once, so a peer that does not answer gets them with the next heartbeat at
    // the latest, and a backlog (a follower catching up) is written as fast as the stream
    // takes it. An append without entries (a new commit index) makes nothing wait after it:
    // no sync answers it.
    bool hold_appends = true;
    // While the node's loop answers several calls at once (LoopHost::BeginBurst: the
    // proposals one commit completed), the process's accepted connections are corked
    // (SocketCork) and uncorked once all are answered: gRPC writes each call's answer with a
    // sendmsg of its own, which then only queues it, and the answers on one connection leave
    // together. At 64 clients on loopback: the leader's CPU per write -10%, the clients' -8%,
    // throughput +6.7% (2026-12-04 A/B). A connection is held for the length of the burst at
    // most (microseconds to a millisecond).
    bool cork_bursts = true;
    // The transport's threads (raft-io, which also runs the node's loop, and the snapshot
    // senders) run under SCHED_BATCH (common/batch_thread.h): a peer's or a client's thread
    // they wake does not preempt them, nor they it. At 64 clients on 2 cores: throughput +16%,
    // the followers' CPU per write -24% (2026-12-04 A/B, with Node::Options::batch_threads).
    bool batch_threads = true;
    // Snapshot chunk size: 1 to kMaxSnapshotChunkBytes.
    size_t snapshot_chunk_bytes = 1 << 20;
    // How long sending one snapshot may take: snapshot_timeout, plus its size at
    // snapshot_min_rate bytes a second (a 1 GiB state over a link slower than ~4 MB/s never
    // made it within a fixed 5 minutes, and was sent again and again). SnapshotTimeout().
    absl::Duration snapshot_timeout = absl::Minutes(5);
    uint64_t snapshot_min_rate = 1 << 20;
    // Keepalive: every connection to a peer is pinged every keepalive_time, and closed when a
    // ping goes unanswered for keepalive_timeout (the peer is then reported unreachable and
    // reconnected). It finds a peer that vanished without closing its connection (a host
    // powered off, a firewall or NAT that forgot the flow) in seconds, rather than when TCP
    // gives up minutes later. Zero turns it off; both at most kMaxKeepalive. gRPC sends at most
    // one ping a second. Every member's server must accept pings this often: ConfigureServer.
    absl::Duration keepalive_time = absl::Seconds(10);
    absl::Duration keepalive_timeout = absl::Seconds(10);
  };
  // What gRPC can be given (milliseconds in an int).
  static constexpr absl::Duration kMaxKeepalive = absl::Hours(24);

  // Sets what a member's gRPC server needs for the Raft service: it accepts its peers'
  // keepalive pings however often they come (by default gRPC ends a connection that pings
  // more than once in 5 minutes while the server sends no data, and Raft's receiving side
  // sends none). AttachToServer calls it.
  static void ConfigureServer(grpc::ServerBuilder& builder);

  // Every member's gRPC server accepts this much in one message (gRPC's default).
  static constexpr size_t kMaxBatchBytes = 4 << 20;
  // A snapshot chunk's data at most: half of that leaves room for the first chunk's header.
  static constexpr size_t kMaxSnapshotChunkBytes = kMaxBatchBytes / 2;

  static absl::StatusOr<std::unique_ptr<GrpcTransport>> Create(const Options& options);

  // Transport::SetHandler (Node::Start and Node::Stop call it). What arrives while there is
  // no handler is dropped, as if lost.
  void SetHandler(MessageHandler* handler) override;

  // Who serves the Join RPC: membership is the manager's to decide (it knows which node was
  // promoted); without a handler Join answers UNIMPLEMENTED. Thread-safe.
  using JoinHandler = std::function<grpc::Status(grpc::ServerContext* context,
                                                 const raftpb::JoinRequest& request,
                                                 raftpb::JoinResponse* response)>;
  void SetJoinHandler(JoinHandler handler) ABSL_LOCKS_EXCLUDED(join_mu_);
  // After the node is stopped and the server shut down, before the server is destroyed.
  ~GrpcTransport() override;

  // Registers the Raft service with `builder` (configured as ConfigureServer says) and takes
  // a completion queue of the server's for the transport's thread. Call before BuildAndStart,
  // and before Start; again with another builder if that one failed to build.
  void AttachToServer(grpc::ServerBuilder& builder);
  // Starts the transport's thread: streams to the peers open (what was sent before waits for
  // it), and, once attached, streams from the peers are accepted. Call once, after the
  // server's BuildAndStart.
  void Start();

  // What the transport's thread does with a completion: every tag put on queue() is a CqTag.
  struct CqTag {
    virtual ~CqTag() = default;
    // On the transport's thread. `ok` is the operation's outcome, as gRPC gives it.
    virtual void Proceed(bool ok) = 0;
  };
  // The server's completion queue the transport's thread polls (null until AttachToServer),
  // for other services' asynchronous calls on the same server, so that they add no polling
  // thread of their own. Their tags must be CqTag, must not block, and must start no operation
  // once the server has been shut down (the queue is shut down with the transport).
  grpc::ServerCompletionQueue* queue() { return server_queue_.get(); }

  void Send(std::vector<raftpb::Message> messages) override;
  void AddPeer(uint64_t id, const std::string& addr) override;
  void RemovePeer(uint64_t id) override;
  // Once started: the node's loop runs on the transport's thread.
  LoopHost* loop_host() override;

  // How many messages for `peer` wait for its answer (Options::hold_appends), once there are
  // `n` of them or `within` has passed. For tests.
  size_t AwaitHeld(uint64_t peer, size_t n, absl::Duration within) ABSL_LOCKS_EXCLUDED(mu_);
  // How many connections a burst holds now (Options::cork_bursts). On the transport's thread
  // (the node's loop) or, with no node running, any one thread; for tests.
  size_t corked_connections() const { return cork_ ? cork_->corked().size() : 0; }

 private:
  class RaftServiceImpl;
  class StreamCall;
  struct Peer;
  struct Op;

  class Waker;
  // Poll handles at most this many completions before it returns to the node.
  static constexpr int kMaxPolledAtOnce = 256;
  // Appends queued for a peer stop waiting for its answer at this many bytes (HoldLocked).
  static constexpr size_t kHoldBytes = 64 << 10;

  explicit GrpcTransport(const Options& options);
  void PollLoop();
  // LoopHost.
  void RunLoop(std::function<void()> loop) override;
  void Poll() override;
  void Wake() override;
  void BeginBurst() override;
  void EndBurst() override;
  // A peer stream's operation completed (on the transport's thread).
  void OnOp(Op* op, bool ok);
  // Whether the transport's thread runs (streams may be started on cq_).
  bool RunningLocked() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return started_ && !stopping_;
  }
  void SnapshotLoop();
  // AddPeer under mu_: whether the peer's old stream may have lost messages it wrote.
  bool AddPeerLocked(uint64_t id, const std::string& addr) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void StartStreamLocked(Peer& peer) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void WriteNextLocked(Peer& peer) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void BreakStreamLocked(Peer& peer) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Whether the appends queued for `peer` wait for its answer to those written before.
  bool HoldLocked(const Peer& peer) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // A message from member `id` arrived: appends held for it go now (Options::hold_appends).
  void AnsweredBy(uint64_t id) ABSL_LOCKS_EXCLUDED(mu_);
  void SendSnapshot(raftpb::Message m);
  // Whether `id` was removed from the cluster (RemovePeer).
  bool IsRemoved(uint64_t id);
  // Whether a refused call's trailing metadata (in `ctx`) says this member was removed.
  bool RefusedAsRemoved(const grpc::ClientContext& ctx) const;
  // Tells the handler that `peer` refused this member as removed (a MSG_REMOVED from it).
  void DeliverRemoved(uint64_t peer);

  // Calls `f` with the handler, if there is one, holding it for the call (SetHandler waits).
  template <typename F>
  void WithHandler(F f) ABSL_LOCKS_EXCLUDED(handler_mu_) {
    absl::ReaderMutexLock lock(&handler_mu_);
    if (handler_ != nullptr) f(*handler_);
  }

  Options options_;
  // Held (shared) across every call to the handler, so that SetHandler can wait them out. A
  // handler must not call SetHandler.
  absl::Mutex handler_mu_;
  MessageHandler* handler_ ABSL_GUARDED_BY(handler_mu_) = nullptr;
  absl::Mutex join_mu_;
  JoinHandler join_ ABSL_GUARDED_BY(join_mu_);
  // Streams refused because their messages were for another member (logged at 1, 2, 4, ...).
  std::atomic<uint64_t> misaddressed_{0};
  // Streams refused because their sender was removed from the cluster (logged likewise).
  std::atomic<uint64_t> refused_removed_{0};
  // Whether any member was removed (so that receiving skips the lock until one is).
  std::atomic<bool> any_removed_{false};
  std::unique_ptr<RaftServiceImpl> service_;
  // The queue the transport's thread polls: the server's (AttachToServer), or its own when
  // the transport only sends.
  std::unique_ptr<grpc::ServerCompletionQueue> server_queue_;
  std::unique_ptr<grpc::CompletionQueue> own_queue_;
  grpc::CompletionQueue* cq_ = nullptr;

  absl::Mutex mu_;
  std::map<uint64_t, std::unique_ptr<Peer>> peers_ ABSL_GUARDED_BY(mu_);
  // Streams being torn down after their peer was removed, freed when their last op completes.
  std::vector<std::unique_ptr<Peer>> retired_ ABSL_GUARDED_BY(mu_);
  std::deque<raftpb::Message> snapshots_ ABSL_GUARDED_BY(mu_);
  std::set<uint64_t> removed_ ABSL_GUARDED_BY(mu_);
  bool started_ ABSL_GUARDED_BY(mu_) = false;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  // Operations of served streams (and requests for new ones) not completed yet.
  int server_ops_ ABSL_GUARDED_BY(mu_) = 0;

  std::thread poller_;
  // Corks connections during the loop's bursts (Options::cork_bursts; the loop's thread).
  std::unique_ptr<SocketCork> cork_;
  // The node's loop, handed over by RunLoop until the transport's thread runs it.
  std::function<void()> hosted_loop_ ABSL_GUARDED_BY(mu_);
  std::atomic<bool> loop_handed_over_{false};  // hosted_loop_ waits to be run
  // Wake's alarm: at most one set at a time (wake_pending_, under its own lock: Wake is called
  // with the node's lock held, and the node's callbacks take the transport's).
  std::unique_ptr<Waker> waker_;
  absl::Mutex wake_mu_;
  bool wake_pending_ ABSL_GUARDED_BY(wake_mu_) = false;
  // Before Start and from the destructor on: no alarm (no queue, or one shutting down).
  bool wake_closed_ ABSL_GUARDED_BY(wake_mu_) = true;
  // Snapshot senders: a follower slow to take its snapshot holds up only its own.
  static constexpr int kSnapshotSenders = 4;
  std::vector<std::thread> snapshotters_;
  // The calls of snapshots being sent, cancelled when the transport is destroyed (a peer that
  // stopped reading would otherwise hold the destructor for the call's 5-minute deadline).
  std::set<grpc::ClientContext*> snapshot_calls_ ABSL_GUARDED_BY(mu_);
};

// How long the transport gives one snapshot of `bytes` to reach a member.
absl::Duration SnapshotTimeout(const GrpcTransport::Options& options, uint64_t bytes);

}  // namespace shoal::raft
