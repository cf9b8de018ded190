#include "raft/grpc_transport.h"

#include <grpc/support/time.h>
#include <grpcpp/alarm.h>

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "common/batch_thread.h"
#include "common/check.h"
#include "common/log.h"
#include "common/thread_name.h"
#include "raft/snapshot_stream.h"

namespace shoal::raft {

namespace {
grpc::Status ToGrpcStatus(const absl::Status& s) {
  // absl's codes are gRPC's, number for number.
  return grpc::Status(static_cast<grpc::StatusCode>(s.code()), std::string(s.message()));
}
// Time allowed to one connection attempt: long enough for a TLS handshake across a WAN; short
// enough that a peer behind a healed partition is tried again soon.
constexpr int kConnectTimeoutMs = 5000;

// The answer to a message addressed to a member other than this one.
grpc::Status MisaddressedStatus(const raftpb::Message& m, uint64_t self) {
  return grpc::Status(grpc::StatusCode::FAILED_PRECONDITION,
                      absl::StrCat("raft message for member ", m.to(), " from member ", m.from(),
                                   " reached member ", self,
                                   ": this address belongs to another member now"));
}

// A stream or snapshot from a member removed from the cluster is refused with this status and
// the trailing metadata kRemovedKey naming it; its transport tells its node.
constexpr char kRemovedKey[] = "shoal-raft-removed";
// Every stream names its sender in this metadata, so that a removed member is refused (and
// learns it) as soon as it connects, even when it has nothing to send: a member that knows
// itself only as a learner, say, never campaigns.
constexpr char kFromKey[] = "shoal-raft-from";

grpc::Status RemovedStatus(uint64_t member) {
  return grpc::Status(grpc::StatusCode::FAILED_PRECONDITION,
                      absl::StrCat("raft member ", member,
                                   " was removed from the cluster: it can no longer take part; stop it, "
                                   "remove its Raft state and join it again under a new id"));
}

}  // namespace

// One completion-queue operation of a peer's stream.
struct GrpcTransport::Op final : CqTag {
  // kServerDone: the server sent its initial metadata, which it does only as it ends the
  // stream (a refusal, a shutdown): the stream is finished to learn why.
  enum Kind { kStart, kWrite, kFinish, kServerDone };
  Op(Peer* p, Kind k) : peer(p), kind(k) {}
  void Proceed(bool ok) override;
  Peer* peer;
  Kind kind;
};

struct GrpcTransport::Peer {
  enum class State { kNone, kStarting, kIdle, kWriting, kFinishing };
  GrpcTransport* transport = nullptr;
  uint64_t id = 0;
  std::string addr;
  std::shared_ptr<grpc::Channel> channel;
  std::unique_ptr<raftpb::Raft::Stub> stub;
  std::unique_ptr<grpc::ClientContext> ctx;
  std::unique_ptr<grpc::ClientAsyncWriter<raftpb::MessageBatch>> writer;
  raftpb::StreamMessagesResponse response;
  grpc::Status finish_status;
  State state = State::kNone;
  std::deque<raftpb::Message> queue;
  raftpb::MessageBatch in_flight;
  int pending_ops = 0;
  bool removed = false;
  bool server_done = false;  // the server ended the stream; finish it at the next chance
  bool finish_done = false;  // the finish completed (the call ends with the metadata wait)
  bool wrote = false;        // a batch was written on this stream (it may not have been read)
  // Appends with entries were written on this stream and the peer has sent nothing since.
  bool awaiting_answer = false;
  // Appends with entries sent since the peer's last answer that could not go alone at once:
  // sent while awaiting_answer, or behind other messages in the queue.
  size_t late_appends = 0;
  // Whether appends wait for the peer's answer (HoldLocked): set at each answer when two or
  // more appends came late since the one before (waiting then saves writes), clear otherwise
  // (one client: the next proposal's append must not wait for a member slower than the
  // quorum).
  bool holding = false;
  Op start_op{this, Op::kStart};
  Op write_op{this, Op::kWrite};
  Op finish_op{this, Op::kFinish};
  Op server_done_op{this, Op::kServerDone};
};

void GrpcTransport::Op::Proceed(bool ok) { peer->transport->OnOp(this, ok); }

// Wake's alarm: set to fire at once, it puts its tag on the queue, which ends a Poll.
class GrpcTransport::Waker final : public CqTag {
 public:
  explicit Waker(GrpcTransport* transport) : transport_(transport) {}
  // A deadline already past: gRPC then queues the tag at once, on the calling thread. "Now"
  // was rounded up to the next millisecond, so each wake went through gRPC's timer thread
  // (a wake-up of that thread per write on a leader: 0.09 context switches per write at 64
  // clients, none since).
  void Set(grpc::CompletionQueue* cq) { alarm_.Set(cq, gpr_inf_past(GPR_CLOCK_MONOTONIC), this); }
  void Proceed(bool) override {
    absl::MutexLock lock(&transport_->wake_mu_);
    transport_->wake_pending_ = false;
  }

 private:
  GrpcTransport* transport_;
  grpc::Alarm alarm_;
};

// StreamMessages on the asynchronous API, on the transport's one queue.
class GrpcTransport::RaftServiceImpl final
    : public raftpb::Raft::WithAsyncMethod_StreamMessages<raftpb::Raft::Service> {
 public:
  explicit RaftServiceImpl(GrpcTransport* transport) : transport_(transport) {}
 public:
  grpc::Status InstallSnapshot(grpc::ServerContext* ctx,
                               grpc::ServerReader<raftpb::SnapshotChunk>* reader,
                               raftpb::InstallSnapshotResponse* response) override {
    const uint64_t self = transport_->options_.self;
    SnapshotAssembler in([&](const raftpb::Message& header) -> absl::Status {
      if (header.to() != self) {
        const grpc::Status st = MisaddressedStatus(header, self);
        return absl::FailedPreconditionError(st.error_message());
      }
      if (transport_->IsRemoved(header.from())) {
        ctx->AddTrailingMetadata(kRemovedKey, std::to_string(header.from()));
        return absl::FailedPreconditionError(RemovedStatus(header.from()).error_message());
      }
      return absl::OkStatus();
    });
    raftpb::SnapshotChunk chunk;
    while (!in.complete() && reader->Read(&chunk)) {
      if (absl::Status s = in.Add(std::move(chunk)); !s.ok()) return ToGrpcStatus(s);
    }
    absl::StatusOr<raftpb::Message> snap = std::move(in).Finish();
    if (!snap.ok()) return ToGrpcStatus(snap.status());
    response->set_applied_index(snap->snapshot().metadata().index());
    bool delivered = false;
    transport_->WithHandler([&](MessageHandler& h) {
      h.Receive(std::move(*snap));
      delivered = true;
    });
    if (!delivered) return grpc::Status(grpc::StatusCode::UNAVAILABLE, "raft node not started");
    return grpc::Status::OK;
  }

  // Membership is the manager's to decide (GrpcTransport::SetJoinHandler).
  grpc::Status Join(grpc::ServerContext* context, const raftpb::JoinRequest* request,
                    raftpb::JoinResponse* response) override {
    GrpcTransport::JoinHandler join;
    {
      absl::MutexLock lock(&transport_->join_mu_);
      join = transport_->join_;
    }
    if (!join) {
      return grpc::Status(grpc::StatusCode::UNIMPLEMENTED,
                          "Raft membership is changed through the manager, not the transport");
    }
    return join(context, *request, response);
  }
  grpc::Status Leave(grpc::ServerContext*, const raftpb::LeaveRequest*,
                     raftpb::LeaveResponse*) override {
    return grpc::Status(grpc::StatusCode::UNIMPLEMENTED,
                        "Raft membership is changed through the manager, not the transport");
  }
  grpc::Status ResolveAddress(grpc::ServerContext*, const raftpb::ResolveAddressRequest*,
                              raftpb::ResolveAddressResponse*) override {
    return grpc::Status(grpc::StatusCode::UNIMPLEMENTED,
                        "member addresses are resolved by the manager, not the transport");
  }

 private:
  GrpcTransport* transport_;
};

GrpcTransport::GrpcTransport(const Options& options)
    : options_(options),
      cork_(options.cork_bursts ? std::make_unique<SocketCork>() : nullptr),
      waker_(std::make_unique<Waker>(this)) {}

void GrpcTransport::SetJoinHandler(JoinHandler handler) {
  absl::MutexLock lock(&join_mu_);
  join_ = std::move(handler);
}

void GrpcTransport::SetHandler(MessageHandler* handler) {
  absl::MutexLock lock(&handler_mu_);  // waits for the calls in progress
  handler_ = handler;
}

absl::StatusOr<std::unique_ptr<GrpcTransport>> GrpcTransport::Create(const Options& options) {
  if (options.self == 0) {
    return absl::InvalidArgumentError(
        "raft transport: Options::self must be this member's Raft id (it refuses messages "
        "addressed to any other member)");
  }
  if (options.max_batch_bytes == 0 || options.max_batch_bytes > kMaxBatchBytes) {
    return absl::InvalidArgumentError(
        absl::StrCat("raft transport: max_batch_bytes must be between 1 and ", kMaxBatchBytes,
                     " (what a member's gRPC server accepts in one message); got ",
                     options.max_batch_bytes));
  }
  if (options.keepalive_time < absl::ZeroDuration() ||
      options.keepalive_time > kMaxKeepalive ||
      (options.keepalive_time > absl::ZeroDuration() &&
       (options.keepalive_timeout <= absl::ZeroDuration() ||
        options.keepalive_timeout > kMaxKeepalive))) {
    return absl::InvalidArgumentError(absl::StrCat(
        "raft transport: keepalive_time must be zero (off) or up to ",
        absl::FormatDuration(kMaxKeepalive), ", with a keepalive_timeout above zero and up to ",
        absl::FormatDuration(kMaxKeepalive), "; got ",
        absl::FormatDuration(options.keepalive_time), " and ",
        absl::FormatDuration(options.keepalive_timeout)));
  }
  if (options.max_batch_messages == 0) {
    return absl::InvalidArgumentError("raft transport: max_batch_messages must be at least 1");
  }
  if (options.max_queued_messages == 0) {
    return absl::InvalidArgumentError(
        "raft transport: max_queued_messages must be at least 1 (0 drops every message)");
  }
  if (options.snapshot_chunk_bytes == 0 || options.snapshot_chunk_bytes > kMaxSnapshotChunkBytes) {
    return absl::InvalidArgumentError(absl::StrCat(
        "raft transport: snapshot_chunk_bytes must be between 1 and ", kMaxSnapshotChunkBytes,
        " (a chunk and its header must fit in what a member's gRPC server accepts in one "
        "message); got ", options.snapshot_chunk_bytes));
  }
  if (options.snapshot_timeout <= absl::ZeroDuration() || options.snapshot_min_rate == 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "raft transport: snapshot_timeout and snapshot_min_rate must be above zero; got ",
        absl::FormatDuration(options.snapshot_timeout), " and ", options.snapshot_min_rate,
        " bytes/s"));
  }
  std::unique_ptr<GrpcTransport> t(new GrpcTransport(options));
  for (int i = 0; i < kSnapshotSenders; ++i) {
    t->snapshotters_.emplace_back([p = t.get()] {
      SetThreadName("raft-snapshot");
      if (p->options_.batch_threads) TryRunAsBatchThread("raft");
      p->SnapshotLoop();
    });
  }
  return t;
}

GrpcTransport::~GrpcTransport() {
  bool idle = true;
  {
    // From now on nothing starts an operation on the queue (RunningLocked, Wake).
    {
      absl::MutexLock wake_lock(&wake_mu_);
      wake_closed_ = true;
    }
    absl::MutexLock lock(&mu_);
    stopping_ = true;
    for (auto& [id, peer] : peers_) {
      if (peer->ctx) peer->ctx->TryCancel();
      idle = idle && peer->pending_ops == 0;
    }
    for (auto& peer : retired_) {
      if (peer->ctx) peer->ctx->TryCancel();
      idle = idle && peer->pending_ops == 0;
    }
    for (grpc::ClientContext* call : snapshot_calls_) call->TryCancel();
  }
  if (poller_.joinable()) {
    // The transport's thread shuts the queue down once the last of its streams' operations
    // completes, and ends once the queue is drained (the served streams' operations, failed
    // by the server's shutdown, with it).
    if (idle) cq_->Shutdown();
    poller_.join();
  } else if (server_queue_ != nullptr) {
    // Attached and never started: no operation was ever put on the queue.
    server_queue_->Shutdown();
    void* tag;
    bool ok;
    while (server_queue_->Next(&tag, &ok)) {
    }
  }
  for (std::thread& t : snapshotters_) t.join();
}

// One stream a peer writes to this member (StreamMessages), on the transport's thread from
// its acceptance to its end: each batch read is handed to the node, and the next read starts
// once it is. Every operation is started under mu_ and not once the transport is stopping:
// its queue may be shut down from then on.
class GrpcTransport::StreamCall final : public CqTag {
 public:
  // Asks the server for the next stream (under mu_, while running).
  explicit StreamCall(GrpcTransport* t) : transport_(t), reader_(&ctx_) {
    t->service_->RequestStreamMessages(&ctx_, &reader_, t->server_queue_.get(),
                                       t->server_queue_.get(), this);
  }

  void Proceed(bool ok) override {
    switch (state_) {
      case State::kRequested:
        Accepted(ok);
        return;
      case State::kReading:
        Read(ok);
        return;
      case State::kFinishing:
        delete this;
        return;
    }
  }

 private:
  enum class State { kRequested, kReading, kFinishing };

  void Accepted(bool ok) {
    if (!ok) {  // the server is shutting down: no more streams
      delete this;
      return;
    }
    {
      absl::MutexLock lock(&transport_->mu_);
      if (!transport_->RunningLocked()) {
        delete this;  // the context's end cancels the stream
        return;
      }
      new StreamCall(transport_);  // the next peer's
    }
    auto it = ctx_.client_metadata().find(kFromKey);
    uint64_t from = 0;
    if (it != ctx_.client_metadata().end() &&
        absl::SimpleAtoi(absl::string_view(it->second.data(), it->second.size()), &from)) {
      // The stream's sender, for good: a forwarded transfer or read names another member in
      // its `from` (the transferee, the reader).
      from_ = from;
      if (transport_->IsRemoved(from)) {
        Refuse(from);
        return;
      }
    }
    ReadNext();
  }

  void Read(bool ok) {
    if (!ok) {
      // The peer's stream ended: it stopped, died, or the network to it broke. Say so at once
      // (a follower whose leader vanished then elects a new one without waiting out its
      // timeout).
      if (from_ != 0) {
        transport_->WithHandler([&](MessageHandler& h) { h.ReportUnreachable(from_); });
      }
      Finish(grpc::Status::OK);
      return;
    }
    const uint64_t self = transport_->options_.self;
    for (const raftpb::Message& m : batch_.messages()) {
      if (m.to() != self) {
        // This address is another member's now (a manager replaced at the same address, a
        // sender with a stale membership). Its messages must not be stepped here: a
        // heartbeat's commit index, say, is computed from its addressee's log. Refusing the
        // stream makes the sender report its peer unreachable.
        grpc::Status refused = MisaddressedStatus(m, self);
        const uint64_t n = transport_->misaddressed_.fetch_add(1) + 1;
        if ((n & (n - 1)) == 0) {  // the sender retries at every heartbeat: log a few
          log::Warning("raft", "refused a stream of messages for another member",
                       {{"error", refused.error_message()}, {"refused_so_far", n}});
        }
        Finish(refused);
        return;
      }
    }
    if (from_ == 0) {
      // A sender that does not name itself in the metadata: the first message that is its own
      // (not a request it passes on) does.
      for (const raftpb::Message& m : batch_.messages()) {
        if (m.type() != raftpb::MSG_TRANSFER_LEADER && m.type() != raftpb::MSG_READ_INDEX) {
          from_ = m.from();
          break;
        }
      }
    }
    if (from_ != 0 && transport_->IsRemoved(from_)) {
      // A member that was away when it was removed: it learns it from the refusal. Its
      // messages are not stepped (the core would only answer them with the same news).
      Refuse(from_);
      return;
    }
    // Appends held for the sender go now (before its messages are delivered: a test then
    // knows, once the handler has a message, that the answer was counted).
    if (from_ != 0) transport_->AnsweredBy(from_);
    transport_->WithHandler([&](MessageHandler& h) {  // none: not started, as if lost
      for (raftpb::Message& m : *batch_.mutable_messages()) h.Receive(std::move(m));
    });
    batch_.Clear();
    ReadNext();
  }

  void ReadNext() {
    absl::MutexLock lock(&transport_->mu_);
    if (!transport_->RunningLocked()) {
      delete this;
      return;
    }
    state_ = State::kReading;
    reader_.Read(&batch_, this);
  }

  // A member that was removed from the cluster: it learns it from the refusal.
  void Refuse(uint64_t from) {
    const uint64_t n = transport_->refused_removed_.fetch_add(1) + 1;
    if ((n & (n - 1)) == 0) {  // it retries until it learns: log a few
      log::Warning("raft", "refused a stream from a member removed from the cluster",
                   {{"from", from}, {"refused_so_far", n}});
    }
    ctx_.AddTrailingMetadata(kRemovedKey, std::to_string(from));
    Finish(RemovedStatus(from));
  }

  void Finish(const grpc::Status& status) {
    absl::MutexLock lock(&transport_->mu_);
    if (!transport_->RunningLocked()) {
      delete this;
      return;
    }
    state_ = State::kFinishing;
    if (status.ok()) {
      reader_.Finish(response_, status, this);
    } else {
      reader_.FinishWithError(status, this);
    }
  }

  GrpcTransport* transport_;
  grpc::ServerContext ctx_;
  grpc::ServerAsyncReader<raftpb::StreamMessagesResponse, raftpb::MessageBatch> reader_;
  raftpb::StreamMessagesResponse response_;
  raftpb::MessageBatch batch_;
  uint64_t from_ = 0;
  State state_ = State::kRequested;
};

void GrpcTransport::ConfigureServer(grpc::ServerBuilder& builder) {
  builder.AddChannelArgument(GRPC_ARG_HTTP2_MAX_PING_STRIKES, 0);  // 0: no limit
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 1);
}

void GrpcTransport::AttachToServer(grpc::ServerBuilder& builder) {
  absl::MutexLock lock(&mu_);
  SHOAL_CHECK(!started_, "GrpcTransport::AttachToServer after Start");
  if (server_queue_ != nullptr) {
    // The previous builder failed to build (its server is gone): its queue never carried an
    // operation. gRPC registers an asynchronous service with one server only, ever: a new one.
    server_queue_->Shutdown();
    void* tag;
    bool ok;
    while (server_queue_->Next(&tag, &ok)) {
    }
  }
  service_ = std::make_unique<RaftServiceImpl>(this);
  ConfigureServer(builder);
  builder.RegisterService(service_.get());
  server_queue_ = builder.AddCompletionQueue();
}

void GrpcTransport::Start() {
  absl::MutexLock lock(&mu_);
  SHOAL_CHECK(!started_, "GrpcTransport::Start called twice");
  if (stopping_) return;
  if (server_queue_ != nullptr) {
    cq_ = server_queue_.get();
    new StreamCall(this);
  } else {
    own_queue_ = std::make_unique<grpc::CompletionQueue>();
    cq_ = own_queue_.get();
  }
  started_ = true;
  {
    absl::MutexLock wake_lock(&wake_mu_);
    wake_closed_ = false;  // Wake may set its alarm from now on
  }
  poller_ = std::thread([this] {
    SetThreadName("raft-io");
    if (options_.batch_threads) TryRunAsBatchThread("raft");
    PollLoop();
  });
  // Streams to the peers added before now, and to those with messages waiting.
  for (auto& [id, peer] : peers_) {
    if (peer->state == Peer::State::kNone) StartStreamLocked(*peer);
  }
}

void GrpcTransport::AddPeer(uint64_t id, const std::string& addr) {
  // Whether the old address's stream carried messages that may not have arrived.
  bool may_have_lost = false;
  {
    absl::MutexLock lock(&mu_);
    may_have_lost = AddPeerLocked(id, addr);
  }
  if (may_have_lost) WithHandler([&](MessageHandler& h) { h.ReportUnreachable(id); });
}

bool GrpcTransport::AddPeerLocked(uint64_t id, const std::string& addr) {
  if (removed_.count(id) != 0) return false;  // ids are never reused: it stays refused
  auto it = peers_.find(id);
  if (it != peers_.end() && it->second->addr == addr) return false;
  std::deque<raftpb::Message> waiting;
  bool may_have_lost = false;
  if (it != peers_.end()) {
    // New address: retire the old stream, kept until its operations complete (a peer with none
    // kept among the retired would never leave, and the transport could not shut down). What
    // waited for that stream is for the same member and goes to its new address: dropped, it
    // was reported to nobody when the old stream was idle or still starting (a retired
    // stream's end reports nothing), and a vote or an append waited for a timeout. A batch in
    // flight on the old stream may or may not have arrived: its cancelled write reports the
    // peer unreachable, and Raft resends what matters. So may a batch whose write completed:
    // a write completes once gRPC has taken it, not once the peer has read it, and the
    // cancellation discards what the peer had not read yet (an old address that stopped
    // reading, a connection already dead): the peer is reported unreachable here, or that
    // batch was lost without a word.
    may_have_lost = it->second->ctx != nullptr && it->second->wrote;
    waiting = std::move(it->second->queue);
    it->second->queue.clear();
    if (it->second->ctx) it->second->ctx->TryCancel();
    it->second->removed = true;
    if (it->second->pending_ops > 0) retired_.push_back(std::move(it->second));
    peers_.erase(it);
  }
  auto peer = std::make_unique<Peer>();
  peer->transport = this;
  peer->queue = std::move(waiting);
  peer->id = id;
  peer->addr = addr;
  auto creds = options_.channel_credentials ? options_.channel_credentials
                                            : grpc::InsecureChannelCredentials();
  grpc::ChannelArguments args;
  // Reconnect quickly after a peer restarts: Raft's own heartbeats pace the retries.
  args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 100);
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 1000);
  // Despite its name, how long one connection attempt (TCP, TLS handshake) may take. It was
  // 100 ms: a handshake on a busy machine or over a slow link timed out, was logged as an error
  // and retried, and over a link slower than ~300 ms each way never completed at all.
  args.SetInt(GRPC_ARG_MIN_RECONNECT_BACKOFF_MS, kConnectTimeoutMs);
  if (options_.keepalive_time > absl::ZeroDuration()) {
    args.SetInt(GRPC_ARG_KEEPALIVE_TIME_MS,
                static_cast<int>(absl::ToInt64Milliseconds(options_.keepalive_time)));
    args.SetInt(GRPC_ARG_KEEPALIVE_TIMEOUT_MS,
                static_cast<int>(absl::ToInt64Milliseconds(options_.keepalive_timeout)));
    args.SetInt(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 1);
    // However long since this side last sent a message (a learner may have nothing to say).
    args.SetInt(GRPC_ARG_HTTP2_MAX_PINGS_WITHOUT_DATA, 0);
  }
  if (!options_.tls_server_name.empty()) args.SetSslTargetNameOverride(options_.tls_server_name);
  peer->channel = grpc::CreateCustomChannel(addr, creds, args);
  peer->stub = raftpb::Raft::NewStub(peer->channel);
  // Connected at once, not at the first message: the first message does not wait for the
  // connection, and a removed member learns it even with nothing to send.
  if (RunningLocked()) StartStreamLocked(*peer);  // else at Start
  peers_[id] = std::move(peer);
  return may_have_lost;
}

bool GrpcTransport::IsRemoved(uint64_t id) {
  if (!any_removed_.load(std::memory_order_acquire)) return false;
  absl::MutexLock lock(&mu_);
  return removed_.count(id) != 0;
}

bool GrpcTransport::RefusedAsRemoved(const grpc::ClientContext& ctx) const {
  const auto& trailers = ctx.GetServerTrailingMetadata();
  auto it = trailers.find(kRemovedKey);
  return it != trailers.end() &&
         std::string(it->second.data(), it->second.size()) == std::to_string(options_.self);
}

void GrpcTransport::DeliverRemoved(uint64_t peer) {
  raftpb::Message m;
  m.set_type(raftpb::MSG_REMOVED);
  m.set_from(peer);
  m.set_to(options_.self);
  WithHandler([&](MessageHandler& h) { h.Receive(std::move(m)); });
}

void GrpcTransport::RemovePeer(uint64_t id) {
  absl::MutexLock lock(&mu_);
  removed_.insert(id);
  any_removed_.store(true, std::memory_order_release);
  auto it = peers_.find(id);
  if (it == peers_.end()) return;
  if (it->second->ctx) it->second->ctx->TryCancel();
  it->second->removed = true;
  if (it->second->pending_ops > 0) retired_.push_back(std::move(it->second));
  peers_.erase(it);
}

void GrpcTransport::Send(std::vector<raftpb::Message> messages) {
  std::vector<uint64_t> unreachable;
  std::vector<uint64_t> failed_snapshots;
  {
    absl::MutexLock lock(&mu_);
    if (stopping_) return;
    std::vector<Peer*> touched;
    for (raftpb::Message& m : messages) {
      auto it = peers_.find(m.to());
      if (it == peers_.end()) {
        unreachable.push_back(m.to());
        // The core holds that follower in snapshot state until told how the send went, and
        // "unreachable" does not end that state: without this it waited for a new leader.
        if (m.type() == raftpb::MSG_SNAP) failed_snapshots.push_back(m.to());
        continue;
      }
      if (m.type() == raftpb::MSG_SNAP) {
        snapshots_.push_back(std::move(m));
        continue;
      }
      Peer& peer = *it->second;
      if (m.type() == raftpb::MSG_APP && m.entries_size() > 0 &&
          (peer.awaiting_answer || !peer.queue.empty())) {
        ++peer.late_appends;  // it cannot go alone, at once (see Peer::holding)
      }
      peer.queue.push_back(std::move(m));
      if (peer.queue.size() > options_.max_queued_messages) {
        peer.queue.pop_front();
        unreachable.push_back(peer.id);
      }
      touched.push_back(&peer);
    }
    for (Peer* peer : touched) {
      if (peer->state == Peer::State::kNone) {
        if (RunningLocked()) StartStreamLocked(*peer);  // else at Start
      } else if (peer->state == Peer::State::kIdle) {
        WriteNextLocked(*peer);
      }
    }
  }
  if (!unreachable.empty()) {
    WithHandler([&](MessageHandler& h) {
      for (uint64_t id : unreachable) h.ReportUnreachable(id);
      for (uint64_t id : failed_snapshots) h.ReportSnapshot(id, /*failed=*/true);
    });
  }
}

// Only while running (RunningLocked, or from Start): cq_ is the queue Start chose, and the
// transport's thread polls it. A peer added or sent to before Start waits in kNone for Start.
void GrpcTransport::StartStreamLocked(Peer& peer) {
  peer.ctx = std::make_unique<grpc::ClientContext>();
  peer.ctx->AddMetadata(kFromKey, std::to_string(options_.self));
  peer.response.Clear();
  peer.server_done = false;
  peer.wrote = false;
  peer.awaiting_answer = false;
  peer.late_appends = 0;
  peer.writer = peer.stub->PrepareAsyncStreamMessages(peer.ctx.get(), &peer.response, cq_);
  peer.state = Peer::State::kStarting;
  ++peer.pending_ops;
  peer.writer->StartCall(&peer.start_op);
  ++peer.pending_ops;
  peer.writer->ReadInitialMetadata(&peer.server_done_op);
}

void GrpcTransport::WriteNextLocked(Peer& peer) {
  if (peer.server_done && !stopping_) {
    BreakStreamLocked(peer);
    return;
  }
  if (peer.queue.empty() || stopping_ || HoldLocked(peer)) {
    peer.state = Peer::State::kIdle;
    return;
  }
  peer.in_flight.Clear();
  size_t bytes = 0;
  while (!peer.queue.empty() &&
         static_cast<size_t>(peer.in_flight.messages_size()) < options_.max_batch_messages) {
    // Framing of one message in the batch: a tag and a length, at most 11 bytes.
    const size_t size = peer.queue.front().ByteSizeLong() + 11;
    if (peer.in_flight.messages_size() > 0 && bytes + size > options_.max_batch_bytes) break;
    bytes += size;
    // An append without entries (a new commit index) asks for no sync: nothing waits for
    // its answer, so that one client's next proposal does not wait for a round trip.
    const raftpb::Message& m = peer.queue.front();
    if (m.type() == raftpb::MSG_APP && m.entries_size() > 0) peer.awaiting_answer = true;
    *peer.in_flight.add_messages() = std::move(peer.queue.front());
    peer.queue.pop_front();
  }
  peer.state = Peer::State::kWriting;
  peer.wrote = true;
  ++peer.pending_ops;
  peer.writer->Write(peer.in_flight, &peer.write_op);
}

bool GrpcTransport::HoldLocked(const Peer& peer) const {
  if (!peer.awaiting_answer || !peer.holding || !options_.hold_appends) return false;
  if (peer.queue.size() >= options_.max_batch_messages) return false;
  size_t bytes = 0;
  for (const raftpb::Message& m : peer.queue) {
    if (m.type() != raftpb::MSG_APP) return false;
    bytes += m.ByteSizeLong();
    if (bytes >= kHoldBytes) return false;
  }
  return true;
}

size_t GrpcTransport::AwaitHeld(uint64_t peer, size_t n, absl::Duration within) {
  absl::MutexLock lock(&mu_);
  auto held = [&]() ABSL_NO_THREAD_SAFETY_ANALYSIS -> size_t {
    auto it = peers_.find(peer);
    if (it == peers_.end()) return 0;
    const Peer& p = *it->second;
    return p.state == Peer::State::kIdle && HoldLocked(p) ? p.queue.size() : 0;
  };
  auto enough = [&]() ABSL_NO_THREAD_SAFETY_ANALYSIS { return held() >= n; };
  mu_.AwaitWithTimeout(absl::Condition(&enough), within);
  return held();
}

void GrpcTransport::AnsweredBy(uint64_t id) {
  absl::MutexLock lock(&mu_);
  auto it = peers_.find(id);
  if (it == peers_.end()) return;
  Peer& peer = *it->second;
  if (!peer.awaiting_answer) return;
  peer.holding = peer.late_appends >= 2;
  peer.late_appends = 0;
  peer.awaiting_answer = false;
  if (peer.state == Peer::State::kIdle && !peer.queue.empty() && !peer.removed && !stopping_) {
    WriteNextLocked(peer);
  }
}

void GrpcTransport::BreakStreamLocked(Peer& peer) {
  peer.state = Peer::State::kFinishing;
  ++peer.pending_ops;
  peer.writer->Finish(&peer.finish_status, &peer.finish_op);
}

void GrpcTransport::PollLoop() {
  void* tag = nullptr;
  bool ok = false;
  while (cq_->Next(&tag, &ok)) {
    static_cast<CqTag*>(tag)->Proceed(ok);
    if (loop_handed_over_.load(std::memory_order_acquire)) {
      std::function<void()> loop;
      {
        absl::MutexLock lock(&mu_);
        loop.swap(hosted_loop_);
        loop_handed_over_.store(false, std::memory_order_relaxed);
      }
      if (loop) loop();  // until the node stops, polling with Poll
    }
  }
}

LoopHost* GrpcTransport::loop_host() {
  absl::MutexLock lock(&mu_);
  return RunningLocked() ? this : nullptr;
}

void GrpcTransport::RunLoop(std::function<void()> loop) {
  {
    absl::MutexLock lock(&mu_);
    hosted_loop_ = std::move(loop);
    loop_handed_over_.store(true, std::memory_order_release);
  }
  Wake();
}

void GrpcTransport::Poll() {
  void* tag = nullptr;
  bool ok = false;
  SHOAL_CHECK(cq_->Next(&tag, &ok),
              "raft transport destroyed while its node ran: stop the node first");
  static_cast<CqTag*>(tag)->Proceed(ok);
  // And whatever else is ready now, so that the node steps it as one batch: returning after
  // each message made the loop take one proposal or acknowledgement per Ready (a fifth of
  // the throughput at 64 clients).
  const gpr_timespec now = gpr_time_0(GPR_CLOCK_MONOTONIC);
  for (int i = 0; i < kMaxPolledAtOnce; ++i) {
    if (cq_->AsyncNext(&tag, &ok, now) != grpc::CompletionQueue::GOT_EVENT) return;
    static_cast<CqTag*>(tag)->Proceed(ok);
  }
}

void GrpcTransport::BeginBurst() {
  if (cork_ != nullptr) cork_->Cork();
}

void GrpcTransport::EndBurst() {
  if (cork_ != nullptr) cork_->Uncork();
}

void GrpcTransport::Wake() {
  absl::MutexLock lock(&wake_mu_);
  // One alarm at a time: the one set ends the wait all the same.
  if (wake_pending_ || wake_closed_) return;
  wake_pending_ = true;
  waker_->Set(cq_);
}

void GrpcTransport::OnOp(Op* op, bool ok) {
  std::vector<uint64_t> unreachable;
  uint64_t removed_by = 0;  // a peer that refused this member as removed
  bool shutdown = false;
  {
    absl::MutexLock lock(&mu_);
    Peer& peer = *op->peer;
    --peer.pending_ops;
    switch (op->kind) {
      case Op::kStart:
        if (ok && !peer.removed && !stopping_) {
          WriteNextLocked(peer);
        } else {
          BreakStreamLocked(peer);
        }
        break;
      case Op::kWrite:
        if (ok && !peer.removed && !stopping_) {
          WriteNextLocked(peer);
        } else {
          // What was in flight may or may not have arrived; Raft resends what matters.
          unreachable.push_back(peer.id);
          BreakStreamLocked(peer);
        }
        break;
      case Op::kServerDone:
        if (peer.state == Peer::State::kIdle && !stopping_) {
          BreakStreamLocked(peer);
        } else {
          peer.server_done = true;  // finished once the start or write in flight completes
        }
        break;
      case Op::kFinish:
        peer.finish_done = true;
        break;
    }
    // The stream is over once its finish and its wait for the server's metadata have both
    // completed (in either order): only then may its call be destroyed.
    if (peer.state == Peer::State::kFinishing && peer.finish_done && peer.pending_ops == 0) {
      if (!peer.finish_status.ok() && RefusedAsRemoved(*peer.ctx)) removed_by = peer.id;
      peer.writer.reset();
      peer.ctx.reset();
      peer.finish_done = false;
      peer.state = Peer::State::kNone;
      if (!peer.removed && !stopping_ && (!peer.queue.empty() || !peer.finish_status.ok())) {
        // The peer is not taking messages (it refused the stream, stopped or cannot be
        // reached; what was written last may not have been stepped): drop what waits rather
        // than spin reconnecting; the core probes it again at the next heartbeat.
        peer.queue.clear();
        unreachable.push_back(peer.id);
      }
    }
    if (peer.removed && peer.pending_ops == 0) {
      for (auto it = retired_.begin(); it != retired_.end(); ++it) {
        if (it->get() == &peer) {
          retired_.erase(it);
          break;
        }
      }
    }
    if (stopping_) {
      shutdown = retired_.empty();
      for (auto& [id, p] : peers_) shutdown = shutdown && p->pending_ops == 0;
    }
  }
  if (!unreachable.empty()) {
    WithHandler([&](MessageHandler& h) {
      for (uint64_t id : unreachable) h.ReportUnreachable(id);
    });
  }
  if (removed_by != 0) DeliverRemoved(removed_by);
  if (shutdown) cq_->Shutdown();
}

void GrpcTransport::SnapshotLoop() {
  for (;;) {
    raftpb::Message m;
    {
      absl::MutexLock lock(&mu_);
      mu_.Await(absl::Condition(
          +[](GrpcTransport* t)
               ABSL_NO_THREAD_SAFETY_ANALYSIS { return t->stopping_ || !t->snapshots_.empty(); },
          this));
      if (stopping_) return;
      m = std::move(snapshots_.front());
      snapshots_.pop_front();
    }
    SendSnapshot(std::move(m));
  }
}

absl::Duration SnapshotTimeout(const GrpcTransport::Options& options, uint64_t bytes) {
  return options.snapshot_timeout +
         absl::Seconds(static_cast<double>(bytes) / static_cast<double>(options.snapshot_min_rate));
}

void GrpcTransport::SendSnapshot(raftpb::Message header) {
  const uint64_t to = header.to();
  // The data leaves the message, which goes on as the header: copying the message whole, as
  // this did, held the state twice over for every snapshot in flight.
  const std::string data = std::move(*header.mutable_snapshot()->mutable_data());
  header.mutable_snapshot()->clear_data();
  std::shared_ptr<grpc::Channel> channel;
  grpc::ClientContext ctx;
  // However big the snapshot: a fixed limit let a big one over a slow link fail, and be sent
  // again from the start, for ever.
  ctx.set_deadline(absl::ToChronoTime(absl::Now() + SnapshotTimeout(options_, data.size())));
  {
    absl::MutexLock lock(&mu_);
    auto it = peers_.find(to);
    if (it != peers_.end() && !stopping_) {
      channel = it->second->channel;
      snapshot_calls_.insert(&ctx);  // cancelled (even before it starts) at destruction
    }
  }
  if (!channel) {
    WithHandler([&](MessageHandler& h) { h.ReportSnapshot(to, true); });
    return;
  }
  auto stub = raftpb::Raft::NewStub(channel);
  raftpb::InstallSnapshotResponse response;
  std::unique_ptr<grpc::ClientWriter<raftpb::SnapshotChunk>> writer =
      stub->InstallSnapshot(&ctx, &response);
  const bool ok = ForEachSnapshotChunk(
      header, data, options_.snapshot_chunk_bytes,
      [&](const raftpb::SnapshotChunk& chunk) { return writer->Write(chunk); });
  if (ok) writer->WritesDone();
  const grpc::Status status = writer->Finish();
  {
    absl::MutexLock lock(&mu_);
    snapshot_calls_.erase(&ctx);
  }
  if (!status.ok()) {
    log::Warning("raft", "snapshot send failed", {{"to", to}, {"error", status.error_message()}});
    if (RefusedAsRemoved(ctx)) DeliverRemoved(to);
  }
  WithHandler([&](MessageHandler& h) { h.ReportSnapshot(to, !status.ok()); });
}

}  // namespace shoal::raft
