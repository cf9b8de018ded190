#include "manager/store/testing/raft_cluster.h"

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "raft/storage.h"
#include "raft/testing/raft_server.h"

namespace shoal::manager::store::testing {

RaftCluster::~RaftCluster() {
  for (auto& m : members_) Kill(m->id);
}

void RaftCluster::Bootstrap(int n) {
  std::vector<uint64_t> ids;
  for (int i = 1; i <= n; ++i) {
    ids.push_back(i);
    auto m = std::make_unique<Member>();
    m->id = i;
    m->dir = (options_.base / absl::StrCat("m", i)).string();
    members_.push_back(std::move(m));
  }
  for (auto& m : members_) {
    auto log = raft::RocksDbLogStore::Open({m->dir});
    if (!log.ok()) {
      ADD_FAILURE_AT(__FILE__, __LINE__) << "member " << m->id << ": " << log.status();
      return;
    }
    if (absl::Status s = raft::Bootstrap(**log, ids); !s.ok()) {
      ADD_FAILURE_AT(__FILE__, __LINE__) << "member " << m->id << ": " << s;
      return;
    }
  }
  for (auto& m : members_) Start(m->id);
}

void RaftCluster::Start(uint64_t id) {
  Member& m = M(id);
  auto log = raft::RocksDbLogStore::Open({m.dir});
  if (!log.ok()) {
    ADD_FAILURE_AT(__FILE__, __LINE__) << log.status();
    return;
  }
  m.log = std::move(*log);
  raft::GrpcTransport::Options to;
  to.self = id;
  if (options_.channel_credentials) {
    to.channel_credentials = options_.channel_credentials(id);
    to.tls_server_name = options_.tls_server_name;
  }
  m.transport = std::move(*raft::GrpcTransport::Create(to));
  Store::Options so;
  so.proposal_nonce = static_cast<uint32_t>(id);
  so.clock = options_.clock;
  m.store = std::make_unique<Store>(&m.proposer, so);
  if (options_.on_start) options_.on_start(m);
  Member* mp = &m;
  m.sm = std::make_unique<CountingStateMachine>(
      m.store.get(), [this, mp](bool leading, uint64_t term) {
        if (options_.on_leadership) options_.on_leadership(*mp, leading, term);
      });
  raft::Node::Options no;
  no.raft.id = id;
  no.raft.random_seed = id * 7919;
  no.raft.election_tick = 10;
  no.tick_interval = absl::Milliseconds(10);
  no.storage = m.log.get();
  no.transport = m.transport.get();
  no.state_machine = m.sm.get();
  no.snapshot_interval = options_.snapshot_interval;
  no.snapshot_keep_entries = 5;
  no.transfer_leadership_on_stop = false;
  auto node = raft::Node::Create(no);
  if (!node.ok()) {
    ADD_FAILURE_AT(__FILE__, __LINE__) << node.status();
    return;
  }
  m.node = std::move(*node);
  m.proposer.Bind(m.node.get());
  auto server_credentials = options_.server_credentials ? options_.server_credentials(id)
                                                        : grpc::InsecureServerCredentials();
  raft::testing::RaftServer s = raft::testing::ServeRaft(
      *m.transport, server_credentials, m.addr.empty() ? "127.0.0.1:0" : m.addr);
  if (s.server == nullptr) s = raft::testing::ServeRaft(*m.transport, server_credentials);
  if (s.server == nullptr) {
    ADD_FAILURE_AT(__FILE__, __LINE__) << "cannot serve member " << id;
    return;
  }
  m.server = std::move(s.server);
  m.addr = s.addr;
  m.up = true;
  for (auto& a : members_) {
    for (auto& b : members_) {
      if (a->up && a->id != b->id && !b->addr.empty()) a->transport->AddPeer(b->id, b->addr);
    }
  }
  m.node->Start();
}

void RaftCluster::StartJoining(uint64_t id) {
  auto m = std::make_unique<Member>();
  m->id = id;
  m->dir = (options_.base / absl::StrCat("m", id)).string();
  members_.push_back(std::move(m));
  Start(id);
}

void RaftCluster::Kill(uint64_t id) {
  Member& m = M(id);
  if (!m.up) return;
  if (options_.on_kill) options_.on_kill(m);
  m.proposer.Bind(nullptr);
  m.node->Stop();
  m.server->Shutdown(std::chrono::system_clock::now() + std::chrono::milliseconds(200));
  m.transport.reset();
  m.server.reset();
  m.node.reset();
  m.sm.reset();
  m.store.reset();
  m.log.reset();
  m.up = false;
}

uint64_t RaftCluster::Leader(absl::Duration wait) {
  const absl::Time deadline = absl::Now() + wait;
  for (auto& m : members_) {
    if (!m->up || !m->node->WaitForLeader(deadline)) continue;
    const uint64_t l = m->node->GetStatus().leader;
    if (l != 0 && M(l).up) return l;
  }
  return 0;
}

bool RaftCluster::WaitApplied(uint64_t id, uint64_t index, absl::Duration wait) {
  Store& s = *M(id).store;
  const absl::Time deadline = absl::Now() + wait;
  while (absl::Now() < deadline) {
    bool reached = false;
    auto w = s.Watch(nullptr, [&](const ReadTx& tx) { reached = tx.index() >= index; });
    while (!reached && absl::Now() < deadline) {
      auto e = w->Next(deadline);
      if (!e.ok()) break;  // a restore closed it: watch anew
      if (e->has_value() && (*e)->index >= index) reached = true;
    }
    if (reached) return true;
  }
  return false;
}

absl::StatusOr<uint64_t> RaftCluster::Write(uint64_t via,
                                            const std::function<absl::Status(WriteTx&)>& write,
                                            absl::Duration wait) {
  const absl::Time deadline = absl::Now() + wait;
  absl::Status last = absl::DeadlineExceededError("no leader");
  while (absl::Now() < deadline) {
    M(via).node->WaitForLeader(deadline);
    auto index = M(via).store->Update(write);
    if (index.ok()) return index;
    last = index.status();
    if (!absl::IsUnavailable(last) && !absl::IsDeadlineExceeded(last) && !absl::IsAborted(last)) {
      return last;
    }
  }
  return last;
}

}  // namespace shoal::manager::store::testing
