// The Raft transport over Shoal's mutual TLS (pki/), with the credentials passed in through
// GrpcTransport::Options as swarmd passes them: managers replicate to each other, and nothing
// else (a worker's certificate, another cluster's manager) gets a message through.
#include <arpa/inet.h>
#include <grpc/support/log.h>
#include <grpcpp/grpcpp.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <deque>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "common/testing/manual_clock.h"
#include "gtest/gtest.h"
#include "pki/access_check.h"
#include "pki/testing/test_pki.h"
#include "pki/tls_credentials.h"
#include "raft/grpc_transport.h"
#include "raft/memory_log_store.h"
#include "raft/node.h"
#include "raft/testing/raft_server.h"

namespace shoal::raft {
namespace {

constexpr char kCluster[] = "raft-tls";
constexpr absl::Duration kWait = absl::Seconds(20);

// gRPC's own error lines (the TLS layer logs through gpr_log), counted.
std::atomic<int> grpc_errors{0};
void CountErrors(gpr_log_func_args* args) {
  if (args->severity == GPR_LOG_SEVERITY_ERROR) {
    grpc_errors.fetch_add(1);
    std::fprintf(stderr, "grpc error: %s\n", args->message);
  }
}

// A count that tests wait on, bumped from other threads.
class Tally {
 public:
  void Add() {
    absl::MutexLock lock(&mu_);
    ++n_;
  }
  // Waits until the count reaches `n`; false at the deadline.
  bool WaitFor(int n, absl::Duration within) {
    absl::MutexLock lock(&mu_);
    auto reached = [&]() ABSL_NO_THREAD_SAFETY_ANALYSIS { return n_ >= n; };
    return mu_.AwaitWithTimeout(absl::Condition(&reached), within);
  }
  int value() {
    absl::MutexLock lock(&mu_);
    return n_;
  }

 private:
  absl::Mutex mu_;
  int n_ ABSL_GUARDED_BY(mu_) = 0;
};

class Values : public StateMachine {
 public:
  void Apply(uint64_t, absl::string_view data) override {
    absl::MutexLock lock(&mu_);
    values_.emplace_back(data);
  }
  std::string Snapshot() override { return ""; }
  absl::Status Restore(absl::string_view) override { return absl::OkStatus(); }
  bool WaitFor(size_t count) {
    absl::MutexLock lock(&mu_);
    auto enough = [&]() ABSL_NO_THREAD_SAFETY_ANALYSIS { return values_.size() >= count; };
    return mu_.AwaitWithTimeout(absl::Condition(&enough), kWait);
  }

 private:
  absl::Mutex mu_;
  std::vector<std::string> values_ ABSL_GUARDED_BY(mu_);
};

// Records what a transport reports back.
class Reports : public MessageHandler {
 public:
  void Receive(raftpb::Message) override { received_.Add(); }
  // Waits until `count` messages have arrived in all.
  bool WaitReceived(int count, absl::Duration within) { return received_.WaitFor(count, within); }
  int received() { return received_.value(); }
  size_t unreachable_count() {
    absl::MutexLock lock(&mu_);
    return unreachable_.size();
  }
  void ReportUnreachable(uint64_t peer) override {
    absl::MutexLock lock(&mu_);
    unreachable_.push_back(peer);
  }
  void ReportSnapshot(uint64_t, bool) override {}
  bool WaitUnreachable(uint64_t peer, absl::Duration within) {
    absl::MutexLock lock(&mu_);
    auto reported = [&]() ABSL_NO_THREAD_SAFETY_ANALYSIS {
      for (uint64_t p : unreachable_) {
        if (p == peer) return true;
      }
      return false;
    };
    return mu_.AwaitWithTimeout(absl::Condition(&reported), within);
  }

 private:
  absl::Mutex mu_;
  std::vector<uint64_t> unreachable_ ABSL_GUARDED_BY(mu_);
  Tally received_;
};

// A heartbeat of the outsider (raft id 9) to `to`, of term 1.
raftpb::Message Heartbeat(uint64_t to) {
  raftpb::Message m;
  m.set_type(raftpb::MSG_HEARTBEAT);
  m.set_from(9);
  m.set_to(to);
  m.set_term(1);
  return m;
}

// A link on loopback: a TCP proxy to `target_port` that holds every byte for `delay` in each
// direction, as a link between data centres does, and that can be cut without a word (what
// is sent is dropped, nothing is closed: a host powered off, a firewall that forgot the flow).
class Link {
 public:
  Link(int target_port, absl::Duration delay) : target_port_(target_port), delay_(delay) {
    listener_ = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof(addr);
    if (bind(listener_, reinterpret_cast<sockaddr*>(&addr), len) != 0 ||
        listen(listener_, 16) != 0 ||
        getsockname(listener_, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
      return;
    }
    port_ = ntohs(addr.sin_port);
    threads_.emplace_back([this] { Accept(); });
  }
  ~Link() {
    {
      absl::MutexLock lock(&mu_);
      stopping_ = true;
      for (int fd : fds_) shutdown(fd, SHUT_RDWR);
    }
    shutdown(listener_, SHUT_RDWR);
    for (std::thread& t : threads_) t.join();
    close(listener_);
    for (int fd : fds_) close(fd);
  }
  int port() const { return port_; }  // 0 when it could not listen

  // From now on every connection through the link drops what it carries, until Heal; those
  // made before Heal stay dead after it, as after a NAT forgot them.
  void Cut() {
    absl::MutexLock lock(&mu_);
    cut_ = true;
    for (auto& pipe : pipes_) {
      absl::MutexLock pipe_lock(&pipe->mu);
      pipe->dead = true;
    }
  }
  void Heal() {
    absl::MutexLock lock(&mu_);
    cut_ = false;
  }
  // Waits until `n` reads of the client's bytes in all have been passed on to the target.
  bool WaitForwarded(int n, absl::Duration within) { return forwarded_.WaitFor(n, within); }
  int forwarded() { return forwarded_.value(); }

 private:
  struct Chunk {
    absl::Time due;
    std::string bytes;
  };
  struct Pipe {
    bool to_target = false;
    absl::Mutex mu;
    std::deque<Chunk> chunks ABSL_GUARDED_BY(mu);
    bool eof ABSL_GUARDED_BY(mu) = false;
    bool dead ABSL_GUARDED_BY(mu) = false;  // drops what it reads
  };

  void Accept() {
    for (;;) {
      const int in = accept(listener_, nullptr, nullptr);
      if (in < 0) return;  // shut down
      const int out = socket(AF_INET, SOCK_STREAM, 0);
      sockaddr_in addr{};
      addr.sin_family = AF_INET;
      addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
      addr.sin_port = htons(static_cast<uint16_t>(target_port_));
      absl::MutexLock lock(&mu_);
      fds_.push_back(in);
      fds_.push_back(out);
      if (stopping_ || connect(out, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
        shutdown(in, SHUT_RDWR);
        continue;
      }
      for (auto [from, to] : {std::pair<int, int>{in, out}, std::pair<int, int>{out, in}}) {
        pipes_.push_back(std::make_unique<Pipe>());
        Pipe* pipe = pipes_.back().get();
        pipe->to_target = from == in;
        {
          absl::MutexLock pipe_lock(&pipe->mu);
          pipe->dead = cut_;
        }
        threads_.emplace_back([this, from = from, pipe] { Read(from, pipe); });
        threads_.emplace_back([this, to = to, pipe] { Write(pipe, to); });
      }
    }
  }
  void Read(int from, Pipe* pipe) {
    char buf[16384];
    for (;;) {
      const ssize_t n = read(from, buf, sizeof(buf));
      absl::MutexLock lock(&pipe->mu);
      if (n <= 0) {
        pipe->eof = true;
        return;
      }
      if (pipe->dead) continue;
      pipe->chunks.push_back({absl::Now() + delay_, std::string(buf, static_cast<size_t>(n))});
    }
  }
  void Write(Pipe* pipe, int to) {
    for (;;) {
      Chunk chunk;
      {
        absl::MutexLock lock(&pipe->mu);
        auto ready = [pipe]() ABSL_NO_THREAD_SAFETY_ANALYSIS {
          return pipe->eof || !pipe->chunks.empty();
        };
        pipe->mu.Await(absl::Condition(&ready));
        if (pipe->chunks.empty()) {
          shutdown(to, SHUT_WR);
          return;
        }
        chunk = std::move(pipe->chunks.front());
        pipe->chunks.pop_front();
      }
      // The link's latency itself, not a wait for another thread.
      absl::SleepFor(chunk.due - absl::Now());
      {
        absl::MutexLock lock(&pipe->mu);
        if (pipe->dead) continue;  // cut while it was on its way
      }
      for (size_t off = 0; off < chunk.bytes.size();) {
        const ssize_t n =
            send(to, chunk.bytes.data() + off, chunk.bytes.size() - off, MSG_NOSIGNAL);
        if (n <= 0) return;
        off += static_cast<size_t>(n);
      }
      if (pipe->to_target) forwarded_.Add();
    }
  }

  const int target_port_;
  const absl::Duration delay_;
  int listener_ = -1;
  int port_ = 0;
  absl::Mutex mu_;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  bool cut_ ABSL_GUARDED_BY(mu_) = false;
  Tally forwarded_;
  std::vector<int> fds_;  // closed after the threads are joined
  std::vector<std::unique_ptr<Pipe>> pipes_;
  std::vector<std::thread> threads_;  // the acceptor first; the others added by it
};

struct Manager {
  std::string tls_dir;
  MemoryLogStore store;
  std::unique_ptr<grpc::Server> server;  // destroyed after the transport
  std::unique_ptr<GrpcTransport> transport;
  Values sm;
  std::unique_ptr<Node> node;
  std::string addr;
};

class TlsClusterTest : public ::testing::Test {
 protected:
  void SetUp() override {
    gpr_set_log_function(CountErrors);
    grpc_errors.store(0);
    auto pki = pki::testing::TestPki::Create(kCluster, clock_);
    ASSERT_TRUE(pki.ok()) << pki.status();
    pki_ = std::move(*pki);
    auto check = pki::AccessCheck::Create({kCluster, pki_->ca().cert_pem()}, clock_, nullptr);
    ASSERT_TRUE(check.ok()) << check.status();
    check_ = std::move(*check);
  }
  void TearDown() override {
    for (auto& m : managers_) {
      m->node->Stop();
      m->server->Shutdown(std::chrono::system_clock::now() + std::chrono::milliseconds(200));
    }
  }

  // Managers 1..3 of a new cluster, each with its own certificate, started and connected.
  void StartCluster() {
    for (uint64_t id = 1; id <= 3; ++id) {
      auto m = std::make_unique<Manager>();
      auto dir = pki_->IssueDir(absl::StrCat("manager", id), api::CERTIFICATE_ROLE_MANAGER);
      ASSERT_TRUE(dir.ok()) << dir.status();
      m->tls_dir = *dir;
      ASSERT_TRUE(Bootstrap(m->store, std::vector<uint64_t>{1, 2, 3}).ok());
      GrpcTransport::Options to;
      to.self = id;
      to.channel_credentials = pki::ClientCredentials(m->tls_dir, kCluster);
      to.tls_server_name = pki::kManagerServerName;
      auto transport = GrpcTransport::Create(to);
      ASSERT_TRUE(transport.ok()) << transport.status();
      m->transport = std::move(*transport);
      Node::Options no;
      no.raft.id = id;
      no.storage = &m->store;
      no.transport = m->transport.get();
      no.state_machine = &m->sm;
      no.tick_interval = absl::Milliseconds(10);
      auto node = Node::Create(no);
      ASSERT_TRUE(node.ok()) << node.status();
      m->node = std::move(*node);
      testing::RaftServer s =
          testing::ServeRaft(*m->transport, pki::ServerCredentials(m->tls_dir, check_));
      ASSERT_NE(s.server, nullptr);
      m->server = std::move(s.server);
      m->addr = s.addr;
      managers_.push_back(std::move(m));
    }
    for (size_t i = 0; i < managers_.size(); ++i) {
      for (size_t j = 0; j < managers_.size(); ++j) {
        if (i != j) managers_[i]->transport->AddPeer(j + 1, managers_[j]->addr);
      }
    }
    for (auto& m : managers_) m->node->Start();
    managers_[0]->node->Campaign();
    ASSERT_TRUE(managers_[0]->node->WaitForLeader(absl::Now() + kWait));
  }

  // A transport of raft id 9 with the certificate of `subject` in role `role` (of `cluster`,
  // this one when empty), reporting to `reports`.
  std::unique_ptr<GrpcTransport> Outsider(absl::string_view subject, api::CertificateRole role,
                                          Reports* reports, absl::string_view cluster = "",
                                          absl::Duration keepalive = absl::Seconds(10)) {
    auto dir = pki_->IssueDir(subject, role, pki::kDefaultNodeCertValidity, cluster);
    EXPECT_TRUE(dir.ok()) << dir.status();
    if (!dir.ok()) return nullptr;
    GrpcTransport::Options to;
    to.self = 9;
    to.keepalive_time = keepalive;
    to.keepalive_timeout = keepalive;
    to.channel_credentials = pki::ClientCredentials(*dir, kCluster);
    to.tls_server_name = pki::kManagerServerName;
    auto transport = GrpcTransport::Create(to);
    EXPECT_TRUE(transport.ok()) << transport.status();
    if (!transport.ok()) return nullptr;
    (*transport)->Start();
    (*transport)->SetHandler(reports);
    return std::move(*transport);
  }

  // Manager 2's transport served with its certificate, and an outsider with a manager's
  // certificate (raft id 9, pinging after `keepalive`) reaching it through a Link of `delay`;
  // null (with a test failure) unless a first heartbeat got through.
  struct Linked {
    Reports at_1, at_2;
    std::unique_ptr<GrpcTransport> member2;
    std::unique_ptr<grpc::Server> server;
    std::unique_ptr<Link> link;
    std::unique_ptr<GrpcTransport> member1;
    ~Linked() {
      member1.reset();
      if (server) server->Shutdown(std::chrono::system_clock::now());
      member2.reset();  // before its server: see GrpcTransport's shutdown order
    }
  };
  std::unique_ptr<Linked> Connect(absl::Duration delay, absl::Duration keepalive) {
    auto linked = std::make_unique<Linked>();
    auto dir = pki_->IssueDir("manager2", api::CERTIFICATE_ROLE_MANAGER);
    EXPECT_TRUE(dir.ok()) << dir.status();
    if (!dir.ok()) return nullptr;
    GrpcTransport::Options o;
    o.self = 2;
    auto transport = GrpcTransport::Create(o);
    EXPECT_TRUE(transport.ok()) << transport.status();
    if (!transport.ok()) return nullptr;
    linked->member2 = std::move(*transport);
    linked->member2->SetHandler(&linked->at_2);
    testing::RaftServer s =
        testing::ServeRaft(*linked->member2, pki::ServerCredentials(*dir, check_));
    EXPECT_NE(s.server, nullptr);
    if (s.server == nullptr) return nullptr;
    linked->server = std::move(s.server);
    linked->link = std::make_unique<Link>(s.port, delay);
    EXPECT_NE(linked->link->port(), 0);
    linked->member1 =
        Outsider("manager1", api::CERTIFICATE_ROLE_MANAGER, &linked->at_1, "", keepalive);
    if (linked->link->port() == 0 || linked->member1 == nullptr) return nullptr;
    linked->member1->AddPeer(2, absl::StrCat("127.0.0.1:", linked->link->port()));
    linked->member1->Send({Heartbeat(2)});
    const bool arrived = linked->at_2.WaitReceived(1, kWait);
    EXPECT_TRUE(arrived) << "the first heartbeat never arrived";
    if (!arrived) return nullptr;
    return linked;
  }

  uint64_t Leader() {
    const uint64_t leader = managers_[0]->node->GetStatus().leader;
    return leader;
  }

  ManualClock clock_{absl::FromUnixSeconds(absl::ToUnixSeconds(absl::Now()))};
  std::unique_ptr<pki::testing::TestPki> pki_;
  std::shared_ptr<const pki::AccessCheck> check_;
  std::vector<std::unique_ptr<Manager>> managers_;
};

TEST_F(TlsClusterTest, ManagersReplicateOverMutualTls) {
  ASSERT_NO_FATAL_FAILURE(StartCluster());
  Manager& leader = *managers_[Leader() - 1];
  for (int i = 0; i < 10; ++i) {
    absl::StatusOr<uint64_t> r = leader.node->Propose(absl::StrCat("v", i)).get();
    ASSERT_TRUE(r.ok()) << r.status();
  }
  for (auto& m : managers_) EXPECT_TRUE(m->sm.WaitFor(10)) << m->addr;
  // Connections ask for the managers' TLS name, not their address: no TLS error was logged.
  EXPECT_EQ(grpc_errors.load(), 0);
}

// Managers in different data centres: a TLS handshake over a link of 400 ms each way takes
// well over a second. It completes at the first attempt, with no error logged; connection
// attempts were once cut off after 100 ms, and such a link never connected at all.
TEST_F(TlsClusterTest, ManagersConnectOverASlowLink) {
  // Sent once (in Connect): the stream opened at AddPeer carries it when the handshake is done.
  std::unique_ptr<Linked> linked = Connect(absl::Milliseconds(400), absl::Seconds(10));
  ASSERT_NE(linked, nullptr) << "nothing got through the slow link";
  EXPECT_EQ(grpc_errors.load(), 0);
}

// A peer that vanished without closing its connection (powered off; a firewall that dropped
// the flow) is found by the keepalive ping going unanswered, reported unreachable, and
// reached again once it is back. Without keepalive nothing ever failed: the link took every
// byte, and TCP would have given up only many minutes later on a real host.
TEST_F(TlsClusterTest, AManagerNoticesAPeerThatVanishedWithoutAWord) {
  std::unique_ptr<Linked> linked = Connect(absl::ZeroDuration(), absl::Seconds(1));
  ASSERT_NE(linked, nullptr);
  linked->link->Cut();
  // Raft goes on sending its heartbeats; one of them fails once the ping goes unanswered.
  bool noticed = false;
  for (const absl::Time deadline = absl::Now() + kWait; !noticed && absl::Now() < deadline;) {
    linked->member1->Send({Heartbeat(2)});
    noticed = linked->at_1.WaitUnreachable(2, absl::Milliseconds(50));
  }
  EXPECT_TRUE(noticed) << "a peer cut off without a word was never reported unreachable";

  linked->link->Heal();
  const int before = linked->at_2.received();
  bool back = false;
  for (const absl::Time deadline = absl::Now() + kWait; !back && absl::Now() < deadline;) {
    linked->member1->Send({Heartbeat(2)});
    back = linked->at_2.WaitReceived(before + 1, absl::Milliseconds(50));
  }
  EXPECT_TRUE(back) << "the peer was not reached again after the link healed";
}

// Keepalive pings on a quiet stream (the receiving side sends nothing back) are accepted by a
// server set up with ConfigureServer: gRPC's default ends such a connection after a few pings
// ("too_many_pings"), which would break every stream between managers every minute or so.
TEST_F(TlsClusterTest, KeepalivePingsDoNotCutAQuietStreamOff) {
  std::unique_ptr<Linked> linked = Connect(absl::ZeroDuration(), absl::Seconds(1));
  ASSERT_NE(linked, nullptr);
  // Nothing more is sent: what the client's side passes on from here is its pings, one a
  // second (without ConfigureServer the server sent GOAWAY "too_many_pings" within ten).
  const int forwarded = linked->link->forwarded();
  ASSERT_TRUE(linked->link->WaitForwarded(forwarded + 10, kWait))
      << "too few keepalive pings were sent";
  linked->member1->Send({Heartbeat(2)});
  EXPECT_TRUE(linked->at_2.WaitReceived(2, kWait));
  EXPECT_EQ(linked->at_1.unreachable_count(), 0u) << "the stream was cut off";
  EXPECT_EQ(grpc_errors.load(), 0);  // such as a GOAWAY for "too_many_pings"
}

// A heartbeat of a far later term would depose the leader if it got through.
raftpb::Message Usurper(uint64_t to) {
  raftpb::Message m = Heartbeat(to);
  m.set_term(1000);
  return m;
}

TEST_F(TlsClusterTest, NothingButThisClustersManagersGetsAMessageThrough) {
  ASSERT_NO_FATAL_FAILURE(StartCluster());
  const uint64_t leader = Leader();
  ASSERT_NE(leader, 0u);
  struct Case {
    const char* what;
    const char* subject;
    api::CertificateRole role;
    const char* cluster;
  };
  for (const Case& c : {Case{"a worker", "worker9", api::CERTIFICATE_ROLE_WORKER, ""},
                        Case{"another cluster's manager", "manager9",
                             api::CERTIFICATE_ROLE_MANAGER, "other-cluster"}}) {
    Reports reports;
    std::unique_ptr<GrpcTransport> outsider = Outsider(c.subject, c.role, &reports, c.cluster);
    ASSERT_NE(outsider, nullptr);
    outsider->AddPeer(leader, managers_[leader - 1]->addr);
    // A refused stream shows at the next write (as for any peer that went away): keep sending,
    // as Raft does, until the transport reports the peer unreachable.
    bool refused = false;
    for (const absl::Time deadline = absl::Now() + kWait; !refused && absl::Now() < deadline;) {
      outsider->Send({Usurper(leader)});
      refused = reports.WaitUnreachable(leader, absl::Milliseconds(50));
    }
    EXPECT_TRUE(refused) << c.what << ": its stream was never refused";
    EXPECT_LT(managers_[leader - 1]->node->GetStatus().term, 1000u) << c.what << " got through";
  }
  // And the cluster goes on committing under the same leader.
  absl::StatusOr<uint64_t> r = managers_[leader - 1]->node->Propose("after").get();
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(managers_[leader - 1]->node->GetStatus().leader, leader);
}

}  // namespace
}  // namespace shoal::raft
