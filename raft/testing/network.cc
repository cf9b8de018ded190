#include "raft/testing/network.h"

#include "common/check.h"

namespace shoal::raft::testing {

Config TestConfig(uint64_t id, LogStorage* storage) {
  Config c;
  c.id = id;
  c.storage = storage;
  c.election_tick = 10;
  c.heartbeat_tick = 1;
  c.max_size_per_msg = UINT64_MAX;
  c.max_inflight_msgs = 256;
  c.check_quorum = false;
  c.pre_vote = false;
  c.random_seed = id;
  return c;
}

std::vector<raftpb::Message> HandleReady(TestNode& node) {
  Ready rd = node.core->GetReady();
  if (rd.snapshot) {
    absl::Status s = node.storage->ApplySnapshot(*rd.snapshot);
    SHOAL_CHECK(s.ok(), s.ToString());
    node.conf_state = rd.snapshot->metadata().conf_state();
    // The test state machine is the list of applied data, serialized one per line.
    node.applied.clear();
    const std::string& data = rd.snapshot->data();
    size_t start = 0;
    while (start < data.size()) {
      size_t end = data.find('\n', start);
      node.applied.push_back(data.substr(start, end - start));
      start = end + 1;
    }
  }
  SHOAL_CHECK(node.storage->Append(rd.entries).ok());
  if (rd.hard_state) node.storage->SetHardState(*rd.hard_state);
  for (const raftpb::Entry& e : rd.committed_entries) {
    if (e.type() == raftpb::ENTRY_TYPE_CONF_CHANGE) {
      raftpb::ConfChange cc;
      SHOAL_CHECK(cc.ParseFromString(e.data()));
      node.conf_state = node.core->ApplyConfChange(cc);
    } else if (!e.data().empty()) {
      node.applied.push_back(e.data());
    }
  }
  for (ReadState& rs : rd.read_states) node.read_states.push_back(std::move(rs));
  node.core->Advance(rd);
  // Early messages would have left before the write; the order among them is kept.
  std::vector<raftpb::Message> out = std::move(rd.early_messages);
  for (raftpb::Message& m : rd.messages) out.push_back(std::move(m));
  for (raftpb::Message& m : out) {
    absl::Status filled = FillSnapshot(*node.storage, m);
    SHOAL_CHECK(filled.ok(), filled.ToString());
  }
  return out;
}

std::unique_ptr<MemoryLogStore> StoreWithTerms(const std::vector<uint64_t>& terms,
                                               const std::vector<uint64_t>& voters, uint64_t term) {
  auto store = std::make_unique<MemoryLogStore>();
  std::vector<raftpb::Entry> ents;
  for (size_t i = 0; i < terms.size(); ++i) {
    raftpb::Entry e;
    e.set_index(i + 1);
    e.set_term(terms[i]);
    ents.push_back(e);
  }
  SHOAL_CHECK(store->Append(ents).ok());
  raftpb::ConfState cs;
  for (uint64_t v : voters) cs.add_voters(v);
  store->SetConfState(cs);
  if (term == 0 && !terms.empty()) term = terms.back();
  if (term != 0) {
    raftpb::HardState hs;
    hs.set_term(term);
    store->SetHardState(hs);
  }
  return store;
}

Network::Network(int n, Tweak tweak) : tweak_(std::move(tweak)) {
  raftpb::ConfState cs;
  for (int i = 1; i <= n; ++i) cs.add_voters(i);
  for (int i = 1; i <= n; ++i) {
    TestNode& node = nodes_[i];
    node.id = i;
    node.storage = std::make_unique<MemoryLogStore>();
    node.storage->SetConfState(cs);
    node.conf_state = cs;
    MakeCore(i, nullptr);
  }
}

Network::Network(std::vector<std::pair<uint64_t, std::unique_ptr<MemoryLogStore>>> stores,
                 Tweak tweak)
    : tweak_(std::move(tweak)) {
  for (auto& [id, store] : stores) {
    TestNode& node = nodes_[id];
    node.id = id;
    node.storage = std::move(store);
    node.conf_state = node.storage->GetInitialState()->conf_state;
    MakeCore(id, nullptr);
  }
}

void Network::MakeCore(uint64_t id, Tweak tweak) {
  TestNode& node = nodes_.at(id);
  Config c = TestConfig(id, node.storage.get());
  if (tweak_) tweak_(c);
  if (tweak) tweak(c);
  absl::StatusOr<std::unique_ptr<Core>> core = Core::Create(c);
  SHOAL_CHECK(core.ok(), core.status().ToString());
  node.core = std::move(*core);
}

std::vector<uint64_t> Network::ids() const {
  std::vector<uint64_t> out;
  for (const auto& [id, n] : nodes_) out.push_back(id);
  return out;
}

void Network::AddNode(uint64_t id, const raftpb::ConfState& initial, Tweak tweak) {
  TestNode& node = nodes_[id];
  node.id = id;
  node.storage = std::make_unique<MemoryLogStore>();
  node.storage->SetConfState(initial);
  node.conf_state = initial;
  MakeCore(id, std::move(tweak));
}

void Network::Restart(uint64_t id, Tweak tweak) {
  TestNode& node = nodes_.at(id);
  // Applied state is rebuilt from the log: replay from the snapshot.
  node.applied.clear();
  node.read_states.clear();
  node.conf_state = node.storage->GetInitialState()->conf_state;
  raftpb::Snapshot snap = *node.storage->Snapshot();
  const std::string& data = snap.data();
  size_t start = 0;
  while (start < data.size()) {
    size_t end = data.find('\n', start);
    node.applied.push_back(data.substr(start, end - start));
    start = end + 1;
  }
  Tweak combined = [&](Config& c) {
    c.applied = snap.metadata().index();
    if (tweak) tweak(c);
  };
  MakeCore(id, combined);
}

bool Network::Dropped(const raftpb::Message& m) const {
  if (dropped_types_.count(m.type())) return true;
  return cut_.count({m.from(), m.to()}) > 0;
}

void Network::Stabilize() {
  for (int rounds = 0;; ++rounds) {
    SHOAL_CHECK(rounds < 1000000, "network does not quiesce");
    bool progress = false;
    for (auto& [id, node] : nodes_) {
      while (node.core->HasReady()) {
        for (raftpb::Message& m : HandleReady(node)) queue_.push_back(std::move(m));
        progress = true;
      }
    }
    if (!queue_.empty()) {
      raftpb::Message m = std::move(queue_.front());
      queue_.pop_front();
      progress = true;
      auto it = nodes_.find(m.to());
      if (it != nodes_.end() && !Dropped(m)) {
        delivered_.push_back(m);
        (void)it->second.core->Step(m);
      }
    }
    if (!progress) return;
  }
}

void Network::Send(const raftpb::Message& m) {
  queue_.push_back(m);
  Stabilize();
}

void Network::Campaign(uint64_t id) {
  node(id).core->Campaign();
  Stabilize();
}

absl::Status Network::Propose(uint64_t id, std::string data) {
  absl::Status s = node(id).core->Propose(std::move(data));
  Stabilize();
  return s;
}

void Network::Tick(uint64_t id, int n) {
  for (int i = 0; i < n; ++i) {
    node(id).core->Tick();
    Stabilize();
  }
}

void Network::TickAll(int n) {
  for (int i = 0; i < n; ++i) {
    for (auto& [id, node] : nodes_) node.core->Tick();
    Stabilize();
  }
}

std::vector<raftpb::Message> Network::TakeMessages(uint64_t id) {
  std::vector<raftpb::Message> out;
  TestNode& n = node(id);
  while (n.core->HasReady()) {
    for (raftpb::Message& m : HandleReady(n)) out.push_back(std::move(m));
  }
  return out;
}

void Network::Cut(uint64_t a, uint64_t b) {
  cut_.insert({a, b});
  cut_.insert({b, a});
}

void Network::Isolate(uint64_t id) {
  for (const auto& [other, n] : nodes_) {
    if (other != id) Cut(id, other);
  }
}

void Network::Recover() {
  cut_.clear();
  dropped_types_.clear();
}

}  // namespace shoal::raft::testing
