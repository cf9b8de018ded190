// The Shoal side of the Raft benchmark (issue #3), comparable with deploy/bench-etcd.sh:
//
//   bazel run -c opt //raft:bench -- --nodes 3 --clients 64 --value-bytes 256 --seconds 10
//   bazel run -c opt //raft:bench -- --kill-leader-rounds 20
//
// The driver starts --nodes member processes (this binary with --member), each a real Raft
// member: node loop, gRPC transport on loopback, RocksDB on disk with synced writes, default
// timing (tick 100 ms, election after 10-20 ticks). Clients send each proposal over gRPC to the
// leader and wait until it is applied there, as etcd clients wait for a Put; one JSON line is
// printed. With --kill-leader-rounds, the leader is killed with SIGKILL N times under a steady
// proposer; the time from each kill to the next committed proposal is reported, the killed
// member is restarted from its disk, and at the end every acknowledged proposal is checked to
// be present on every member.
#include <arpa/inet.h>
#include <grpcpp/grpcpp.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/vfs.h>
#include <sys/wait.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "common/log.h"
#include "raft/bench/async_unary.h"
#include "raft/bench/id_set.h"
#include "raft/bench/load.h"
#include "raft/bench/raft_bench.grpc.pb.h"
#include "raft/grpc_transport.h"
#include "raft/node.h"
#include "raft/rocksdb_log_store.h"

namespace shoal::raft::bench {
namespace {

constexpr size_t kIdBytes = IdSetStateMachine::kIdBytes;

// ---- member process ----

std::atomic<bool> g_stop{false};

// Propose is served on gRPC's asynchronous API, on the Raft transport's completion queue
// (GrpcTransport::queue()): the transport's one thread reads the calls and sends the answers,
// so the member has no other thread polling gRPC's sockets (with the callback API, as before,
// gRPC's own threads and the transport's took turns and woke one another). No thread waits
// for an entry to be applied: the node's completion finishes the call (the sync API's pool let
// about ten through at a time and queued the rest).
//
// With answer_at_once (raft_bench --answer-at-once) a proposal is answered as it arrives, on
// the transport's thread, and never reaches Raft: what the benchmark's gRPC calls alone cost on this
// host, the ceiling no Raft behind the same calls can pass.
class BenchService final
    : public raftbench::RaftBench::WithAsyncMethod_Propose<raftbench::RaftBench::Service> {
 public:
  BenchService(Node* node, IdSetStateMachine* sm, bool answer_at_once)
      : node_(node), sm_(sm), answer_at_once_(answer_at_once) {}

  // One Propose call, from its acceptance to its answer.
  class Call final : public GrpcTransport::CqTag {
   public:
    Call(BenchService* s, grpc::ServerCompletionQueue* q) : s_(s), q_(q), responder_(&ctx_) {
      s->RequestPropose(&ctx_, &req_, &responder_, q, q, this);
    }
    void Proceed(bool ok) override {
      if (finishing_ || !ok) {
        delete this;
        return;
      }
      // Not once the member is stopping: its server shuts down, then the transport's queue.
      if (!g_stop.load()) new Call(s_, q_);
      finishing_ = true;
      if (s_->answer_at_once_) {
        responder_.Finish(resp_, grpc::Status::OK, this);
        return;
      }
      s_->node_->Propose(req_.value(), [this](absl::StatusOr<uint64_t> index) {
        if (!index.ok()) {
          responder_.FinishWithError(
              grpc::Status(static_cast<grpc::StatusCode>(index.status().code()),
                           std::string(index.status().message())),
              this);
          return;
        }
        resp_.set_index(*index);
        responder_.Finish(resp_, grpc::Status::OK, this);
      });
    }

   private:
    BenchService* s_;
    grpc::ServerCompletionQueue* q_;
    grpc::ServerContext ctx_;
    raftbench::ProposeRequest req_;
    raftbench::ProposeResponse resp_;
    grpc::ServerAsyncResponseWriter<raftbench::ProposeResponse> responder_;
    bool finishing_ = false;
  };

  grpc::Status Status(grpc::ServerContext*, const raftbench::StatusRequest*,
                      raftbench::StatusResponse* resp) override {
    const Node::Status s = node_->GetStatus();
    resp->set_id(s.id);
    resp->set_leader(s.leader);
    resp->set_term(s.term);
    resp->set_is_leader(s.role == Role::kLeader);
    resp->set_applied(s.applied);
    return grpc::Status::OK;
  }
  grpc::Status Count(grpc::ServerContext*, const raftbench::CountRequest* req,
                     raftbench::CountResponse* resp) override {
    resp->set_present(sm_->Count(req->ids()));
    return grpc::Status::OK;
  }

 private:
  Node* node_;
  IdSetStateMachine* sm_;
  const bool answer_at_once_;
};

int RunMember(uint64_t id, const std::string& dir, const std::string& peers_flag, int raft_port,
              int bench_port, bool restarted, bool answer_at_once) {
  signal(SIGTERM, [](int) { g_stop = true; });
  RocksDbLogStore::Options so;
  so.path = dir;
  so.create_if_missing = !restarted;  // as a manager restarting: its store must be there
  auto store = RocksDbLogStore::Open(so);
  if (!store.ok()) {
    std::fprintf(stderr, "member %lu: %s\n", (unsigned long)id, store.status().ToString().c_str());
    return 1;
  }
  std::map<uint64_t, std::string> peers;
  std::vector<raftpb::RaftMember> members;
  for (absl::string_view p : absl::StrSplit(peers_flag, ',')) {
    std::pair<std::string, std::string> kv = absl::StrSplit(p, '=');
    const uint64_t pid = std::stoull(kv.first);
    peers[pid] = kv.second;
    raftpb::RaftMember& m = members.emplace_back();
    m.set_raft_id(pid);
    m.set_addr(kv.second);
  }
  if ((*store)->LastIndex() == 0) {  // a new cluster (a restarted member has its log)
    absl::Status s = Bootstrap(**store, members);
    if (!s.ok()) {
      std::fprintf(stderr, "member %lu: %s\n", (unsigned long)id, s.ToString().c_str());
      return 1;
    }
  }
  GrpcTransport::Options topts;
  topts.self = id;
  auto transport = std::move(*GrpcTransport::Create(topts));
  IdSetStateMachine sm;
  Node::Options no;
  no.raft.id = id;
  no.storage = store->get();
  no.transport = transport.get();
  no.state_machine = &sm;
  auto node = Node::Create(no);
  if (!node.ok()) {
    std::fprintf(stderr, "member %lu: %s\n", (unsigned long)id, node.status().ToString().c_str());
    return 1;
  }
  BenchService bench(node->get(), &sm, answer_at_once);
  grpc::ServerBuilder builder;
  builder.AddListeningPort(absl::StrCat("127.0.0.1:", raft_port),
                           grpc::InsecureServerCredentials());
  builder.AddListeningPort(absl::StrCat("127.0.0.1:", bench_port),
                           grpc::InsecureServerCredentials());
  transport->AttachToServer(builder);
  builder.RegisterService(&bench);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (!server) {
    std::fprintf(stderr, "member %lu: cannot listen on %d/%d\n", (unsigned long)id, raft_port,
                 bench_port);
    return 1;
  }
  transport->Start();
  // Calls accepted ahead: a client's next call need not wait for its acceptance to be asked.
  for (int i = 0; i < 8; ++i) new BenchService::Call(&bench, transport->queue());
  for (const auto& [pid, addr] : peers) {
    if (pid != id) transport->AddPeer(pid, addr);
  }
  (*node)->Start();
  while (!g_stop) absl::SleepFor(absl::Milliseconds(50));  // waiting for SIGTERM
  const Node::Status st = (*node)->GetStatus();
  std::fprintf(stderr,
               "member %lu: %s, %lu readies, %lu synced writes (mean %.3f ms), %lu entries "
               "written, %lu messages sent\n",
               (unsigned long)id, RoleName(st.role), (unsigned long)st.readies,
               (unsigned long)st.synced_writes,
               st.synced_writes ? st.write_micros / 1000.0 / st.synced_writes : 0.0,
               (unsigned long)st.entries_written, (unsigned long)st.messages_sent);
  (*node)->Stop();
  server->Shutdown(std::chrono::system_clock::now() + std::chrono::milliseconds(200));
  // GrpcTransport's order: the transport (whose destructor drains its queue) before the server.
  node->reset();
  transport.reset();
  return 0;
}

// ---- driver ----

// What an interrupted driver (Ctrl-C, SIGTERM, a closed terminal) must clean up: its running
// members and its data directory. Without this the directory stayed behind in TMPDIR (the
// members went, through PR_SET_PDEATHSIG). A SIGKILLed driver still leaves its directory.
struct Cleanup {
  std::mutex mu;
  std::string dir;
  std::map<uint64_t, pid_t> members;  // running: member id -> pid
};
Cleanup g_cleanup;

// Blocks the interrupting signals in this thread and every thread made after it (gRPC's
// included), and waits for them on a thread of its own: the first one kills the members,
// removes the directory and ends the process with 128 + the signal, as a shell reports it.
void HandleInterrupts() {
  sigset_t set;
  sigemptyset(&set);
  for (int sig : {SIGINT, SIGTERM, SIGHUP}) sigaddset(&set, sig);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  std::thread([set] {
    int sig = 0;
    if (sigwait(&set, &sig) != 0) return;
    std::lock_guard<std::mutex> lock(g_cleanup.mu);
    std::fprintf(stderr, "raft_bench: interrupted (signal %d): stopping the members, removing %s\n",
                 sig, g_cleanup.dir.c_str());
    for (const auto& [id, pid] : g_cleanup.members) kill(pid, SIGKILL);
    for (const auto& [id, pid] : g_cleanup.members) waitpid(pid, nullptr, 0);
    if (!g_cleanup.dir.empty()) {
      std::error_code ignored;
      std::filesystem::remove_all(g_cleanup.dir, ignored);
    }
    std::fflush(nullptr);
    _exit(128 + sig);
  }).detach();
}

// A port the kernel picks on 127.0.0.1 (free now; the member binds it right after).
int FreePort() {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  socklen_t len = sizeof(addr);
  if (fd < 0 || bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 ||
      getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    std::perror("picking a free port");
    std::exit(1);
  }
  close(fd);
  return ntohs(addr.sin_port);
}

struct Member {
  uint64_t id;
  int raft_port;
  int bench_port;
  std::string dir;
  pid_t pid = 0;
  bool started = false;  // once: later starts are restarts from its disk
  std::unique_ptr<raftbench::RaftBench::Stub> stub;
};

class Driver {
 public:
  Driver(std::string self, int nodes, std::string base, bool answer_at_once)
      : self_(std::move(self)), base_(base), answer_at_once_(answer_at_once) {
    for (int i = 1; i <= nodes; ++i) {
      Member m;
      m.id = i;
      m.raft_port = FreePort();
      m.bench_port = FreePort();
      m.dir = absl::StrCat(base, "/m", i);
      members_.push_back(std::move(m));
    }
    std::vector<std::string> peers;
    for (const Member& m : members_)
      peers.push_back(absl::StrCat(m.id, "=127.0.0.1:", m.raft_port));
    peers_ = absl::StrJoin(peers, ",");
    for (Member& m : members_) {
      // Members are killed and restarted: reconnect quickly instead of gRPC's default backoff
      // (which grows to minutes).
      grpc::ChannelArguments args;
      args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 50);
      args.SetInt(GRPC_ARG_MIN_RECONNECT_BACKOFF_MS, 50);
      args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 200);
      m.stub = raftbench::RaftBench::NewStub(grpc::CreateCustomChannel(
          absl::StrCat("127.0.0.1:", m.bench_port), grpc::InsecureChannelCredentials(), args));
    }
  }
  ~Driver() {
    for (Member& m : members_) Stop(m.id, SIGTERM);
    std::filesystem::remove_all(base_);
  }

  void Start(uint64_t id) {
    Member& m = members_[id - 1];
    const bool restarted = m.started;
    const pid_t parent = getpid();
    const pid_t pid = fork();
    if (pid == 0) {
      // The driver blocks the interrupting signals (HandleInterrupts); a member must not: it
      // stops on SIGTERM.
      sigset_t none;
      sigemptyset(&none);
      sigprocmask(SIG_SETMASK, &none, nullptr);
      // A driver that dies (killed, or interrupted) takes its members with it: they would run
      // on, serving and holding their ports, until stopped by hand.
      prctl(PR_SET_PDEATHSIG, SIGTERM);
      if (getppid() != parent) _exit(1);  // it died before the line above
      const std::string id_s = std::to_string(id), raft_s = std::to_string(m.raft_port),
                        bench_s = std::to_string(m.bench_port);
      execl(self_.c_str(), self_.c_str(), "--member", id_s.c_str(), "--dir", m.dir.c_str(),
            "--peers", peers_.c_str(), "--raft-port", raft_s.c_str(), "--bench-port",
            bench_s.c_str(), "--restarted", restarted ? "1" : "0",
            answer_at_once_ ? "--answer-at-once" : static_cast<char*>(nullptr),
            static_cast<char*>(nullptr));
      _exit(127);
    }
    m.pid = pid;
    m.started = true;
    std::lock_guard<std::mutex> lock(g_cleanup.mu);
    g_cleanup.members[id] = pid;
  }

  void Stop(uint64_t id, int sig) {
    Member& m = members_[id - 1];
    if (m.pid <= 0) return;
    // Held while the member stops: an interrupt meanwhile waits, and then finds it gone.
    std::lock_guard<std::mutex> lock(g_cleanup.mu);
    g_cleanup.members.erase(id);
    kill(m.pid, sig);
    int status = 0;
    // A member that does not stop within 10 s of SIGTERM (hung) is killed.
    const absl::Time deadline = absl::Now() + absl::Seconds(10);
    while (waitpid(m.pid, &status, WNOHANG) == 0) {
      if (absl::Now() > deadline) {
        kill(m.pid, SIGKILL);
        waitpid(m.pid, &status, 0);
        break;
      }
      absl::SleepFor(absl::Milliseconds(10));  // polling a child's exit
    }
    m.pid = 0;
  }

  // The leader as seen by the running members, once one believes it leads; 0 at the deadline.
  uint64_t FindLeader(absl::Time deadline, uint64_t exclude = 0) {
    while (absl::Now() < deadline) {
      for (Member& m : members_) {
        if (m.pid <= 0 || m.id == exclude) continue;
        grpc::ClientContext ctx;
        ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::milliseconds(200));
        raftbench::StatusResponse st;
        if (m.stub->Status(&ctx, raftbench::StatusRequest(), &st).ok() && st.is_leader()) {
          return m.id;
        }
      }
      absl::SleepFor(absl::Milliseconds(2));  // polling member status
    }
    return 0;
  }

  // Waits until member `id` answers, follows a leader and has applied `index`. At the
  // deadline, an error saying what the member last answered (or why it did not).
  absl::Status WaitCaughtUp(uint64_t id, uint64_t index, absl::Time deadline) {
    Member& m = members_[id - 1];
    std::string last = "no answer yet";
    while (absl::Now() < deadline) {
      grpc::ClientContext ctx;
      // Waiting for the connection to the restarted process: calls that failed at once while
      // it was down, 2 ms apart, kept this channel from connecting for about 15 s.
      ctx.set_wait_for_ready(true);
      ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::milliseconds(1000));
      raftbench::StatusResponse st;
      const grpc::Status called = m.stub->Status(&ctx, raftbench::StatusRequest(), &st);
      if (called.ok() && st.leader() != 0 && st.applied() >= index) return absl::OkStatus();
      last = called.ok() ? absl::StrCat("it knows leader ", st.leader(), " in term ", st.term(),
                                        " and has applied up to index ", st.applied())
                         : absl::StrCat("its status call failed: ", called.error_message());
      absl::SleepFor(absl::Milliseconds(2));  // polling member status
    }
    return absl::DeadlineExceededError(absl::StrCat(
        "member ", id, " did not follow a leader and apply index ", index, " in time; ", last,
        " (its messages are on stderr above; is the machine overloaded?)"));
  }

  raftbench::RaftBench::Stub* stub(uint64_t id) { return members_[id - 1].stub.get(); }
  int size() const { return static_cast<int>(members_.size()); }
  int bench_port(uint64_t id) const { return members_[id - 1].bench_port; }
  pid_t pid(uint64_t id) const { return members_[id - 1].pid; }

 private:
  std::string self_;
  std::string base_;
  const bool answer_at_once_;
  std::string peers_;
  std::vector<Member> members_;
};

std::string MakeValue(uint64_t client, uint64_t seq, size_t bytes) {
  std::string v(std::max(bytes, kIdBytes), 'x');
  for (int i = 0; i < 8; ++i) {
    v[i] = static_cast<char>(client >> (56 - 8 * i));
    v[8 + i] = static_cast<char>(seq >> (56 - 8 * i));
  }
  return v;
}

int RunThroughput(Driver& d, int clients, uint64_t value_bytes, int seconds,
                  const std::string& client_api, bool answer_at_once) {
  const uint64_t leader = d.FindLeader(absl::Now() + absl::Seconds(30));
  if (leader == 0) {
    std::fprintf(stderr, "no leader elected within 30s\n");
    return 1;
  }
  std::fprintf(stderr, "raft_bench: member %lu leads; %d client(s) for %d s\n",
               (unsigned long)leader, clients, seconds);
  // Same connection scheme as the etcd side: min(clients, 4) channels to the leader.
  const int channel_count = std::min(clients, 4);
  std::vector<std::unique_ptr<raftbench::RaftBench::Stub>> stubs;
  for (int i = 0; i < channel_count; ++i) {
    grpc::ChannelArguments args;
    args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
    stubs.push_back(raftbench::RaftBench::NewStub(
        grpc::CreateCustomChannel(absl::StrCat("127.0.0.1:", d.bench_port(leader)),
                                  grpc::InsecureChannelCredentials(), args)));
  }
  LoadOptions o;
  o.clients = clients;
  o.duration = absl::Seconds(seconds);
  o.value_bytes = value_bytes;
  o.warmup = absl::Seconds(1);
  // CPU per proposal, over the warm-up and the window alike (calls counts both): the leader,
  // the followers together, and this process (the clients).
  std::vector<double> cpu_before;
  for (int id = 1; id <= d.size(); ++id) cpu_before.push_back(ProcessCpuSeconds(d.pid(id)));
  const double client_before = ProcessCpuSeconds(0);
  std::atomic<uint64_t> calls{0};
  const auto deadline = [] { return absl::Now() + absl::Seconds(5); };
  LoadResult r;
  if (client_api == "sync") {
    r = RunLoad(o, [&](int client, uint64_t seq, const std::string&) -> absl::Status {
      calls.fetch_add(1, std::memory_order_relaxed);
      raftbench::ProposeRequest req;
      req.set_value(MakeValue(client, seq, value_bytes));
      raftbench::ProposeResponse resp;
      grpc::ClientContext ctx;
      ctx.set_deadline(absl::ToChronoTime(deadline()));
      grpc::Status s = stubs[client % channel_count]->Propose(&ctx, req, &resp);
      if (!s.ok()) return absl::UnavailableError(s.error_message());
      return absl::OkStatus();
    });
  } else {
    AsyncUnaryCaller caller;  // destroyed before the CPU is read: its thread is the clients'
    r = RunLoadAsync(o, [&](int client, uint64_t seq, const std::string&, DoneFn done) {
      calls.fetch_add(1, std::memory_order_relaxed);
      raftbench::ProposeRequest req;
      req.set_value(MakeValue(client, seq, value_bytes));
      raftbench::RaftBench::Stub* stub = stubs[client % channel_count].get();
      caller.Call<raftbench::ProposeResponse>(
          deadline(),
          [&](grpc::ClientContext* ctx, grpc::CompletionQueue* cq) {
            return stub->PrepareAsyncPropose(ctx, req, cq);
          },
          [done = std::move(done)](const grpc::Status& s, raftbench::ProposeResponse&) {
            done(s.ok() ? absl::OkStatus() : absl::UnavailableError(s.error_message()));
          });
    });
  }
  const double per_call = 1e6 / std::max<uint64_t>(calls.load(), 1);
  double leader_us = 0, followers_us = 0;
  for (int id = 1; id <= d.size(); ++id) {
    const double us = (ProcessCpuSeconds(d.pid(id)) - cpu_before[id - 1]) * per_call;
    (static_cast<uint64_t>(id) == leader ? leader_us : followers_us) += us;
  }
  const double client_us = (ProcessCpuSeconds(0) - client_before) * per_call;
  std::printf("%s\n", ToJson(r, {{"system", "shoal"},
                                 {"nodes", d.size()},
                                 {"channels", channel_count},
                                 {"client_api", client_api},
                                 {"allocator", ProcessAllocator()},
                                 // raft, or answer-at-once: gRPC's calls alone, no Raft
                                 {"mode", answer_at_once ? "answer-at-once" : "raft"},
                                 {"warmup_seconds", 1},
                                 {"cpu_us_per_op_leader", leader_us},
                                 {"cpu_us_per_op_followers", followers_us},
                                 {"cpu_us_per_op_clients", client_us}})
                          .c_str());
  return r.ops > 0 ? 0 : 1;
}

int RunFailover(Driver& d, int rounds, uint64_t value_bytes) {
  std::vector<std::string> acked;  // ids of acknowledged proposals
  uint64_t seq = 0;
  uint64_t acked_index = 0;  // the index of the last one
  // Proposes one value through the current leader; true once acknowledged.
  auto propose_once = [&](uint64_t leader) {
    raftbench::ProposeRequest req;
    req.set_value(MakeValue(0, ++seq, value_bytes));
    raftbench::ProposeResponse resp;
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::milliseconds(1000));
    if (!d.stub(leader)->Propose(&ctx, req, &resp).ok()) return false;
    acked.push_back(req.value().substr(0, kIdBytes));
    acked_index = std::max(acked_index, resp.index());
    return true;
  };
  std::vector<double> failovers_ms;
  for (int round = 0; round < rounds; ++round) {
    uint64_t leader = d.FindLeader(absl::Now() + absl::Seconds(30));
    if (leader == 0) {
      std::fprintf(stderr, "round %d: no leader\n", round);
      return 1;
    }
    for (int i = 0; i < 50; ++i) propose_once(leader);  // steady traffic before the kill
    const absl::Time killed = absl::Now();
    d.Stop(leader, SIGKILL);
    bool committed = false;
    while (!committed && absl::Now() < killed + absl::Seconds(60)) {
      const uint64_t next = d.FindLeader(killed + absl::Seconds(60), leader);
      if (next != 0) committed = propose_once(next);
    }
    if (!committed) {
      std::fprintf(stderr, "round %d: nothing committed within 60s of the kill\n", round);
      return 1;
    }
    failovers_ms.push_back(absl::ToDoubleMilliseconds(absl::Now() - killed));
    std::fprintf(stderr, "round %d: killed member %lu, next commit after %.0f ms\n", round,
                 (unsigned long)leader, failovers_ms.back());
    d.Start(leader);  // back from its disk
    // Each round measures one failure: the next leader is killed only once this member is
    // back and has caught up (about 200 ms after its restart). The next kill used to come
    // 50-150 ms after the restart, so the member left beside the new leader had often not
    // heard from it yet, and some rounds measured two failures at once.
    const absl::Time restarted = absl::Now();
    const absl::Status back = d.WaitCaughtUp(leader, acked_index, restarted + absl::Seconds(60));
    if (!back.ok()) {
      std::fprintf(stderr, "round %d: within 60 s of its restart, %s\n", round,
                   std::string(back.message()).c_str());
      return 1;
    }
    std::fprintf(stderr, "round %d: member %lu back and caught up %.0f ms after its restart\n",
                 round, (unsigned long)leader,
                 absl::ToDoubleMilliseconds(absl::Now() - restarted));
  }
  // Every acknowledged proposal is on every member (the restarted one once it caught up).
  const uint64_t leader = d.FindLeader(absl::Now() + absl::Seconds(30));
  propose_once(leader);
  uint64_t missing_max = 0;
  for (uint64_t id = 1; id <= static_cast<uint64_t>(d.size()); ++id) {
    uint64_t present = 0;
    for (int attempt = 0; attempt < 200 && present < acked.size(); ++attempt) {
      raftbench::CountRequest req;
      for (const std::string& a : acked) req.add_ids(a);
      raftbench::CountResponse resp;
      grpc::ClientContext ctx;
      ctx.set_wait_for_ready(true);
      ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(2));
      grpc::Status st = d.stub(id)->Count(&ctx, req, &resp);
      if (st.ok()) {
        present = resp.present();
      } else if (attempt == 199) {
        std::fprintf(stderr, "member %lu: Count failed: %s\n", (unsigned long)id,
                     st.error_message().c_str());
      }
      if (present < acked.size()) absl::SleepFor(absl::Milliseconds(50));  // catching up
    }
    std::fprintf(stderr, "member %lu holds %lu of %zu acknowledged proposals\n", (unsigned long)id,
                 (unsigned long)present, acked.size());
    missing_max = std::max<uint64_t>(missing_max, acked.size() - present);
  }
  std::vector<double> sorted = failovers_ms;
  std::sort(sorted.begin(), sorted.end());
  auto pct = [&](double p) {
    return sorted[std::min(sorted.size() - 1, static_cast<size_t>(p * (sorted.size() - 1) + 0.5))];
  };
  std::printf(
      "{\"system\":\"shoal\",\"failover_rounds\":%zu,\"failover_min_ms\":%.0f,"
      "\"failover_p50_ms\":%.0f,\"failover_p90_ms\":%.0f,\"failover_max_ms\":%.0f,"
      "\"failover_all_ms\":[%s],\"acknowledged\":%zu,\"lost\":%lu}\n",
      sorted.size(), sorted.front(), pct(0.5), pct(0.9), sorted.back(),
      absl::StrJoin(failovers_ms, ",",
                    [](std::string* out, double v) { absl::StrAppend(out, static_cast<int>(v)); })
          .c_str(),
      acked.size(), (unsigned long)missing_max);
  return missing_max == 0 ? 0 : 1;
}

}  // namespace
}  // namespace shoal::raft::bench

int main(int argc, char** argv) {
  using namespace shoal::raft::bench;
  PrepareBenchmarkProcess();  // as etcd_bench does: the same client code at the same cost
  CLI::App app{"Raft benchmark: Shoal members over gRPC and RocksDB on loopback"};
  int nodes = 3, clients = 1, seconds = 10, rounds = 0;
  uint64_t value_bytes = 256;
  uint64_t member = 0;
  std::string dir, peers;
  int raft_port = 0, bench_port = 0;
  bool restarted = false;
  std::string client_api = "async";
  app.add_option("--nodes", nodes, "members")->check(CLI::Range(1, 7));
  app.add_option("--clients", clients, "concurrent proposers")->check(CLI::PositiveNumber);
  app.add_option("--value-bytes", value_bytes, "bytes per proposal");
  app.add_option("--seconds", seconds, "measured seconds")->check(CLI::PositiveNumber);
  app.add_option("--client-api", client_api,
                 "async: the clients' calls completed on one thread polling gRPC's completion "
                 "queue; sync: a thread per client blocked in each call (before 2026-12-04)")
      ->check(CLI::IsMember({"async", "sync"}))
      ->capture_default_str();
  bool answer_at_once = false;
  app.add_flag("--answer-at-once", answer_at_once,
               "the leader answers each proposal as it arrives, without Raft: the throughput of "
               "the benchmark's gRPC calls alone on this host, the ceiling for any Raft behind "
               "them (not with --kill-leader-rounds)");
  app.add_option("--kill-leader-rounds", rounds, "measure leader failover N times instead");
  app.add_option("--member", member, "(internal) run as member N");
  app.add_option("--dir", dir, "(internal) member state directory");
  app.add_option("--peers", peers, "(internal) id=addr,...");
  app.add_option("--raft-port", raft_port, "(internal)");
  app.add_option("--bench-port", bench_port, "(internal)");
  app.add_option("--restarted", restarted, "(internal) the member's store must exist");
  CLI11_PARSE(app, argc, argv);
  if (member != 0) {
    return RunMember(member, dir, peers, raft_port, bench_port, restarted, answer_at_once);
  }
  if (answer_at_once && rounds > 0) {
    std::fprintf(stderr,
                 "raft_bench: --answer-at-once measures gRPC's calls without Raft, and a failover "
                 "measurement (--kill-leader-rounds) needs Raft: give one of the two, not both\n");
    return 2;
  }

  // Where deploy/bench-etcd.sh puts etcd's data: TMPDIR, else /tmp. Both on one file system,
  // or the comparison measures the disks.
  const char* tmpdir = std::getenv("TMPDIR");
  std::string tmpl_s = absl::StrCat(tmpdir != nullptr && *tmpdir != '\0' ? tmpdir : "/tmp",
                                    "/shoal-raft-bench.XXXXXX");
  std::vector<char> tmpl(tmpl_s.begin(), tmpl_s.end());
  tmpl.push_back('\0');
  HandleInterrupts();  // before the directory exists, and before any thread is made
  if (mkdtemp(tmpl.data()) == nullptr) {
    std::perror("mkdtemp");
    return 1;
  }
  {
    std::lock_guard<std::mutex> lock(g_cleanup.mu);
    g_cleanup.dir = tmpl.data();
  }
  struct statfs fs {};
  if (statfs(tmpl.data(), &fs) == 0 && fs.f_type == 0x01021994 /* TMPFS_MAGIC */) {
    std::fprintf(stderr,
                 "warning: %s is on tmpfs, where fsync costs nothing: set TMPDIR to a disk "
                 "directory\n",
                 tmpl.data());
  }
  char self[4096];
  const ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
  if (n <= 0) return 1;
  self[n] = '\0';
  Driver d(self, nodes, tmpl.data(), answer_at_once);
  for (int i = 1; i <= nodes; ++i) d.Start(i);
  if (rounds > 0) return RunFailover(d, rounds, value_bytes);
  return RunThroughput(d, clients, value_bytes, seconds, client_api, answer_at_once);
}
