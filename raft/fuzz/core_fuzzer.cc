// Fuzz target: one member's Raft core (member 1 of voters 1, 2 and 3) driven by its owner's
// calls and by whatever its peers send. A peer may be buggy, older, replaying old messages, or
// its store may have lost data it had acknowledged; none of that may crash this member or
// make it break its own promises. Checked after every input, beyond "no crash":
// - its term never goes back; within a term its vote, once cast and persisted, never changes;
// - its commit index never goes back and never passes its last index;
// - an entry it has handed out as committed keeps its term at its index for as long as the
//   log holds it, and committed entries are handed out once each, in order, with no gap;
// - a vote granted is on its disk before the answer goes out, and an acknowledged append's
//   entries are; what leaves before the Ready that made it is persisted (a leader's appends
//   and heartbeats, a follower's heartbeat responses) carries a term and vote already on the
//   disk;
// - a snapshot taken at the applied index carries the term of the entry committed there.
//
// As the node does, a Ready may be written asynchronously: while it is "being written" the
// member goes on stepping, ticking and taking proposals, early messages and newly committed
// entries (Core::TakeEarlyMessages, TakeCommittedEntries) until the write completes. The member
// may also crash and restart from what its store holds (what was being written is lost).
//
// SHOAL_FUZZ_TRACE=1 prints each operation and the member's state after it (to replay a crash
// input: `bazel-bin/raft/fuzz/core_fuzzer_replay` with the input's folder, or the fuzzer binary
// with the input file).
//
// Inputs are read as a sequence of operations. Terms and indexes in peers' messages are drawn
// near this member's own (its term, its last index), so that the fuzzer reaches the states
// where they matter (elected, replicating, behind, ahead) in few bytes.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <algorithm>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "proto/raft.pb.h"
#include "raft/core.h"
#include "raft/memory_log_store.h"
#include "raft/storage.h"

namespace shoal::raft {
namespace {

using raftpb::Message;

// The fuzzer's bytes, read front to back; zeros once they run out.
class Bytes {
 public:
  Bytes(const uint8_t* data, size_t size) : data_(data), size_(size) {}
  bool empty() const { return pos_ >= size_; }
  uint8_t U8() { return pos_ < size_ ? data_[pos_++] : 0; }
  bool Bool() { return (U8() & 1) != 0; }
  // A value near `base`: base + [-4, 11], floored at 0; now and then an arbitrary one.
  uint64_t Near(uint64_t base) {
    const uint8_t b = U8();
    if (b == 0xff) return Wide();
    const uint64_t step = b % 16;
    if (step >= 4) return base + (step - 4);  // unsigned: past 2^64 it wraps, as a peer's may
    return base > 4 - step ? base - (4 - step) : 0;
  }
  uint64_t Wide() {
    uint64_t v = 0;
    for (int i = 0; i < 8; ++i) v = (v << 8) | U8();
    return v;
  }
  std::string Str(size_t max) {
    const size_t n = U8() % (max + 1);
    std::string s;
    for (size_t i = 0; i < n; ++i) s.push_back(static_cast<char>(U8()));
    return s;
  }

 private:
  const uint8_t* data_;
  size_t size_;
  size_t pos_ = 0;
};

[[noreturn]] void Broken(const char* what) {
  // The fuzzer keeps the input; the replay test names the file.
  std::fprintf(stderr, "core_fuzzer: %s\n", what);
  std::abort();
}

const bool kTrace = std::getenv("SHOAL_FUZZ_TRACE") != nullptr;

class Harness {
 public:
  explicit Harness(uint64_t seed) {
    if (!Bootstrap(store_, std::vector<uint64_t>{1, 2, 3}).ok()) Broken("bootstrap failed");
    seed_ = seed;
    Start();
    Drain();
  }

  void Run(Bytes& in) {
    while (!in.empty()) {
      const uint8_t op = in.U8();
      if (kTrace) {
        std::fprintf(stderr,
                     "[term %lu vote %lu %s lead %lu; log %lu..%lu commit %lu applied %lu] op %d\n",
                     (unsigned long)core_->term(), (unsigned long)core_->vote(),
                     RoleName(core_->role()), (unsigned long)core_->leader(),
                     (unsigned long)core_->log().FirstIndex(),
                     (unsigned long)core_->log().LastIndex(),
                     (unsigned long)core_->log().committed(), (unsigned long)applied_, op % 20);
      }
      switch (op % 20) {
        case 0:
          for (int i = in.U8() % 12; i >= 0; --i) core_->Tick();
          break;
        case 1:
          core_->Campaign();
          break;
        case 2:
          (void)core_->Propose(in.Str(24));
          break;
        case 3: {
          raftpb::ConfChange cc;
          cc.set_type(static_cast<raftpb::ConfChange::Type>(in.U8() % 4));
          cc.set_node_id(in.U8() % 6);
          (void)core_->ProposeConfChange(cc);
          break;
        }
        case 4:
          (void)core_->ReadIndex(in.Str(4));
          break;
        case 5:
          core_->TransferLeader(in.U8() % 5);
          break;
        case 6:
          core_->ReportUnreachable(in.U8() % 5);
          break;
        case 7:
          core_->LeaderUnreachable();
          break;
        case 8:
          core_->ReportSnapshot(in.U8() % 5, in.Bool());
          break;
        case 9:
          SnapshotAndCompact(in);
          break;
        case 10:
          write_async_ = true;  // the next Ready is written while the member goes on
          break;
        case 11:
          FinishWrite();
          break;
        case 12:
          Restart();
          break;
        default:
          StepPeer(in);
          break;
      }
      // A loss found (a leader counting on entries this member no longer holds): the node
      // stops the member here, and nothing the core made since leaves or is written.
      if (!core_->storage_error().ok()) return;
      Drain();
      if (!core_->storage_error().ok()) return;
    }
    FinishWrite();
    Drain();
  }

 private:
  // What a peer sends, as the node hands it to the core: checked, then moved in.
  void StepPeer(Bytes& in) {
    static constexpr raftpb::MessageType kTypes[] = {
        raftpb::MSG_APP,          raftpb::MSG_APP_RESP,        raftpb::MSG_VOTE,
        raftpb::MSG_VOTE_RESP,    raftpb::MSG_PRE_VOTE,        raftpb::MSG_PRE_VOTE_RESP,
        raftpb::MSG_HEARTBEAT,    raftpb::MSG_HEARTBEAT_RESP,  raftpb::MSG_SNAP,
        raftpb::MSG_PROP,         raftpb::MSG_READ_INDEX,      raftpb::MSG_READ_INDEX_RESP,
        raftpb::MSG_TIMEOUT_NOW,  raftpb::MSG_TRANSFER_LEADER, raftpb::MSG_REMOVED,
        raftpb::MSG_HUP,          raftpb::MSG_CHECK_QUORUM,    raftpb::MSG_UNREACHABLE,
    };
    const uint64_t last = core_->log().LastIndex();
    Message m;
    const uint8_t t = in.U8();
    m.set_type(t < 240 ? kTypes[t % (sizeof(kTypes) / sizeof(kTypes[0]))]
                       : static_cast<raftpb::MessageType>(t % 24));
    const uint8_t from = in.U8();
    m.set_from(from < 250 ? 2 + from % 2 : from % 6);  // mostly 2 and 3
    m.set_to(in.U8() < 250 ? 1 : 2);
    m.set_term(in.Near(core_->term()));
    m.set_log_term(in.Near(core_->log().LastTerm()));
    m.set_index(in.Near(last > 4 ? last - 4 : 0));
    m.set_commit(in.Near(core_->log().committed()));
    // A correct leader's heartbeat never passes what the follower holds; one that does stops
    // the member (a loss found), so most stay within it.
    if (m.type() == raftpb::MSG_HEARTBEAT && in.U8() < 224) m.set_commit(std::min(m.commit(), last));
    m.set_reject(in.Bool());
    m.set_reject_hint(in.Near(last > 4 ? last - 4 : 0));
    if (in.Bool()) m.set_context(in.Str(4));
    const int n = in.U8() % 4;
    uint64_t term = m.log_term();
    for (int i = 0; i < n; ++i) {
      raftpb::Entry* e = m.add_entries();
      const uint8_t shape = in.U8();
      e->set_index(shape < 240 ? m.index() + 1 + i : in.Near(m.index()));
      if (shape % 3 == 0 && term < m.term()) ++term;
      e->set_term(shape < 248 ? term : in.Near(term));
      if (shape % 7 == 0) {
        e->set_type(raftpb::ENTRY_TYPE_CONF_CHANGE);
        if (shape % 2 == 0) {
          raftpb::ConfChange cc;
          cc.set_type(static_cast<raftpb::ConfChange::Type>(in.U8() % 4));
          cc.set_node_id(in.U8() % 6);
          e->set_data(cc.SerializeAsString());
        } else {
          e->set_data(in.Str(6));  // whatever a buggy peer sends
        }
      } else {
        e->set_data(in.Str(8));
      }
    }
    if (m.type() == raftpb::MSG_SNAP) {
      raftpb::SnapshotMetadata* meta = m.mutable_snapshot()->mutable_metadata();
      meta->set_index(in.Near(core_->log().committed() + 2));
      meta->set_term(in.Near(m.term()));
      const uint8_t members = in.U8();
      for (uint64_t id = 1; id <= 4; ++id) {
        if (members & (1u << id)) meta->mutable_conf_state()->add_voters(id);
        if (members & (16u << id) && !(members & (1u << id))) {
          meta->mutable_conf_state()->add_learners(id);
        }
      }
      m.mutable_snapshot()->set_data(in.Str(8));
      m.set_snapshot_unfilled(in.U8() == 0xfe);
    }
    if (kTrace) std::fprintf(stderr, "step %s\n", m.ShortDebugString().c_str());
    if (absl::Status refused = CheckPeerMessage(m, 1); !refused.ok()) {
      if (kTrace) std::fprintf(stderr, "  refused: %s\n", refused.ToString().c_str());
      return;  // as the node does
    }
    const absl::Status stepped = core_->Step(std::move(m));
    if (kTrace && !stepped.ok()) std::fprintf(stderr, "  %s\n", stepped.ToString().c_str());
  }

  // What the node does every snapshot interval: a snapshot at the applied index, and the log
  // compacted behind it but for a few entries.
  void SnapshotAndCompact(Bytes& in) {
    absl::StatusOr<raftpb::SnapshotMetadata> last = store_.SnapshotMetadata();
    if (!last.ok() || applied_ <= last->index()) return;
    // As Node::MaybeSnapshot: only once every applied entry is written (the store takes the
    // snapshot's term from the entry it holds at that index).
    if (writing_ || applied_ > store_.LastIndex()) return;
    const std::vector<raftpb::Entry>& unwritten = core_->log().UnstableEntries();
    if (!unwritten.empty() && unwritten.front().index() <= applied_) return;
    absl::StatusOr<raftpb::Snapshot> snap = store_.SaveSnapshot(applied_, conf_state_, "state");
    if (!snap.ok()) Broken("snapshot at the applied index refused");
    auto known = committed_.find(applied_);
    if (known != committed_.end() && known->second != snap->metadata().term()) {
      Broken("a snapshot whose term is not its index's committed entry's");
    }
    const uint64_t keep = in.U8() % 4;
    const uint64_t to = applied_ > keep ? applied_ - keep : applied_;
    if (to > store_.FirstIndex() && !store_.CompactTo(to).ok()) Broken("compaction refused");
  }

  void Start() {
    Config c;
    c.id = 1;
    c.storage = &store_;
    c.election_tick = 10;
    c.heartbeat_tick = 1;
    c.max_inflight_msgs = 4;  // small, so that a full window is reached
    c.max_size_per_msg = 256;
    c.random_seed = seed_;
    absl::StatusOr<raftpb::Snapshot> snap = store_.Snapshot();
    if (!snap.ok()) Broken("the store has no snapshot to start from");
    c.applied = snap->metadata().index();
    absl::StatusOr<std::unique_ptr<Core>> core = Core::Create(c);
    if (!core.ok()) Broken("Core::Create failed on a store the member wrote");
    core_ = std::move(*core);
    // The state machine restarts from the snapshot and replays the committed log after it.
    applied_ = snap->metadata().index();
    conf_state_ = snap->metadata().conf_state();
    hard_ = store_.hard_state();
  }

  // A crash: what was being written is lost; the member comes back from its store.
  void Restart() {
    writing_.reset();
    write_async_ = false;
    Start();
    // Entries applied as committed before this member wrote them (TakeCommittedEntries: they
    // are on a quorum's disks) may be gone from its own log now, or an older entry there in
    // their place: past the commit index it kept, they are the leader's to send again.
    committed_.erase(committed_.upper_bound(core_->log().committed()), committed_.end());
  }

  // While a Ready is being written: what may leave or be applied at once.
  void WhileWriting() {
    for (const Message& m : core_->TakeEarlyMessages()) CheckEarly(m);
    if (!core_->storage_error().ok()) return;
    for (const raftpb::Entry& e : core_->TakeCommittedEntries()) Apply(e);
  }

  // The write under way completes: persisted, its messages leave, Advance.
  void FinishWrite() {
    if (!writing_) return;
    if (!core_->storage_error().ok()) return;
    Ready rd = std::move(*writing_);
    writing_.reset();
    Persist(rd);
    core_->Advance(rd);
    CheckLog();
  }

  void Persist(const Ready& rd) {
    if (rd.snapshot && !store_.ApplySnapshot(*rd.snapshot).ok()) {
      Broken("the core handed out a snapshot older than the stored one");
    }
    if (!store_.Append(rd.entries).ok()) Broken("the core handed out entries with a gap");
    if (rd.hard_state) store_.SetHardState(*rd.hard_state);
    for (const Message& m : rd.messages) CheckSent(m);
  }

  void Drain() {
    if (writing_) {
      WhileWriting();
      return;
    }
    for (int rounds = 0; core_->HasReady(); ++rounds) {
      if (rounds > 100) Broken("a Ready after every Advance");
      Ready rd = core_->GetReady();
      if (!core_->storage_error().ok()) return;
      Check(rd);
      if (kTrace) {
        for (const raftpb::Entry& e : rd.entries) {
          std::fprintf(stderr, "  write entry %lu term %lu\n", (unsigned long)e.index(),
                       (unsigned long)e.term());
        }
        for (const Message& m : rd.early_messages) {
          std::fprintf(stderr, "  early %s\n", m.ShortDebugString().c_str());
        }
        for (const Message& m : rd.messages) {
          std::fprintf(stderr, "  send %s\n", m.ShortDebugString().c_str());
        }
        if (rd.snapshot) {
          std::fprintf(stderr, "  snapshot %s\n",
                       rd.snapshot->metadata().ShortDebugString().c_str());
        }
      }
      if (rd.snapshot) {
        applied_ = rd.snapshot->metadata().index();
        conf_state_ = rd.snapshot->metadata().conf_state();
      }
      for (const Message& m : rd.early_messages) CheckEarly(m);
      for (const raftpb::Entry& e : rd.committed_entries) Apply(e);
      if (write_async_) {
        // Written while the member goes on: the messages wait for the write.
        write_async_ = false;
        writing_ = std::move(rd);
        WhileWriting();
        return;
      }
      Persist(rd);
      core_->Advance(rd);
      CheckLog();
    }
  }

  void Check(const Ready& rd) {
    if (rd.hard_state) {
      const raftpb::HardState& hs = *rd.hard_state;
      if (hs.term() < hard_.term()) Broken("the term went back");
      if (hs.term() == hard_.term() && hard_.vote() != 0 && hs.vote() != hard_.vote()) {
        Broken("a second vote in one term");
      }
      if (hs.commit() < hard_.commit()) Broken("the commit index went back");
      hard_ = hs;
    }
    if (rd.snapshot && rd.snapshot->metadata().index() <= core_->log().committed() &&
        rd.snapshot->metadata().index() <= applied_) {
      Broken("a snapshot behind what was applied");
    }
  }

  // Early messages leave before the Ready that made them is persisted: a leader's appends and
  // heartbeats, a follower's heartbeat responses, all in a term (and with a vote) already on
  // the disk.
  void CheckEarly(const Message& m) {
    const raftpb::HardState disk = store_.hard_state();
    const bool leads = core_->role() == Role::kLeader;
    if (leads ? m.type() != raftpb::MSG_APP && m.type() != raftpb::MSG_HEARTBEAT
              : m.type() != raftpb::MSG_HEARTBEAT_RESP) {
      Broken("a message that depends on an unwritten Ready left before it was persisted");
    }
    if (m.term() != disk.term() || core_->vote() != disk.vote()) {
      Broken("an early message in a term or with a vote not yet on the disk");
    }
  }

  void CheckSent(const Message& m) {
    if (m.type() == raftpb::MSG_VOTE_RESP && !m.reject()) {
      const raftpb::HardState hs = store_.hard_state();
      // The vote, or a later term (no second vote in this one then), is on the disk.
      if (hs.term() < m.term() || (hs.term() == m.term() && hs.vote() != m.to())) {
        Broken("a vote granted before it was on the disk");
      }
    }
    if (m.type() == raftpb::MSG_APP_RESP && !m.reject() && m.index() > store_.LastIndex()) {
      Broken("an append acknowledged before its entries were on the disk");
    }
  }

  void Apply(const raftpb::Entry& e) {
    if (e.index() != applied_ + 1) Broken("committed entries out of order or with a gap");
    applied_ = e.index();
    auto [it, fresh] = committed_.emplace(e.index(), e.term());
    if (!fresh && it->second != e.term()) Broken("a committed entry changed");
    if (e.type() == raftpb::ENTRY_TYPE_CONF_CHANGE) {
      raftpb::ConfChange cc;
      // The node fails a CHECK here: a committed change it cannot read.
      if (!cc.ParseFromString(e.data())) Broken("a committed conf change that does not parse");
      conf_state_ = core_->ApplyConfChange(cc);
    }
  }

  void CheckLog() {
    const RaftLog& log = core_->log();
    if (log.committed() > log.LastIndex()) Broken("commit index past the last index");
    for (auto it = committed_.begin(); it != committed_.end();) {
      if (it->first < log.FirstIndex()) {
        it = committed_.erase(it);  // compacted into a snapshot
        continue;
      }
      absl::StatusOr<uint64_t> term = log.Term(it->first);
      if (!term.ok() || *term != it->second) Broken("a committed entry was replaced or lost");
      ++it;
    }
  }

  MemoryLogStore store_;
  uint64_t seed_ = 0;
  std::unique_ptr<Core> core_;
  bool write_async_ = false;       // the next Ready is written asynchronously
  std::optional<Ready> writing_;   // the Ready being written
  raftpb::HardState hard_;
  raftpb::ConfState conf_state_;
  uint64_t applied_ = 0;
  std::map<uint64_t, uint64_t> committed_;  // index -> term of what was handed out committed
};

}  // namespace
}  // namespace shoal::raft

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  shoal::raft::Bytes in(data, size);
  shoal::raft::Harness h(in.U8());
  h.Run(in);
  return 0;
}
