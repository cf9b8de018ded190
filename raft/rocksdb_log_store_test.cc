#include "raft/rocksdb_log_store.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <rocksdb/db.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <random>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "raft/core.h"
#include "raft/memory_log_store.h"
#include "raft/testing/entries.h"
#include "raft/testing/power_loss_fs.h"
#include "raft/testing/wal_writer.h"
#include "raft/wal_prefill.h"

namespace shoal::raft {
namespace {

using testing::E;

std::vector<raftpb::Entry> Range(uint64_t lo, uint64_t hi, uint64_t term) {
  std::vector<raftpb::Entry> out;
  for (uint64_t i = lo; i <= hi; ++i) out.push_back(E(i, term, "v" + std::to_string(i)));
  return out;
}

raftpb::HardState HS(uint64_t term, uint64_t vote, uint64_t commit) {
  raftpb::HardState hs;
  hs.set_term(term);
  hs.set_vote(vote);
  hs.set_commit(commit);
  return hs;
}

// The store's write-ahead log files, oldest first.
std::vector<std::filesystem::path> WalFiles(const std::filesystem::path& dir) {
  std::vector<std::filesystem::path> wals;
  for (const auto& f : std::filesystem::directory_iterator(dir)) {
    if (f.path().extension() == ".log") wals.push_back(f.path());
  }
  std::sort(wals.begin(), wals.end());
  return wals;
}

class RocksDbLogStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const char* tmp = std::getenv("TEST_TMPDIR");
    dir_ = std::filesystem::path(tmp ? tmp : "/tmp") /
           ::testing::UnitTest::GetInstance()->current_test_info()->name();
    std::filesystem::remove_all(dir_);
  }
  std::unique_ptr<RocksDbLogStore> Open() {
    absl::StatusOr<std::unique_ptr<RocksDbLogStore>> s = RocksDbLogStore::Open({dir_.string()});
    EXPECT_TRUE(s.ok()) << s.status();
    return s.ok() ? std::move(*s) : nullptr;
  }
  absl::Status OpenStatus() { return RocksDbLogStore::Open({dir_.string()}).status(); }
  // A fresh store in which a child process makes `n` synced Readies (entry i with 100 bytes
  // and commit i) and dies: everything is in the write-ahead log. Returns the log file.
  // `prefill`: RocksDbLogStore::Options::wal_prefill_bytes (with it, the log goes on in zeros
  // after its last record).
  std::filesystem::path WriteReadiesAndDie(uint64_t n, uint64_t prefill = kDefaultPrefill) {
    std::filesystem::remove_all(dir_);
    const pid_t child = fork();
    if (child == 0) {
      RocksDbLogStore::Options o{dir_.string()};
      o.wal_prefill_bytes = prefill;
      auto opened = RocksDbLogStore::Open(o);
      if (!opened.ok()) _exit(2);
      for (uint64_t i = 1; i <= n; ++i) {
        const raftpb::HardState hs = HS(1, 1, i);
        if (!(*opened)->Save(&hs, {E(i, 1, std::string(100, 'x'))}, nullptr, true).ok()) {
          _exit(3);
        }
      }
      _exit(0);  // as a crash: nothing flushed or closed
    }
    int status = 0;
    EXPECT_EQ(waitpid(child, &status, 0), child);
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status;
    std::filesystem::path wal;
    for (const auto& f : std::filesystem::directory_iterator(dir_)) {
      if (f.path().extension() == ".log" &&
          (wal.empty() || f.file_size() > std::filesystem::file_size(wal))) {
        wal = f.path();
      }
    }
    return wal;
  }
  static std::string ReadFile(const std::filesystem::path& path) {
    std::ifstream in(path, std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(in), {});
  }
  static void WriteFile(const std::filesystem::path& path, const std::string& bytes) {
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out << bytes;
  }
  static constexpr uint64_t kDefaultPrefill = RocksDbLogStore::kDefaultWalPrefillBytes;
  // Where the records of a write-ahead log begin (7-byte headers: CRC, length, type; none
  // across a 32 KiB block's end), up to a header of zeros (where a prefilled log's zeros begin).
  static std::vector<size_t> RecordStarts(const std::string& bytes) {
    std::vector<size_t> starts;
    for (size_t at = 0; at + 7 <= bytes.size();) {
      if (at / 32768 != (at + 6) / 32768) {
        at = (at / 32768 + 1) * 32768;
        continue;
      }
      if (bytes.compare(at, 7, std::string(7, '\0')) == 0) break;
      starts.push_back(at);
      at += 7 + (static_cast<uint8_t>(bytes[at + 4]) |
                 static_cast<size_t>(static_cast<uint8_t>(bytes[at + 5])) << 8);
    }
    return starts;
  }
  // Where the last record ends: the end of what was written, zeros after it.
  static size_t RecordsEnd(const std::string& bytes) {
    const std::vector<size_t> starts = RecordStarts(bytes);
    if (starts.empty()) return 0;
    const size_t last = starts.back();
    return last + 7 + (static_cast<uint8_t>(bytes[last + 4]) |
                       static_cast<size_t>(static_cast<uint8_t>(bytes[last + 5])) << 8);
  }
  // Cuts a write-ahead log at `at`: shortens it, or, when it was prefilled, zeros it from there
  // on (what a power cut leaves of a write over zeros).
  static void CutAt(std::string* bytes, size_t at, uint64_t prefill) {
    if (prefill == 0) {
      bytes->resize(at);
    } else {
      std::fill(bytes->begin() + static_cast<std::ptrdiff_t>(at), bytes->end(), '\0');
    }
  }
  // Direct access to the database, to damage it the way a disk or a bug would.
  std::unique_ptr<rocksdb::DB> Raw() {
    rocksdb::DB* db = nullptr;
    rocksdb::Status s = rocksdb::DB::Open(rocksdb::Options(), dir_.string(), &db);
    EXPECT_TRUE(s.ok()) << s.ToString();
    return std::unique_ptr<rocksdb::DB>(db);
  }
  static std::string Key(uint64_t index) {
    std::string key(9, '\0');
    key[0] = 'e';
    for (int i = 0; i < 8; ++i) key[1 + i] = static_cast<char>(index >> (56 - 8 * i));
    return key;
  }

  // LosingPowerKeepsEverySyncedWrite's seeds (below), counting in `refused` the stores that
  // refused to open with DATA_LOSS (allowed only with out-of-order writeback).
  void RunPowerLossSeeds(bool out_of_order, uint64_t seeds, uint64_t* refused);

  std::filesystem::path dir_;
};

TEST_F(RocksDbLogStoreTest, EmptyStoreStartsAfterIndexZero) {
  auto s = Open();
  EXPECT_EQ(s->FirstIndex(), 1u);
  EXPECT_EQ(s->LastIndex(), 0u);
  EXPECT_EQ(*s->Term(0), 0u);
  EXPECT_TRUE(IsUnavailableIndex(s->Term(1).status()));
}

TEST_F(RocksDbLogStoreTest, EverythingSavedSurvivesAReopen) {
  {
    auto s = Open();
    const raftpb::HardState hs = HS(3, 2, 4);
    ASSERT_TRUE(s->Save(&hs, Range(1, 5, 3), nullptr, true).ok());
    raftpb::ConfState cs;
    cs.add_voters(1);
    cs.add_voters(2);
    cs.add_learners(3);
    ASSERT_TRUE(s->SaveSnapshot(4, cs, "state at 4").ok());
  }
  auto s = Open();
  EXPECT_EQ(s->LastIndex(), 5u);
  EXPECT_EQ(s->Snapshot()->metadata().index(), 4u);
  InitialState init = *s->GetInitialState();
  EXPECT_EQ(init.hard_state.term(), 3u);
  EXPECT_EQ(init.hard_state.vote(), 2u);
  EXPECT_EQ(init.hard_state.commit(), 4u);
  EXPECT_EQ(init.conf_state.voters_size(), 2);
  EXPECT_EQ(init.conf_state.learners_size(), 1);
  std::vector<raftpb::Entry> ents = *s->Entries(2, 5, UINT64_MAX);
  ASSERT_EQ(ents.size(), 3u);
  EXPECT_EQ(ents[0].data(), "v2");
  EXPECT_EQ(ents[2].index(), 4u);
  EXPECT_EQ(s->Entries(1, 6, 1)->size(), 1u);  // size limit, at least one
}

// The node writes its snapshots on a thread of their own while the log goes on being written.
TEST_F(RocksDbLogStoreTest, SnapshotsWrittenAlongsideAppendsLoseNothing) {
  {
    auto s = Open();
    std::atomic<uint64_t> durable{0};  // entries 1..durable are written
    std::atomic<bool> stop{false};
    std::thread snapshots([&] {
      uint64_t last = 0;
      while (last < 1900 && !stop.load()) {
        const uint64_t upto = durable.load();
        if (upto <= last + 50) {
          std::this_thread::yield();
          continue;
        }
        absl::StatusOr<raftpb::Snapshot> snap =
            s->SaveSnapshot(upto, raftpb::ConfState(), std::string(64 << 10, 's'));
        ASSERT_TRUE(snap.ok()) << snap.status();
        last = upto;
      }
    });
    for (uint64_t i = 1; i <= 2000; i += 10) {
      const raftpb::HardState hs = HS(1, 1, i + 9);
      const absl::Status saved = s->Save(&hs, Range(i, i + 9, 1), nullptr, true);
      EXPECT_TRUE(saved.ok()) << saved;
      if (!saved.ok()) break;
      durable.store(i + 9);
    }
    if (durable.load() < 2000) stop.store(true);
    snapshots.join();
  }
  auto s = Open();
  EXPECT_EQ(s->LastIndex(), 2000u);
  EXPECT_GE(s->Snapshot()->metadata().index(), 1900u);
  EXPECT_EQ(s->FirstIndex(), 1u);  // nothing compacted
  std::vector<raftpb::Entry> all = *s->Entries(1, 2001, UINT64_MAX);
  ASSERT_EQ(all.size(), 2000u);
  for (uint64_t i = 0; i < all.size(); ++i) EXPECT_EQ(all[i].index(), i + 1);
}

TEST_F(RocksDbLogStoreTest, NewEntriesReplaceAConflictingSuffix) {
  {
    auto s = Open();
    const raftpb::HardState term1 = HS(1, 0, 0), term2 = HS(2, 0, 0);
    ASSERT_TRUE(s->Save(&term1, Range(1, 6, 1), nullptr, true).ok());
    ASSERT_TRUE(s->Save(&term2, Range(3, 4, 2), nullptr, true).ok());
    EXPECT_EQ(s->LastIndex(), 4u);
    EXPECT_EQ(*s->Term(4), 2u);
    EXPECT_FALSE(s->Save(nullptr, Range(9, 9, 2), nullptr, true).ok());  // a gap
  }
  auto s = Open();
  EXPECT_EQ(s->LastIndex(), 4u);
  EXPECT_EQ(*s->Term(3), 2u);
  EXPECT_EQ(*s->Term(2), 1u);
}

TEST_F(RocksDbLogStoreTest, SnapshotsAndCompactionSurviveAReopen) {
  {
    auto s = Open();
    const raftpb::HardState hs = HS(2, 0, 0);
    ASSERT_TRUE(s->Save(&hs, Range(1, 10, 2), nullptr, true).ok());
    raftpb::ConfState cs;
    cs.add_voters(1);
    ASSERT_TRUE(s->SaveSnapshot(8, cs, "state at 8").ok());
    ASSERT_TRUE(s->CompactTo(6).ok());
    EXPECT_EQ(s->FirstIndex(), 7u);
    EXPECT_TRUE(IsCompacted(s->Entries(5, 8, UINT64_MAX).status()));
    EXPECT_FALSE(s->CompactTo(9).ok());  // beyond the snapshot
  }
  auto s = Open();
  EXPECT_EQ(s->FirstIndex(), 7u);
  EXPECT_EQ(s->LastIndex(), 10u);
  EXPECT_EQ(*s->Term(6), 2u);
  EXPECT_EQ(s->Snapshot()->data(), "state at 8");
  EXPECT_EQ(s->Snapshot()->metadata().term(), 2u);
}

// The snapshot's data (the whole state) is read from disk when asked for, not kept in memory;
// its metadata is at hand for the core without reading the data.
TEST_F(RocksDbLogStoreTest, ASnapshotsDataIsReadFromDiskAndItsMetadataIsAtHand) {
  auto s = Open();
  EXPECT_EQ(s->SnapshotMetadata()->index(), 0u);
  EXPECT_EQ(s->Snapshot()->metadata().index(), 0u);
  ASSERT_TRUE(s->Save(nullptr, Range(1, 10, 2), nullptr, true).ok());
  raftpb::ConfState cs;
  cs.add_voters(1);
  const std::string state(1 << 20, 'x');
  ASSERT_TRUE(s->SaveSnapshot(8, cs, state).ok());
  EXPECT_EQ(s->SnapshotMetadata()->index(), 8u);
  EXPECT_EQ(s->SnapshotMetadata()->term(), 2u);
  EXPECT_EQ(s->SnapshotMetadata()->conf_state().voters(0), 1u);
  EXPECT_EQ(s->Snapshot()->data(), state);
  // A received one, installed with the log's write, replaces it.
  raftpb::Snapshot received;
  received.set_data("leader state");
  received.mutable_metadata()->set_index(50);
  received.mutable_metadata()->set_term(7);
  ASSERT_TRUE(s->Save(nullptr, {}, &received, true).ok());
  EXPECT_EQ(s->SnapshotMetadata()->index(), 50u);
  EXPECT_EQ(s->Snapshot()->data(), "leader state");
  // And the core's message for a follower is filled in from it.
  raftpb::Message m;
  m.set_type(raftpb::MSG_SNAP);
  m.set_snapshot_unfilled(true);
  *m.mutable_snapshot()->mutable_metadata() = *s->SnapshotMetadata();
  ASSERT_TRUE(FillSnapshot(*s, m).ok());
  EXPECT_EQ(m.snapshot().data(), "leader state");
  EXPECT_FALSE(m.snapshot_unfilled());
}

// A snapshot that is not followed by a compaction leaves the log as it was, also across a
// reopen. (The store used to take the first stored entry at or below the snapshot for the
// compaction marker, so a reopen hid entry 1 of a never-compacted log, and after an installed
// snapshot lost the term of the snapshot's index: found by the power-loss test.)
TEST_F(RocksDbLogStoreTest, AReopenKeepsTheFirstIndexAfterASnapshotWithoutCompaction) {
  raftpb::ConfState cs;
  cs.add_voters(1);
  {
    auto s = Open();
    const raftpb::HardState hs = HS(2, 0, 0);
    ASSERT_TRUE(s->Save(&hs, Range(1, 10, 2), nullptr, true).ok());
    ASSERT_TRUE(s->SaveSnapshot(8, cs, "state at 8").ok());
  }
  {
    auto s = Open();
    EXPECT_EQ(s->FirstIndex(), 1u);
    EXPECT_EQ(s->Entries(1, 11, UINT64_MAX)->size(), 10u);
    // Then a snapshot from a leader, entries after it, and a snapshot of our own above it.
    raftpb::Snapshot snap;
    snap.mutable_metadata()->set_index(20);
    snap.mutable_metadata()->set_term(3);
    *snap.mutable_metadata()->mutable_conf_state() = cs;
    const raftpb::HardState hs = HS(4, 0, 20);
    ASSERT_TRUE(s->Save(&hs, Range(21, 25, 4), &snap, true).ok());
    ASSERT_TRUE(s->SaveSnapshot(23, cs, "state at 23").ok());
    EXPECT_EQ(s->FirstIndex(), 21u);
  }
  auto s = Open();
  EXPECT_EQ(s->FirstIndex(), 21u);
  EXPECT_EQ(*s->Term(20), 3u);  // the installed snapshot's term, needed to accept appends after it
  EXPECT_EQ(s->Entries(21, 26, UINT64_MAX)->size(), 5u);
}

// A member starts from the membership as of its snapshot and replays the log after it: the
// store keeps no membership of its own (one kept as last applied had older changes replayed on
// top of it after a restart: memberships the cluster never had).
TEST_F(RocksDbLogStoreTest, TheMembershipStartedFromIsTheSnapshots) {
  raftpb::ConfState cs;
  cs.add_voters(1);
  cs.add_voters(2);
  cs.add_learners(3);
  {
    auto s = Open();
    const raftpb::HardState hs = HS(2, 0, 0);
    ASSERT_TRUE(s->Save(&hs, Range(1, 10, 2), nullptr, true).ok());
    EXPECT_EQ(s->GetInitialState()->conf_state.ByteSizeLong(), 0u);  // no snapshot yet
    ASSERT_TRUE(s->SaveSnapshot(6, cs, "state at 6").ok());
    EXPECT_EQ(s->GetInitialState()->conf_state.SerializeAsString(), cs.SerializeAsString());
  }
  auto s = Open();
  EXPECT_EQ(s->GetInitialState()->conf_state.SerializeAsString(), cs.SerializeAsString());
}

// A store written before the membership moved into the log keeps it under key "c" and has
// no membership entries: opened as it is, its member would start with no membership and never
// vote. It is refused with what to do, and left as it was.
TEST_F(RocksDbLogStoreTest, AStoreWithTheRetiredMembershipKeyIsRefused) {
  {
    auto s = Open();
    const raftpb::HardState hs = HS(1, 0, 0);
    ASSERT_TRUE(s->Save(&hs, Range(1, 5, 1), nullptr, true).ok());
  }
  {
    auto raw = Raw();
    ASSERT_TRUE(raw->Put(rocksdb::WriteOptions(), "c", "old membership").ok());
  }
  absl::Status st = OpenStatus();
  EXPECT_EQ(st.code(), absl::StatusCode::kFailedPrecondition) << st;
  EXPECT_NE(st.message().find("join it to the cluster again"), std::string::npos) << st;
  std::string value;
  EXPECT_TRUE(Raw()->Get(rocksdb::ReadOptions(), "c", &value).ok());
  EXPECT_EQ(value, "old membership");
}

// A new cluster's membership is the head of its log, committed, so that every member (and any
// member that joins later and receives the log from index 1) replays the cluster's history.
TEST_F(RocksDbLogStoreTest, BootstrapStartsANewClustersLogOnlyOnce) {
  std::vector<raftpb::RaftMember> members(3);
  for (uint64_t i = 0; i < 3; ++i) {
    members[i].set_raft_id(i + 1);
    if (i < 2) members[i].set_addr(absl::StrCat("127.0.0.1:", 4000 + i));
  }
  {
    auto s = Open();
    std::vector<raftpb::RaftMember> zero(1), twice(2);
    twice[0].set_raft_id(5);
    twice[1].set_raft_id(5);
    for (const auto& bad : {std::vector<raftpb::RaftMember>{}, zero, twice}) {
      absl::Status st = Bootstrap(*s, bad);
      EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument) << st;
      EXPECT_EQ(s->LastIndex(), 0u);
    }
    ASSERT_TRUE(Bootstrap(*s, members).ok());
  }
  auto s = Open();
  InitialState init = *s->GetInitialState();
  EXPECT_EQ(init.hard_state.term(), 1u);
  EXPECT_EQ(init.hard_state.commit(), 3u);
  EXPECT_EQ(init.conf_state.ByteSizeLong(), 0u);  // the membership is in the log
  std::vector<raftpb::Entry> ents = *s->Entries(1, 4, UINT64_MAX);
  ASSERT_EQ(ents.size(), 3u);
  for (uint64_t i = 0; i < 3; ++i) {
    EXPECT_EQ(ents[i].type(), raftpb::ENTRY_TYPE_CONF_CHANGE);
    EXPECT_EQ(ents[i].term(), 1u);
    raftpb::ConfChange cc;
    ASSERT_TRUE(cc.ParseFromString(ents[i].data()));
    EXPECT_EQ(cc.type(), raftpb::ConfChange::TYPE_ADD_NODE);
    EXPECT_EQ(cc.node_id(), i + 1);
    raftpb::RaftMember m;
    ASSERT_TRUE(m.ParseFromString(cc.context()));
    EXPECT_EQ(m.addr(), members[i].addr());
  }
  absl::Status again = Bootstrap(*s, members);
  EXPECT_EQ(again.code(), absl::StatusCode::kFailedPrecondition) << again;
  EXPECT_THAT(std::string(again.message()), ::testing::HasSubstr("not empty"));
  EXPECT_EQ(s->LastIndex(), 3u);
}

TEST_F(RocksDbLogStoreTest, AnInstalledSnapshotReplacesTheLog) {
  {
    auto s = Open();
    ASSERT_TRUE(s->Save(nullptr, Range(1, 3, 1), nullptr, true).ok());
    raftpb::Snapshot snap;
    snap.set_data("leader state");
    snap.mutable_metadata()->set_index(50);
    snap.mutable_metadata()->set_term(7);
    snap.mutable_metadata()->mutable_conf_state()->add_voters(4);
    const raftpb::HardState hs = HS(7, 0, 50);
    ASSERT_TRUE(s->Save(&hs, Range(51, 52, 7), &snap, true).ok());
  }
  auto s = Open();
  EXPECT_EQ(s->FirstIndex(), 51u);
  EXPECT_EQ(s->LastIndex(), 52u);
  EXPECT_EQ(*s->Term(50), 7u);
  EXPECT_EQ(s->GetInitialState()->conf_state.voters(0), 4u);
}

TEST_F(RocksDbLogStoreTest, DetectsACorruptEntry) {
  {
    auto s = Open();
    const raftpb::HardState hs = HS(1, 0, 0);
    ASSERT_TRUE(s->Save(&hs, Range(1, 5, 1), nullptr, true).ok());
  }
  {
    auto raw = Raw();
    std::string value;
    ASSERT_TRUE(raw->Get(rocksdb::ReadOptions(), Key(3), &value).ok());
    value[value.size() - 1] ^= 0x5a;  // a flipped bit on disk
    ASSERT_TRUE(raw->Put(rocksdb::WriteOptions(), Key(3), value).ok());
  }
  absl::Status st = OpenStatus();
  EXPECT_EQ(st.code(), absl::StatusCode::kDataLoss);
  EXPECT_NE(st.message().find("entry 3"), std::string::npos) << st;
  EXPECT_NE(st.message().find("checksum"), std::string::npos) << st;
  // And what to do about it.
  EXPECT_THAT(std::string(st.message()),
              ::testing::HasSubstr("remove this member from the cluster and add it back with an "
                                   "empty store"));
}

TEST_F(RocksDbLogStoreTest, DetectsAMissingEntry) {
  {
    auto s = Open();
    const raftpb::HardState hs = HS(1, 0, 0);
    ASSERT_TRUE(s->Save(&hs, Range(1, 5, 1), nullptr, true).ok());
  }
  ASSERT_TRUE(Raw()->Delete(rocksdb::WriteOptions(), Key(3)).ok());
  absl::Status st = OpenStatus();
  EXPECT_EQ(st.code(), absl::StatusCode::kDataLoss);
  EXPECT_NE(st.message().find("entries 3 to 3 are missing"), std::string::npos) << st;
}

// The compaction marker says where the log starts: without it, a compacted log looks as if its
// head had been cut off, and the store says so rather than guess.
TEST_F(RocksDbLogStoreTest, DetectsALostCompactionMarker) {
  {
    auto s = Open();
    const raftpb::HardState hs = HS(1, 0, 0);
    ASSERT_TRUE(s->Save(&hs, Range(1, 10, 1), nullptr, true).ok());
    raftpb::ConfState cs;
    cs.add_voters(1);
    ASSERT_TRUE(s->SaveSnapshot(8, cs, "state at 8").ok());
    ASSERT_TRUE(s->CompactTo(6).ok());
  }
  ASSERT_TRUE(Raw()->Delete(rocksdb::WriteOptions(), "m").ok());
  absl::Status st = OpenStatus();
  EXPECT_EQ(st.code(), absl::StatusCode::kDataLoss);
  EXPECT_NE(st.message().find("entries 1 to 6 are missing"), std::string::npos) << st;
}

TEST_F(RocksDbLogStoreTest, DetectsALogTruncatedBehindTheCommitIndex) {
  {
    auto s = Open();
    const raftpb::HardState hs = HS(1, 1, 5);
    ASSERT_TRUE(s->Save(&hs, Range(1, 5, 1), nullptr, true).ok());
  }
  {
    auto raw = Raw();
    ASSERT_TRUE(raw->Delete(rocksdb::WriteOptions(), Key(5)).ok());
    ASSERT_TRUE(raw->Delete(rocksdb::WriteOptions(), Key(4)).ok());
  }
  absl::Status st = OpenStatus();
  EXPECT_EQ(st.code(), absl::StatusCode::kDataLoss);
  EXPECT_NE(st.message().find("commit index 5 is beyond the last stored entry 3"),
            std::string::npos)
      << st;
}

// A second open of a store in use (a second manager started on the same data directory) is
// refused with what is going on, not as an internal error quoting RocksDB's lock message; the
// store in use goes on.
TEST_F(RocksDbLogStoreTest, AStoreInUseIsRefusedSayingSo) {
  auto first = Open();
  ASSERT_NE(first, nullptr);
  ASSERT_TRUE(first->Save(nullptr, Range(1, 3, 1), nullptr, true).ok());
  absl::StatusOr<std::unique_ptr<RocksDbLogStore>> second =
      RocksDbLogStore::Open(RocksDbLogStore::Options{dir_.string()});
  ASSERT_FALSE(second.ok());
  EXPECT_EQ(second.status().code(), absl::StatusCode::kFailedPrecondition) << second.status();
  EXPECT_THAT(std::string(second.status().message()),
              ::testing::HasSubstr("is in use: another process, or another store in this one, "
                                   "has it open"));
  ASSERT_TRUE(first->Save(nullptr, Range(4, 5, 1), nullptr, true).ok());
  EXPECT_EQ(first->LastIndex(), 5u);
}

// RocksDB's CURRENT file names the store's manifest; it exists from the store's creation on
// (before any log file or table), so a store holding tables and logs without it is damaged.
// RocksDB took it for no store: the first open (create_if_missing, the default) failed, but
// only after writing a new CURRENT naming a new, empty manifest; the second open then came up
// empty (term 0, no entries: the member's votes and log forgotten) and deleted the old tables.
TEST_F(RocksDbLogStoreTest, AStoreWhoseCurrentFileIsLostIsRefusedAndLeftAsItIs) {
  RocksDbLogStore::Options o{dir_.string()};
  o.memtable_bytes = 64 << 10;  // RocksDB's smallest: tables are written along the way
  {
    auto s = std::move(*RocksDbLogStore::Open(o));
    for (uint64_t i = 1; i <= 200; ++i) {
      const raftpb::HardState hs = HS(3, 2, i);
      ASSERT_TRUE(s->Save(&hs, {E(i, 3, std::string(1000, 'x'))}, nullptr, true).ok());
    }
  }
  { auto reopened = Open(); }  // replays and flushes the log: everything is in tables now
  const std::string current = ReadFile(dir_ / "CURRENT");
  ASSERT_FALSE(current.empty());
  std::filesystem::remove(dir_ / "CURRENT");
  for (bool create : {true, true, false}) {  // a retry must not find it changed
    RocksDbLogStore::Options attempt = o;
    attempt.create_if_missing = create;
    absl::StatusOr<std::unique_ptr<RocksDbLogStore>> opened = RocksDbLogStore::Open(attempt);
    ASSERT_FALSE(opened.ok()) << "opened with last index " << (*opened)->LastIndex()
                              << " and term "
                              << (*opened)->GetInitialState()->hard_state.term();
    EXPECT_EQ(opened.status().code(), absl::StatusCode::kDataLoss) << opened.status();
    EXPECT_THAT(std::string(opened.status().message()),
                ::testing::HasSubstr("CURRENT file is missing"));
    EXPECT_THAT(std::string(opened.status().message()),
                ::testing::HasSubstr("add it back with an empty store"));
    EXPECT_FALSE(std::filesystem::exists(dir_ / "CURRENT"));
  }
  // Nothing was changed: with its CURRENT file back, the store is whole.
  WriteFile(dir_ / "CURRENT", current);
  auto restored = Open();
  ASSERT_NE(restored, nullptr);
  EXPECT_EQ(restored->LastIndex(), 200u);
  EXPECT_EQ(restored->GetInitialState()->hard_state.vote(), 2u);
}

// A log's terms never go back: entries a newer term replaced (here: a suffix the store deleted
// when a new leader's entries replaced it, put back as a lost range deletion or a table from an
// old copy would) are no part of any log this member held. Open took them as its log, the
// replaced writes among them.
TEST_F(RocksDbLogStoreTest, DetectsATermGoingBack) {
  std::map<uint64_t, std::string> old;  // entries 7..10 of term 1, as stored
  {
    auto s = Open();
    const raftpb::HardState hs = HS(1, 1, 4);
    ASSERT_TRUE(s->Save(&hs, Range(1, 10, 1), nullptr, true).ok());
  }
  {
    auto raw = Raw();
    for (uint64_t i = 7; i <= 10; ++i) {
      ASSERT_TRUE(raw->Get(rocksdb::ReadOptions(), Key(i), &old[i]).ok());
    }
  }
  {
    auto s = Open();
    const raftpb::HardState hs = HS(2, 2, 4);
    ASSERT_TRUE(s->Save(&hs, Range(5, 6, 2), nullptr, true).ok());  // deletes 7..10
    EXPECT_EQ(s->LastIndex(), 6u);
  }
  {
    auto raw = Raw();
    for (const auto& [i, value] : old) {
      ASSERT_TRUE(raw->Put(rocksdb::WriteOptions(), Key(i), value).ok());
    }
  }
  absl::Status st = OpenStatus();
  EXPECT_EQ(st.code(), absl::StatusCode::kDataLoss) << st;
  EXPECT_THAT(std::string(st.message()),
              ::testing::HasSubstr("entry 7 has term 1, below the term 2 of entry 6"));

  // The same against the compaction marker: the log after it starts below its term.
  {
    auto raw = Raw();
    for (uint64_t i = 7; i <= 10; ++i) ASSERT_TRUE(raw->Delete(rocksdb::WriteOptions(), Key(i)).ok());
  }
  {
    auto s = Open();
    raftpb::ConfState cs;
    cs.add_voters(1);
    ASSERT_TRUE(s->SaveSnapshot(6, cs, "state at 6").ok());
    ASSERT_TRUE(s->CompactTo(6).ok());
  }
  {
    auto raw = Raw();
    for (const auto& [i, value] : old) {
      ASSERT_TRUE(raw->Put(rocksdb::WriteOptions(), Key(i), value).ok());
    }
  }
  st = OpenStatus();
  EXPECT_EQ(st.code(), absl::StatusCode::kDataLoss) << st;
  EXPECT_THAT(std::string(st.message()),
              ::testing::HasSubstr("entry 7 has term 1, below the term 2 of the compaction "
                                   "marker at 6"));
}

// A member is in a term before it takes entries or a snapshot of it, and its Ready stores the
// new term in the batch of the first of them: the stored term is never below the log's. A hard
// state behind the log (here an older copy's put back, or none at all) is older than the log,
// and opened, the member forgot the newer term it acted in: it could vote in it again.
TEST_F(RocksDbLogStoreTest, AHardStateBehindItsLogsTermIsRefused) {
  std::string term1;  // the hard state of term 1, as stored
  {
    auto s = Open();
    const raftpb::HardState hs = HS(1, 1, 2);
    ASSERT_TRUE(s->Save(&hs, Range(1, 3, 1), nullptr, true).ok());
  }
  ASSERT_TRUE(Raw()->Get(rocksdb::ReadOptions(), "h", &term1).ok());
  {
    auto s = Open();
    const raftpb::HardState hs = HS(3, 2, 2);  // voted for 2 in term 3, then took its entries
    ASSERT_TRUE(s->Save(&hs, Range(4, 5, 3), nullptr, true).ok());
  }
  ASSERT_NE(Open(), nullptr);  // as written, the store opens
  ASSERT_TRUE(Raw()->Put(rocksdb::WriteOptions(), "h", term1).ok());
  absl::Status st = OpenStatus();
  EXPECT_EQ(st.code(), absl::StatusCode::kDataLoss) << st;
  EXPECT_THAT(std::string(st.message()),
              ::testing::HasSubstr("the hard state's term 1 is below the term 3 of the last "
                                   "entry, 5"));
  EXPECT_THAT(std::string(st.message()), ::testing::HasSubstr("add it back with an empty store"));

  ASSERT_TRUE(Raw()->Delete(rocksdb::WriteOptions(), "h").ok());
  st = OpenStatus();
  EXPECT_EQ(st.code(), absl::StatusCode::kDataLoss) << st;
  EXPECT_THAT(std::string(st.message()),
              ::testing::HasSubstr("the hard state's term 0 is below the term 3 of the last "
                                   "entry, 5"));

  // The same against a snapshot that replaced the log.
  std::filesystem::remove_all(dir_);
  {
    auto s = Open();
    const raftpb::HardState hs = HS(1, 1, 2);
    ASSERT_TRUE(s->Save(&hs, Range(1, 3, 1), nullptr, true).ok());
  }
  ASSERT_TRUE(Raw()->Get(rocksdb::ReadOptions(), "h", &term1).ok());
  {
    auto s = Open();
    raftpb::Snapshot snap;
    snap.mutable_metadata()->set_index(50);
    snap.mutable_metadata()->set_term(7);
    snap.mutable_metadata()->mutable_conf_state()->add_voters(4);
    const raftpb::HardState hs = HS(7, 0, 50);
    ASSERT_TRUE(s->Save(&hs, {}, &snap, true).ok());
  }
  ASSERT_NE(Open(), nullptr);  // as written, the store opens
  ASSERT_TRUE(Raw()->Put(rocksdb::WriteOptions(), "h", term1).ok());
  st = OpenStatus();
  EXPECT_EQ(st.code(), absl::StatusCode::kDataLoss) << st;
  EXPECT_THAT(std::string(st.message()),
              ::testing::HasSubstr("the hard state's term 1 is below the term 7 of the snapshot "
                                   "at 50"));
}

// A process killed in the middle of writing keeps a prefix of its Readies: every Save that
// returned (synced) is there, and the store opens cleanly.
TEST_F(RocksDbLogStoreTest, KillDuringWritesKeepsEveryAcknowledgedReady) {
  int fds[2];
  ASSERT_EQ(pipe(fds), 0);
  const pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    close(fds[0]);
    auto opened = RocksDbLogStore::Open({dir_.string()});
    if (!opened.ok()) _exit(2);
    for (uint64_t i = 1;; ++i) {
      const raftpb::HardState hs = HS(1, 1, i);
      if (!(*opened)->Save(&hs, {E(i, 1, std::string(100, 'x'))}, nullptr, true).ok()) _exit(3);
      if (write(fds[1], &i, sizeof(i)) != sizeof(i)) _exit(4);
    }
  }
  close(fds[1]);
  uint64_t acked = 0, got = 0;
  while (acked < 200 && read(fds[0], &got, sizeof(got)) == sizeof(got)) acked = got;
  kill(child, SIGKILL);
  int status = 0;
  waitpid(child, &status, 0);
  // Drain what the child acknowledged before dying.
  while (read(fds[0], &got, sizeof(got)) == sizeof(got)) acked = got;
  close(fds[0]);
  ASSERT_GE(acked, 200u);
  auto s = Open();
  ASSERT_NE(s, nullptr);
  EXPECT_GE(s->LastIndex(), acked);
  EXPECT_GE(s->GetInitialState()->hard_state.commit(), acked);
  EXPECT_EQ(s->Entries(1, s->LastIndex() + 1, UINT64_MAX)->size(), s->LastIndex());
}

// A byte flipped in the middle of the write-ahead log (a bad disk sector, a bug elsewhere)
// loses what follows it. RocksDB's default recovery stops at the first bad record and opens
// with the rest silently gone, which would let this member forget writes it acknowledged; the
// store must refuse to open instead. (A torn last record, as a crash leaves, is accepted: see
// the power-loss and SIGKILL tests.)
TEST_F(RocksDbLogStoreTest, DetectsACorruptRecordInTheMiddleOfTheLog) {
  for (const uint64_t prefill : {uint64_t{0}, kDefaultPrefill}) {
    for (const int fifths : {1, 2, 3}) {
      SCOPED_TRACE(absl::StrCat("byte flipped at ", fifths, "/5 of the log, prefill ", prefill));
      const std::filesystem::path wal = WriteReadiesAndDie(60, prefill);
      ASSERT_FALSE(wal.empty());
      std::string bytes = ReadFile(wal);
      const size_t written = RecordsEnd(bytes);
      ASSERT_GT(written, 60u * 100);
      bytes[written * fifths / 5] ^= 0x5a;
      WriteFile(wal, bytes);
      absl::Status st = OpenStatus();
      EXPECT_EQ(st.code(), absl::StatusCode::kDataLoss) << st;
    }
  }
}

// RocksDB takes a record that does not check out in the last block of its log (or a header of
// zeros anywhere) for a write a crash tore, and drops without a word everything after it: a
// header byte damaged a third of the way into a 60-Ready log opened with 20 entries and the
// votes of 40 writes gone (found by a review). The store reads the log's tail itself first:
// records that check out after the damage mean it was no torn write.
// (Written over zeros, the records are no longer in the log's last block, and RocksDB would
// refuse the damage itself; the store's check says the same first.)
TEST_F(RocksDbLogStoreTest, ADamagedRecordHeaderBeforeGoodRecordsIsRefusedNotTakenForATornTail) {
  for (const uint64_t prefill : {uint64_t{0}, kDefaultPrefill})
  for (const int mode : {0, 1}) {
    SCOPED_TRACE(absl::StrCat(mode == 0 ? "length made too long" : "length and type zeroed",
                              ", prefill ", prefill));
    const std::filesystem::path wal = WriteReadiesAndDie(60, prefill);
    ASSERT_FALSE(wal.empty());
    std::string bytes = ReadFile(wal);
    // All in the first block: without prefill the last, where RocksDB tolerates damage.
    ASSERT_LT(RecordsEnd(bytes), 32768u);
    const std::vector<size_t> starts = RecordStarts(bytes);
    ASSERT_GE(starts.size(), 60u);
    const size_t victim = starts[starts.size() / 3];
    if (mode == 0) {
      bytes[victim + 5] = static_cast<char>(0x7f);  // the length's high byte
    } else {
      bytes[victim + 4] = bytes[victim + 5] = bytes[victim + 6] = 0;
    }
    WriteFile(wal, bytes);
    absl::Status st = OpenStatus();
    EXPECT_EQ(st.code(), absl::StatusCode::kDataLoss) << st;
    EXPECT_THAT(std::string(st.message()),
                ::testing::HasSubstr(absl::StrCat("is damaged at byte ", victim)));
    EXPECT_THAT(std::string(st.message()), ::testing::HasSubstr("records written after it"));
  }
}

// What a crash leaves is still accepted: the last record cut short (never acknowledged).
// A log written over zeros (wal_prefill.h) is left by a power cut with the torn write's first
// bytes and zeros after them, which RocksDB would take for a checksum mismatch: the store cuts
// the torn write off first.
TEST_F(RocksDbLogStoreTest, ATornLastWriteIsStillAccepted) {
  for (const uint64_t prefill : {uint64_t{0}, kDefaultPrefill}) {
    for (const size_t kept : {size_t{3}, size_t{9}, size_t{60}}) {
      SCOPED_TRACE(absl::StrCat("prefill ", prefill, ", ", kept, " bytes of the last record"));
      const std::filesystem::path wal = WriteReadiesAndDie(60, prefill);
      std::string bytes = ReadFile(wal);
      const std::vector<size_t> starts = RecordStarts(bytes);
      ASSERT_EQ(starts.size(), 60u);
      CutAt(&bytes, starts.back() + kept, prefill);  // part of the last record's header, or more
      WriteFile(wal, bytes);
      auto s = Open();
      ASSERT_NE(s, nullptr);
      EXPECT_EQ(s->LastIndex(), 59u);
      EXPECT_EQ(s->GetInitialState()->hard_state.commit(), 59u);
    }
  }
}

// Only a record torn over zeros is cut off: bytes after the torn record that are not zeros
// are no power cut's doing, and the store is refused as damaged (RocksDB's checksum mismatch).
TEST_F(RocksDbLogStoreTest, ATornRecordWithDataAfterItIsNotTakenForATornWrite) {
  const std::filesystem::path wal = WriteReadiesAndDie(60);
  std::string bytes = ReadFile(wal);
  const std::vector<size_t> starts = RecordStarts(bytes);
  ASSERT_EQ(starts.size(), 60u);
  CutAt(&bytes, starts.back() + 30, kDefaultPrefill);
  ASSERT_GT(bytes.size(), starts.back() + 4096);
  bytes[starts.back() + 4096] = 'z';
  WriteFile(wal, bytes);
  const absl::Status st = OpenStatus();
  EXPECT_EQ(st.code(), absl::StatusCode::kDataLoss) << st;
  EXPECT_EQ(ReadFile(wal), bytes) << "the log was changed";
}

// The log is written over zeros laid down ahead of its writes (wal_prefill.h), so that a
// synced write does not also have to make the file's new length durable: while the store is
// open, saving leaves the log's length alone; closing it cuts the log back to its records.
TEST_F(RocksDbLogStoreTest, SyncedWritesLeaveTheLogsLengthAloneAndACloseCutsItBack) {
  auto s = Open();
  ASSERT_NE(s, nullptr);
  ASSERT_EQ(WalFiles(dir_).size(), 1u);
  const std::filesystem::path wal = WalFiles(dir_).front();
  std::vector<uintmax_t> lengths;
  for (uint64_t i = 1; i <= 50; ++i) {
    const raftpb::HardState hs = HS(1, 1, i);
    ASSERT_TRUE(s->Save(&hs, {E(i, 1, std::string(300, 'x'))}, nullptr, true).ok());
    lengths.push_back(std::filesystem::file_size(wal));
  }
  EXPECT_GT(lengths.front(), 50u * 300) << "nothing laid down ahead of the writes";
  EXPECT_EQ(std::count(lengths.begin(), lengths.end(), lengths.front()), 50)
      << "the log grew with the writes, first " << lengths.front() << ", last " << lengths.back();
  const std::string open_bytes = ReadFile(wal);
  const size_t written = RecordsEnd(open_bytes);
  EXPECT_EQ(open_bytes.find_first_not_of('\0', written), std::string::npos);
  s.reset();
  ASSERT_TRUE(std::filesystem::exists(wal));
  EXPECT_EQ(std::filesystem::file_size(wal), written);
  s = Open();
  ASSERT_NE(s, nullptr);
  EXPECT_EQ(s->LastIndex(), 50u);
}

// The power-loss model (testing/power_loss_fs.h) with writes over zeros laid down ahead: a
// power cut loses what was written over them since the last sync (they read back as zeros
// again), keeps what was synced, and, in order, keeps a prefix of the rest. Without the model's
// record of what each write overwrote, every write over the zeros would survive any cut, and
// the power-loss seeds above could not catch a missing sync of the log.
TEST_F(RocksDbLogStoreTest, APowerCutLosesWritesOverThePrefilledZerosThatWereNotSynced) {
  std::filesystem::create_directories(dir_);
  const std::string name = (dir_ / "000001.log").string();
  for (const bool out_of_order : {false, true}) {
    int lost_some = 0, kept_some = 0;
    for (uint64_t seed = 1; seed <= 20; ++seed) {
      SCOPED_TRACE(absl::StrCat(out_of_order ? "out of order" : "in order", ", seed ", seed));
      auto power = testing::PowerLossFileSystem::Create(seed);
      power->SetOutOfOrderWriteback(out_of_order);
      WalPrefillFileSystem fs(power, 16 << 10);
      std::unique_ptr<rocksdb::FSWritableFile> f;
      ASSERT_TRUE(fs.NewWritableFile(name, rocksdb::FileOptions(), &f, nullptr).ok());
      ASSERT_TRUE(f->Append(std::string(5000, 'A'), rocksdb::IOOptions(), nullptr).ok());
      ASSERT_TRUE(f->Sync(rocksdb::IOOptions(), nullptr).ok());
      std::unique_ptr<rocksdb::FSDirectory> d;
      ASSERT_TRUE(fs.NewDirectory(dir_.string(), rocksdb::IOOptions(), &d, nullptr).ok());
      ASSERT_TRUE(d->Fsync(rocksdb::IOOptions(), nullptr).ok());
      ASSERT_TRUE(f->Append(std::string(6000, 'B'), rocksdb::IOOptions(), nullptr).ok());
      power->CutPower();
      f.reset();
      power->LoseUnsyncedData();
      power->RestorePower();
      const std::string bytes = ReadFile(name);
      ASSERT_GE(bytes.size(), 5000u);
      ASSERT_EQ(bytes.substr(0, 5000), std::string(5000, 'A'));
      const std::string rest = bytes.substr(5000, std::min<size_t>(6000, bytes.size() - 5000));
      const size_t bs = std::count(rest.begin(), rest.end(), 'B');
      ASSERT_EQ(bs + std::count(rest.begin(), rest.end(), '\0'), rest.size());
      if (!out_of_order) {
        ASSERT_EQ(rest.find_first_not_of('B'), bs == rest.size() ? std::string::npos : bs)
            << "not a prefix of the unsynced write";
      }
      if (bs < 6000) ++lost_some;
      if (bs > 0) ++kept_some;
    }
    EXPECT_GT(lost_some, 0) << "no power cut lost any of the unsynced write";
    EXPECT_GT(kept_some, 0) << "no power cut kept any of the unsynced write";
  }
}

// More than a prefill's worth of writes: the zeros are laid down again ahead of them, and
// everything reads back, before and after a crash.
TEST_F(RocksDbLogStoreTest, WritesPastThePrefilledZerosLayDownMore) {
  const pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    RocksDbLogStore::Options o{dir_.string()};
    o.wal_prefill_bytes = 4096;
    auto opened = RocksDbLogStore::Open(o);
    if (!opened.ok()) _exit(2);
    for (uint64_t i = 1; i <= 200; ++i) {
      const raftpb::HardState hs = HS(1, 1, i);
      if (!(*opened)->Save(&hs, {E(i, 1, std::string(300, 'y'))}, nullptr, true).ok()) _exit(3);
    }
    _exit(0);  // as a crash
  }
  int status = 0;
  ASSERT_EQ(waitpid(child, &status, 0), child);
  ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status;
  const std::vector<std::filesystem::path> wals = WalFiles(dir_);
  ASSERT_EQ(wals.size(), 1u);
  const std::string bytes = ReadFile(wals[0]);
  EXPECT_GT(bytes.size(), RecordsEnd(bytes)) << "no zeros ahead of the writes";
  EXPECT_LE(bytes.size(), RecordsEnd(bytes) + 4096 + (1 << 20));
  auto s = Open();
  ASSERT_NE(s, nullptr);
  EXPECT_EQ(s->LastIndex(), 200u);
  EXPECT_EQ(s->GetInitialState()->hard_state.commit(), 200u);
  EXPECT_EQ(s->Entries(1, 201, UINT64_MAX)->size(), 200u);
}

// A file system whose write-ahead logs fail on demand where WalPrefillFileSystem works on them:
// opening the second handle that lays down the zeros, appending the zeros, syncing them.
class FailingWalFileSystem final : public rocksdb::FileSystemWrapper {
 public:
  enum class Fail { kNone, kReopen, kZerosAppend, kZerosSync };
  explicit FailingWalFileSystem(std::shared_ptr<rocksdb::FileSystem> target)
      : FileSystemWrapper(std::move(target)) {}
  const char* Name() const override { return "FailingWalFileSystem"; }

  rocksdb::IOStatus NewWritableFile(const std::string& fname, const rocksdb::FileOptions& options,
                                    std::unique_ptr<rocksdb::FSWritableFile>* result,
                                    rocksdb::IODebugContext* dbg) override {
    rocksdb::IOStatus s = target()->NewWritableFile(fname, options, result, dbg);
    if (s.ok() && IsLog(fname)) *result = std::make_unique<Handle>(std::move(*result), this, false);
    return s;
  }
  rocksdb::IOStatus ReopenWritableFile(const std::string& fname,
                                       const rocksdb::FileOptions& options,
                                       std::unique_ptr<rocksdb::FSWritableFile>* result,
                                       rocksdb::IODebugContext* dbg) override {
    if (IsLog(fname) && Failing(Fail::kReopen)) {
      return rocksdb::IOStatus::IOError("cannot open a second handle (FailingWalFileSystem)");
    }
    rocksdb::IOStatus s = target()->ReopenWritableFile(fname, options, result, dbg);
    if (s.ok() && IsLog(fname)) *result = std::make_unique<Handle>(std::move(*result), this, true);
    return s;
  }

  std::atomic<Fail> fail{Fail::kNone};
  std::atomic<int> failures{0};

 private:
  static bool IsLog(const std::string& fname) {
    return fname.size() > 4 && fname.compare(fname.size() - 4, 4, ".log") == 0;
  }
  bool Failing(Fail what) {
    if (fail.load() != what) return false;
    failures.fetch_add(1);
    return true;
  }
  class Handle final : public rocksdb::FSWritableFileOwnerWrapper {
   public:
    Handle(std::unique_ptr<rocksdb::FSWritableFile> file, FailingWalFileSystem* fs, bool zeros)
        : FSWritableFileOwnerWrapper(std::move(file)), fs_(fs), zeros_(zeros) {}
    rocksdb::IOStatus Append(const rocksdb::Slice& data, const rocksdb::IOOptions& options,
                             rocksdb::IODebugContext* dbg) override {
      if (zeros_ && fs_->Failing(Fail::kZerosAppend)) return NoSpace();
      return target()->Append(data, options, dbg);
    }
    rocksdb::IOStatus Append(const rocksdb::Slice& data, const rocksdb::IOOptions& options,
                             const rocksdb::DataVerificationInfo& info,
                             rocksdb::IODebugContext* dbg) override {
      if (zeros_ && fs_->Failing(Fail::kZerosAppend)) return NoSpace();
      return target()->Append(data, options, info, dbg);
    }
    rocksdb::IOStatus Sync(const rocksdb::IOOptions& options, rocksdb::IODebugContext* dbg) override {
      if (zeros_ && fs_->Failing(Fail::kZerosSync)) {
        return rocksdb::IOStatus::IOError("fdatasync failed (FailingWalFileSystem)");
      }
      return target()->Sync(options, dbg);
    }

   private:
    static rocksdb::IOStatus NoSpace() {
      return rocksdb::IOStatus::NoSpace("no space left on device (FailingWalFileSystem)");
    }
    FailingWalFileSystem* fs_;
    const bool zeros_;
  };
};

// The zeros laid down ahead of the log are part of its writes: when they cannot be (a full
// disk, an I/O error, no second handle on a new log), the write fails as any failed write
// does (the node stops the member: see Node's StorageFailed), and the store, opened again on a
// working disk, holds every write that was acknowledged, each whole. A failure that were
// swallowed would leave the member writing on as if the disk were fine.
TEST_F(RocksDbLogStoreTest, AFailureLayingDownZerosFailsTheWriteAndLosesNothingAcknowledged) {
  using Fail = FailingWalFileSystem::Fail;
  for (const Fail what : {Fail::kZerosAppend, Fail::kZerosSync, Fail::kReopen}) {
    SCOPED_TRACE(absl::StrCat("failure ", static_cast<int>(what)));
    std::filesystem::remove_all(dir_);
    auto fs = std::make_shared<FailingWalFileSystem>(rocksdb::FileSystem::Default());
    std::unique_ptr<rocksdb::Env> env = rocksdb::NewCompositeEnv(fs);
    RocksDbLogStore::Options o{dir_.string()};
    o.env = env.get();
    o.wal_prefill_bytes = 4096;
    o.memtable_bytes = 64 << 10;  // new log files now and then, for kReopen
    auto opened = RocksDbLogStore::Open(o);
    ASSERT_TRUE(opened.ok()) << opened.status();
    std::unique_ptr<RocksDbLogStore> s = std::move(*opened);
    uint64_t acknowledged = 0;
    for (uint64_t i = 1; i <= 20; ++i) {
      const raftpb::HardState hs = HS(1, 1, i);
      ASSERT_TRUE(s->Save(&hs, {E(i, 1, std::string(300, 'a'))}, nullptr, true).ok());
      acknowledged = i;
    }
    fs->fail = what;
    absl::Status failed;
    for (uint64_t i = acknowledged + 1; i <= 2000 && failed.ok(); ++i) {
      const raftpb::HardState hs = HS(1, 1, i);
      failed = s->Save(&hs, {E(i, 1, std::string(300, 'b'))}, nullptr, true);
      if (failed.ok()) acknowledged = i;
    }
    ASSERT_FALSE(failed.ok()) << "no write failed in 2,000";
    EXPECT_GT(fs->failures.load(), 0);
    EXPECT_THAT(failed.ToString(), ::testing::HasSubstr("FailingWalFileSystem"));
    const raftpb::HardState hs = HS(1, 1, acknowledged + 100);
    EXPECT_FALSE(s->Save(&hs, {E(acknowledged + 100, 1, "after")}, nullptr, true).ok())
        << "a write after the failed one went through";
    fs->fail = Fail::kNone;
    s.reset();
    auto again = Open();
    ASSERT_NE(again, nullptr);
    ASSERT_GE(again->LastIndex(), acknowledged);
    absl::StatusOr<std::vector<raftpb::Entry>> read =
        again->Entries(1, acknowledged + 1, UINT64_MAX);
    ASSERT_TRUE(read.ok()) << read.status();
    ASSERT_EQ(read->size(), acknowledged);
    for (uint64_t i = 1; i <= acknowledged; ++i) {
      EXPECT_EQ((*read)[i - 1].data(), std::string(300, i <= 20 ? 'a' : 'b')) << i;
    }
  }
}

// A write-ahead log record, as RocksDB writes one (a full record), to plant in an entry's data.
std::string WalRecordShaped(const std::string& payload) {
  return testing::WalPhysicalRecord(1, payload);
}

// A torn last write is a client's data cut short, and that data may hold bytes shaped like a
// record. The first version of the check looked through the rest of the torn record for one,
// found it, and refused a store that held every acknowledged write (found by a review): anyone
// who could propose data could make a power cut leave a manager that would not start. A torn
// record whose header is whole is now taken for what it is, as RocksDB takes it.
TEST_F(RocksDbLogStoreTest, ATornLastWriteHoldingRecordShapedDataIsStillAccepted) {
  std::filesystem::remove_all(dir_);
  const std::string planted = std::string(40, 'a') + WalRecordShaped("client data") +
                              std::string(400, 'b');
  const pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    auto opened = RocksDbLogStore::Open({dir_.string()});
    if (!opened.ok()) _exit(2);
    for (uint64_t i = 1; i <= 10; ++i) {
      const raftpb::HardState hs = HS(1, 1, i);
      if (!(*opened)->Save(&hs, {E(i, 1, std::string(100, 'x'))}, nullptr, true).ok()) _exit(3);
    }
    if (!(*opened)->Save(nullptr, {E(11, 1, planted)}, nullptr, true).ok()) _exit(3);
    _exit(0);
  }
  int status = 0;
  ASSERT_EQ(waitpid(child, &status, 0), child);
  ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status;
  std::filesystem::path wal;
  for (const auto& f : std::filesystem::directory_iterator(dir_)) {
    if (f.path().extension() == ".log") wal = f.path();
  }
  ASSERT_FALSE(wal.empty());
  std::string bytes = ReadFile(wal);
  const size_t fake = bytes.find(WalRecordShaped("client data"));
  ASSERT_NE(fake, std::string::npos);
  bytes.resize(fake + 7 + 11 + 100);  // power lost while entry 11 was being written
  WriteFile(wal, bytes);
  auto s = Open();
  ASSERT_NE(s, nullptr);
  EXPECT_EQ(s->LastIndex(), 10u);
}

// The store's write-ahead log files, oldest first.
// An Env whose background work never runs: a memtable RocksDB switched away from (to a new
// write-ahead log) is never flushed, so both logs stay live, as when a process stops soon
// after a switch, before the flush.
class NoBackgroundWorkEnv : public rocksdb::EnvWrapper {
 public:
  NoBackgroundWorkEnv() : rocksdb::EnvWrapper(rocksdb::Env::Default()) {}
  const char* Name() const override { return "NoBackgroundWork"; }
  void Schedule(void (*)(void*), void*, Priority, void*, void (*)(void*)) override {}
};

// RocksDB replays every live write-ahead log, oldest first, and takes a last record that does
// not check out in any of them for a torn write: it drops it without a word and replays the
// newer logs on top (RocksDB 7.8, kTolerateCorruptedTailRecords; CheckWalFile reads one file
// and takes it so too). But only the newest log can end in a torn write; the end of an older
// one is a synced write from the middle of the history. Here (found by a review) it is a
// snapshot that replaced a log gone astray: with it lost, the store opened with the old
// leader's uncommitted entries 1 to 3 under the commit index 5 (the log continuous, its terms
// in order, the hard state's term the last entry's), and its member would have applied them.
TEST_F(RocksDbLogStoreTest, ADamagedEndOfAnOlderWriteAheadLogIsRefusedNotTakenForATornWrite) {
  std::filesystem::remove_all(dir_);
  const pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    NoBackgroundWorkEnv env;
    RocksDbLogStore::Options o{dir_.string()};
    o.env = &env;
    o.memtable_bytes = 64 << 10;
    auto opened = RocksDbLogStore::Open(o);
    if (!opened.ok()) _exit(2);
    RocksDbLogStore& s = **opened;
    const raftpb::HardState term1 = HS(1, 1, 0);  // entries 1..3 of term 1, never committed
    if (!s.Save(&term1, Range(1, 3, 1), nullptr, true).ok()) _exit(3);
    // The leader of term 2 committed other entries up to 3 and sends its snapshot of them, which
    // is bigger than the memtable: the next write goes to a new log.
    raftpb::Snapshot snap;
    snap.mutable_metadata()->set_index(3);
    snap.mutable_metadata()->set_term(2);
    snap.mutable_metadata()->mutable_conf_state()->add_voters(1);
    snap.set_data(std::string(128 << 10, 's'));
    const raftpb::HardState term2 = HS(2, 0, 3);
    if (!s.Save(&term2, {}, &snap, true).ok()) _exit(3);
    const raftpb::HardState committed = HS(2, 0, 5);
    if (!s.Save(&committed, Range(4, 5, 2), nullptr, true).ok()) _exit(3);
    _exit(0);  // as a crash, before the old memtable is flushed
  }
  int status = 0;
  ASSERT_EQ(waitpid(child, &status, 0), child);
  ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status;
  const std::filesystem::path whole = dir_.string() + "-whole";
  std::filesystem::remove_all(whole);
  std::filesystem::copy(dir_, whole);
  {
    auto s = Open();  // as written, with both logs replayed
    ASSERT_NE(s, nullptr);
    EXPECT_EQ(s->FirstIndex(), 4u);
    EXPECT_EQ(s->LastIndex(), 5u);
    EXPECT_EQ(*s->Term(3), 2u);
  }
  for (const int mode : {0, 1}) {
    SCOPED_TRACE(mode == 0 ? "the older log cut short" : "its last length made too long");
    std::filesystem::remove_all(dir_);
    std::filesystem::copy(whole, dir_);
    const std::vector<std::filesystem::path> wals = WalFiles(dir_);
    ASSERT_EQ(wals.size(), 2u);
    std::string older = ReadFile(wals[0]);
    ASSERT_GT(older.size(), 128u << 10);  // the snapshot's write ends it (in pieces)
    const size_t last = RecordStarts(older).back();
    if (mode == 0) {
      older.resize(last + 9);
    } else {
      older[last + 5] = static_cast<char>(0x7f);  // in place: the length's high byte
    }
    WriteFile(wals[0], older);
    for (int attempt = 0; attempt < 2; ++attempt) {  // a retry finds it as it was
      absl::StatusOr<std::unique_ptr<RocksDbLogStore>> opened =
          RocksDbLogStore::Open({dir_.string()});
      ASSERT_FALSE(opened.ok()) << "opened with entry 3 of term " << *(*opened)->Term(3)
                                << " and the commit index "
                                << (*opened)->GetInitialState()->hard_state.commit();
      EXPECT_EQ(opened.status().code(), absl::StatusCode::kDataLoss) << opened.status();
      EXPECT_THAT(std::string(opened.status().message()),
                  ::testing::HasSubstr(
                      absl::StrCat("are missing (the end of ", wals[0].string(), " is damaged")));
      EXPECT_THAT(std::string(opened.status().message()),
                  ::testing::HasSubstr("add it back with an empty store"));
    }
  }
}

// A log RocksDB no longer replays (the recovery that replayed it flushed what it held to a
// table) may still be there, torn, when its deletion did not reach the disk. RocksDB skips it:
// it is no damage (refusing every older log that ends torn would refuse this store).
TEST_F(RocksDbLogStoreTest, ATornLogLeftBehindByARecoveryIsStillAccepted) {
  const std::filesystem::path wal = WriteReadiesAndDie(60, /*prefill=*/0);
  std::string bytes = ReadFile(wal);
  bytes.resize(RecordStarts(bytes).back() + 9);
  WriteFile(wal, bytes);
  {
    auto s = Open();  // replays the torn log and deletes it
    ASSERT_NE(s, nullptr);
    const raftpb::HardState hs = HS(1, 1, 62);
    ASSERT_TRUE(s->Save(&hs, Range(60, 62, 1), nullptr, true).ok());
  }
  ASSERT_FALSE(std::filesystem::exists(wal));
  WriteFile(wal, bytes);  // as if that deletion had not reached the disk
  ASSERT_EQ(WalFiles(dir_).front(), wal);
  auto s = Open();
  ASSERT_NE(s, nullptr);
  EXPECT_EQ(s->LastIndex(), 62u);
  EXPECT_EQ(s->GetInitialState()->hard_state.commit(), 62u);
}

// The core runs on the RocksDB store and picks up where it stopped after a restart.
TEST_F(RocksDbLogStoreTest, CoreRecoversItsStateFromTheStore) {
  uint64_t term = 0;
  {
    auto s = Open();
    ASSERT_TRUE(Bootstrap(*s, std::vector<uint64_t>{1}).ok());
    Config c;
    c.id = 1;
    c.storage = s.get();
    auto core = std::move(*Core::Create(c));
    std::vector<std::string> applied;
    for (int round = 0; round < 10; ++round) {
      if (round == 1) core->Campaign();  // once the bootstrap's membership is applied
      if (round >= 1 && round <= 5) {
        ASSERT_TRUE(core->Propose("p" + std::to_string(round - 1)).ok());
      }
      while (core->HasReady()) {
        Ready rd = core->GetReady();
        ASSERT_TRUE(s->Save(rd.hard_state ? &*rd.hard_state : nullptr, rd.entries,
                            rd.snapshot ? &*rd.snapshot : nullptr, rd.must_sync)
                        .ok());
        for (const auto& e : rd.committed_entries) {
          if (e.type() == raftpb::ENTRY_TYPE_CONF_CHANGE) {
            raftpb::ConfChange cc;
            ASSERT_TRUE(cc.ParseFromString(e.data()));
            core->ApplyConfChange(cc);
          } else if (!e.data().empty()) {
            applied.push_back(e.data());
          }
        }
        core->Advance(rd);
      }
    }
    ASSERT_EQ(applied.size(), 5u);
    term = core->term();
  }
  auto s = Open();
  Config c;
  c.id = 1;
  c.storage = s.get();
  auto core = std::move(*Core::Create(c));
  EXPECT_EQ(core->term(), term);
  EXPECT_EQ(core->log().committed(), 7u);  // the bootstrap, the no-op and five proposals
  EXPECT_EQ(core->conf_state().voters_size(), 0);  // as of the (absent) snapshot: replayed
  Ready rd = core->GetReady();  // everything committed is applied again, membership included
  std::vector<std::string> replayed;
  for (const auto& e : rd.committed_entries) {
    if (e.type() == raftpb::ENTRY_TYPE_CONF_CHANGE) {
      raftpb::ConfChange cc;
      ASSERT_TRUE(cc.ParseFromString(e.data()));
      core->ApplyConfChange(cc);
    } else if (!e.data().empty()) {
      replayed.push_back(e.data());
    }
  }
  EXPECT_EQ(replayed, (std::vector<std::string>{"p0", "p1", "p2", "p3", "p4"}));
  ASSERT_EQ(core->conf_state().voters_size(), 1);
  EXPECT_EQ(core->conf_state().voters(0), 1u);
}

TEST_F(RocksDbLogStoreTest, ServesTheNewestEntriesFromMemory) {
  for (const uint64_t cache_bytes : {uint64_t{8} << 20, uint64_t{0}}) {
    std::filesystem::remove_all(dir_);
    RocksDbLogStore::Options o{dir_.string()};
    o.entry_cache_bytes = cache_bytes;
    auto s = std::move(*RocksDbLogStore::Open(o));
    ASSERT_TRUE(s->Save(nullptr, Range(1, 10, 1), nullptr, true).ok());
    absl::StatusOr<std::vector<raftpb::Entry>> got = s->Entries(3, 11, UINT64_MAX);
    ASSERT_TRUE(got.ok()) << got.status();
    ASSERT_EQ(got->size(), 8u);
    EXPECT_EQ(got->front().data(), "v3");
    EXPECT_EQ(got->back().data(), "v10");
    EXPECT_EQ(s->entries_read_from_disk(), cache_bytes == 0 ? 8u : 0u) << cache_bytes;
  }
}

TEST_F(RocksDbLogStoreTest, ReadsFromDiskWhatTheCacheNoLongerHolds) {
  RocksDbLogStore::Options o{dir_.string()};
  o.entry_cache_bytes = 3 * E(10, 1, "v10").ByteSizeLong();  // the last three entries
  auto s = std::move(*RocksDbLogStore::Open(o));
  ASSERT_TRUE(s->Save(nullptr, Range(1, 10, 1), nullptr, true).ok());
  EXPECT_EQ(s->Entries(8, 11, UINT64_MAX)->size(), 3u);
  EXPECT_EQ(s->entries_read_from_disk(), 0u);
  auto got = s->Entries(6, 11, UINT64_MAX);
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(got->size(), 5u);
  EXPECT_EQ(got->front().data(), "v6");
  EXPECT_EQ(s->entries_read_from_disk(), 5u);
}

// The cache must never serve what the log no longer holds: random appends (some replacing a
// suffix), snapshots, compactions and reopenings, with Entries() compared after every step
// against the in-memory store, which keeps everything.
TEST_F(RocksDbLogStoreTest, CacheAgreesWithTheLogThroughReplacementsSnapshotsAndCompaction) {
  for (uint64_t seed = 1; seed <= 20; ++seed) {
    std::filesystem::remove_all(dir_);
    std::mt19937_64 rng(seed);
    auto pick = [&](uint64_t lo, uint64_t hi) {  // uniform in [lo, hi]
      return std::uniform_int_distribution<uint64_t>(lo, hi)(rng);
    };
    RocksDbLogStore::Options o{dir_.string()};
    o.entry_cache_bytes = pick(0, 200);  // a few entries at most, so eviction happens often
    auto disk = std::move(*RocksDbLogStore::Open(o));
    MemoryLogStore memory;
    uint64_t term = 1;
    for (int step = 0; step < 300; ++step) {
      const uint64_t first = memory.FirstIndex(), last = memory.LastIndex();
      const int what = static_cast<int>(pick(0, 19));
      if (what < 14) {  // append, possibly replacing a suffix
        // Never behind the snapshot: what it holds is committed and stays.
        const uint64_t floor = std::max(first, memory.Snapshot()->metadata().index() + 1);
        const uint64_t start = last < floor + 3 ? pick(floor, last + 1) : pick(last - 3, last + 1);
        if (pick(0, 3) == 0) ++term;
        std::vector<raftpb::Entry> es;
        for (uint64_t i = start, n = pick(1, 5); i < start + n; ++i) {
          es.push_back(E(i, term, absl::StrCat("s", seed, "t", step, "i", i)));
        }
        const raftpb::HardState hs = HS(term, 0, 0);  // stored with its first entries
        ASSERT_TRUE(disk->Save(&hs, es, nullptr, true).ok());
        ASSERT_TRUE(memory.Save(&hs, es, nullptr, true).ok());
      } else if (what < 16 && last >= first) {  // snapshot, then compact behind it
        const uint64_t at =
            pick(std::max(first, memory.Snapshot()->metadata().index() + 1), std::max(first, last));
        if (at <= memory.Snapshot()->metadata().index() || at > last) continue;
        raftpb::ConfState cs;
        cs.add_voters(1);
        ASSERT_TRUE(disk->SaveSnapshot(at, cs, "x").ok());
        ASSERT_TRUE(memory.SaveSnapshot(at, cs, "x").ok());
        const uint64_t to = pick(first, at);
        ASSERT_TRUE(disk->CompactTo(to).ok());
        ASSERT_TRUE(memory.CompactTo(to).ok());
      } else if (what < 17) {  // a snapshot from the leader replaces the log
        raftpb::Snapshot snap;
        snap.mutable_metadata()->set_index(last + pick(0, 3));
        snap.mutable_metadata()->set_term(term);
        snap.mutable_metadata()->mutable_conf_state()->add_voters(1);
        if (snap.metadata().index() <= memory.Snapshot()->metadata().index()) continue;
        const raftpb::HardState hs = HS(term, 0, 0);
        ASSERT_TRUE(disk->Save(&hs, {}, &snap, true).ok());
        ASSERT_TRUE(memory.Save(&hs, {}, &snap, true).ok());
      } else if (what < 18) {  // restart: the cache starts empty
        disk.reset();
        disk = std::move(*RocksDbLogStore::Open(o));
      }
      ASSERT_EQ(disk->FirstIndex(), memory.FirstIndex()) << "seed " << seed << " step " << step;
      ASSERT_EQ(disk->LastIndex(), memory.LastIndex()) << "seed " << seed << " step " << step;
      for (int q = 0; q < 4; ++q) {
        const uint64_t lo = pick(memory.FirstIndex(), memory.LastIndex() + 1);
        const uint64_t hi = pick(lo, memory.LastIndex() + 1);
        const uint64_t max_bytes = pick(0, 3) == 0 ? pick(0, 120) : UINT64_MAX;
        auto want = memory.Entries(lo, hi, max_bytes);
        auto got = disk->Entries(lo, hi, max_bytes);
        ASSERT_TRUE(want.ok() && got.ok()) << want.status() << " " << got.status();
        ASSERT_EQ(got->size(), want->size()) << "seed " << seed << " step " << step;
        for (size_t k = 0; k < got->size(); ++k) {
          ASSERT_EQ((*got)[k].SerializeAsString(), (*want)[k].SerializeAsString())
              << "seed " << seed << " step " << step << " index " << (*want)[k].index();
        }
      }
    }
  }
}

// What a store says about itself, to compare a store with the in-memory model.
struct View {
  std::string hard_state, conf_state, snapshot;
  uint64_t first = 0, last = 0;
  std::vector<std::string> entries;  // first..last, serialized
};

View ViewOf(LogStorage& s) {
  View v;
  absl::StatusOr<InitialState> init = s.GetInitialState();
  EXPECT_TRUE(init.ok()) << init.status();
  if (init.ok()) {
    v.hard_state = init->hard_state.SerializeAsString();
    v.conf_state = init->conf_state.SerializeAsString();
  }
  v.snapshot = s.Snapshot()->SerializeAsString();
  v.first = s.FirstIndex();
  v.last = s.LastIndex();
  absl::StatusOr<std::vector<raftpb::Entry>> es = s.Entries(v.first, v.last + 1, UINT64_MAX);
  EXPECT_TRUE(es.ok()) << es.status();
  if (es.ok()) {
    for (const raftpb::Entry& e : *es) v.entries.push_back(e.SerializeAsString());
  }
  return v;
}

// Empty when `got` is `want`, allowing `got` to start earlier with entries `history` knows (a
// compaction is not synced: after a crash the entries it dropped may be back, unchanged).
std::string Mismatch(const View& got, const View& want,
                     const std::map<uint64_t, std::string>& history) {
  if (got.hard_state != want.hard_state) return "hard state differs";
  if (got.conf_state != want.conf_state) return "membership differs";
  if (got.snapshot != want.snapshot) return "snapshot differs";
  if (got.last != want.last) {
    return absl::StrCat("last index ", got.last, ", want ", want.last);
  }
  if (got.first > want.first) {
    return absl::StrCat("first index ", got.first, ", want at most ", want.first);
  }
  for (uint64_t i = got.first; i <= got.last; ++i) {
    const std::string& e = got.entries[i - got.first];
    if (i >= want.first) {
      if (e != want.entries[i - want.first]) return absl::StrCat("entry ", i, " differs");
    } else {
      auto h = history.find(i);
      if (h == history.end() || h->second != e) {
        return absl::StrCat("entry ", i, " below the first index is not one that was compacted");
      }
    }
  }
  return "";
}

// A new store's directories are part of what a synced write depends on: RocksDB syncs the
// database directory after creating files in it, but a directory the store created is only
// durable once its parent is synced too. Without that, a member that acknowledged writes from
// a freshly created store could come back from a power cut with no store at all.
TEST_F(RocksDbLogStoreTest, ANewStoresDirectoriesSurviveAPowerCut) {
  auto fs = testing::PowerLossFileSystem::Create(7);
  RocksDbLogStore::Options o{(dir_ / "state" / "raft").string()};
  o.env = fs->env();
  {
    auto opened = RocksDbLogStore::Open(o);
    ASSERT_TRUE(opened.ok()) << opened.status();
    const raftpb::HardState hs = HS(2, 1, 3);
    ASSERT_TRUE((*opened)->Save(&hs, Range(1, 4, 2), nullptr, true).ok());
    fs->CutPower();
  }
  fs->LoseUnsyncedData();
  fs->RestorePower();
  ASSERT_TRUE(std::filesystem::is_directory(o.path)) << "the store's directory vanished";
  auto reopened = RocksDbLogStore::Open(o);
  ASSERT_TRUE(reopened.ok()) << reopened.status();
  EXPECT_EQ((*reopened)->LastIndex(), 4u);
  EXPECT_EQ((*reopened)->GetInitialState()->hard_state.term(), 2u);
}

TEST_F(RocksDbLogStoreTest, OpensAtAPathWithATrailingSlashAndRefusesAFile) {
  {
    auto opened = RocksDbLogStore::Open({(dir_ / "new" / "").string()});
    ASSERT_TRUE(opened.ok()) << opened.status();
    const raftpb::HardState hs = HS(1, 0, 0);
    ASSERT_TRUE((*opened)->Save(&hs, Range(1, 2, 1), nullptr, true).ok());
  }
  auto reopened = RocksDbLogStore::Open({(dir_ / "new").string()});
  ASSERT_TRUE(reopened.ok()) << reopened.status();
  EXPECT_EQ((*reopened)->LastIndex(), 2u);

  std::ofstream(dir_ / "file") << "a regular file";
  absl::Status s = RocksDbLogStore::Open({(dir_ / "file").string()}).status();
  EXPECT_FALSE(s.ok());
  EXPECT_THAT(std::string(s.message()), ::testing::HasSubstr("not a directory"));
}

// A manager that has run before opens its store with create_if_missing off: a data directory
// that is gone (deleted, moved, not mounted) must not come up as a new, empty member that
// forgot its votes.
TEST_F(RocksDbLogStoreTest, ARestartingMemberIsToldItsStoreIsMissingAndNothingIsCreated) {
  RocksDbLogStore::Options must_exist;
  must_exist.path = (dir_ / "state").string();
  must_exist.create_if_missing = false;
  absl::Status s = RocksDbLogStore::Open(must_exist).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition) << s;
  EXPECT_THAT(std::string(s.message()),
              ::testing::HasSubstr("no raft store at " + must_exist.path));
  EXPECT_FALSE(std::filesystem::exists(dir_ / "state"));

  // An empty directory (a mount point with nothing mounted) is no store either.
  std::filesystem::create_directories(dir_ / "state");
  s = RocksDbLogStore::Open(must_exist).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition) << s;
  EXPECT_TRUE(std::filesystem::is_empty(dir_ / "state"));

  {
    auto created = RocksDbLogStore::Open({must_exist.path});
    ASSERT_TRUE(created.ok()) << created.status();
    const raftpb::HardState hs = HS(2, 1, 1);
    ASSERT_TRUE((*created)->Save(&hs, Range(1, 1, 2), nullptr, true).ok());
  }
  auto reopened = RocksDbLogStore::Open(must_exist);
  ASSERT_TRUE(reopened.ok()) << reopened.status();
  EXPECT_EQ((*reopened)->LastIndex(), 1u);
  EXPECT_EQ((*reopened)->GetInitialState()->hard_state.vote(), 1u);
}

// A machine that loses power keeps only what was synced. Random Readies (appends replacing
// suffixes, hard states, synced or not), snapshots, compactions, installed snapshots and
// membership records go to the store through a file system that cuts the power at a random
// moment (between two operations or inside one, also inside RocksDB's own flushes) and then
// drops, file by file, what was not synced. The store must then open without complaint and
// hold one of the states that a crash at that moment may leave: everything acknowledged as
// synced, and of what came after it, a prefix of whole operations. A tiny memtable makes
// RocksDB switch WAL files and flush tables along the way, so those crash too.
void RocksDbLogStoreTest::RunPowerLossSeeds(bool out_of_order, uint64_t seeds, uint64_t* refused) {
  for (uint64_t seed = 1; seed <= seeds; ++seed) {
    std::filesystem::remove_all(dir_);
    std::mt19937_64 rng(seed);
    auto pick = [&](uint64_t lo, uint64_t hi) {  // uniform in [lo, hi]
      return std::uniform_int_distribution<uint64_t>(lo, hi)(rng);
    };
    auto fs = testing::PowerLossFileSystem::Create(seed);
    fs->SetOutOfOrderWriteback(out_of_order);
    RocksDbLogStore::Options o{dir_.string()};
    o.env = fs->env();
    o.memtable_bytes = 64 << 10;  // RocksDB's smallest
    o.entry_cache_bytes = pick(0, 1) == 0 ? 0 : 8 << 20;
    // The log grown with each write, or written over zeros laid down a page or a whole
    // prefill ahead (so that some seeds write past the zeros).
    const uint64_t prefills[] = {0, 4096, kDefaultPrefill};
    o.wal_prefill_bytes = prefills[pick(0, 2)];
    auto opened = RocksDbLogStore::Open(o);
    ASSERT_TRUE(opened.ok()) << opened.status();
    std::unique_ptr<RocksDbLogStore> disk = std::move(*opened);
    MemoryLogStore memory;
    std::map<uint64_t, std::string> history;  // entries as they were when compacted
    std::vector<View> candidates = {ViewOf(memory)};
    uint64_t term = 1, commit = 0;
    const int crash_step = static_cast<int>(pick(0, 150));
    const std::string at = absl::StrCat("seed ", seed, " crash at step ", crash_step);

    for (int step = 0; step <= crash_step; ++step) {
      const bool crash = step == crash_step;
      if (crash) fs->CutPowerAfter(pick(0, 12));
      const uint64_t first = memory.FirstIndex(), last = memory.LastIndex();
      const uint64_t snap = memory.Snapshot()->metadata().index();
      absl::Status st;
      bool synced = true;
      const int what = static_cast<int>(pick(0, 16));
      if (what < 13) {  // a Ready: entries (maybe replacing an uncommitted suffix), hard state
        const uint64_t floor = std::max({first, snap + 1, commit + 1});
        const uint64_t start = last + 1 < floor + 3 ? pick(floor, std::max(floor, last + 1))
                                                    : pick(last - 2, last + 1);
        if (pick(0, 3) == 0) ++term;
        std::vector<raftpb::Entry> es;
        for (uint64_t i = start, n = pick(0, 4); i < start + n; ++i) {
          es.push_back(E(i, term, std::string(pick(0, 1500), static_cast<char>('a' + i % 26))));
        }
        const uint64_t new_last = es.empty() ? last : es.back().index();
        std::optional<raftpb::HardState> hs;
        if (es.empty() || pick(0, 1) == 0) {
          hs = HS(term, 1, commit = pick(commit, new_last));
        } else if (memory.GetInitialState()->hard_state.term() < term) {
          hs = HS(term, 1, commit);  // a new term is stored with the first entries of it
        }
        // A Ready with no entries only moves the commit index: the node does not sync those.
        synced = !es.empty() || pick(0, 2) != 0;
        st = disk->Save(hs ? &*hs : nullptr, es, nullptr, synced);
        if (hs) memory.SetHardState(*hs);
        ASSERT_TRUE(memory.Append(es).ok());
      } else if (what < 16 && commit >= std::max(first, snap + 1)) {  // snapshot, then compact
        const uint64_t i = pick(std::max(first, snap + 1), commit);
        // The node snapshots at its applied index, with the membership applied by then.
        raftpb::ConfState cs;
        cs.add_voters(1);
        cs.add_learners(pick(2, 9));
        st = disk->SaveSnapshot(i, cs, absl::StrCat("state at ", i)).status();
        ASSERT_TRUE(memory.CreateSnapshot(i, &cs, absl::StrCat("state at ", i)).ok());
        if (st.ok() && pick(0, 1) == 0) {
          const uint64_t to = pick(first, i);
          const auto dropped = memory.Entries(first, to + 1, UINT64_MAX);
          ASSERT_TRUE(dropped.ok()) << dropped.status();
          for (const raftpb::Entry& e : *dropped) {
            history[e.index()] = e.SerializeAsString();
          }
          st = disk->CompactTo(to);
          ASSERT_TRUE(memory.Compact(to).ok());
          synced = false;
        }
      } else {  // a snapshot from the leader replaces the log
        raftpb::Snapshot s;
        s.mutable_metadata()->set_index(std::max(last, snap + 1) + pick(0, 3));
        s.mutable_metadata()->set_term(++term);
        s.mutable_metadata()->mutable_conf_state()->add_voters(1);
        s.set_data(absl::StrCat("installed ", step));
        commit = s.metadata().index();
        const raftpb::HardState hs = HS(term, 0, commit);
        st = disk->Save(&hs, {}, &s, true);
        memory.SetHardState(hs);
        ASSERT_TRUE(memory.ApplySnapshot(s).ok());
      }
      if (!crash) {
        ASSERT_TRUE(st.ok()) << at << ", step " << step << ": " << st;
        ASSERT_EQ(Mismatch(ViewOf(*disk), ViewOf(memory), history), "") << at << ", step " << step;
      }
      // What a crash from here on may leave: after a synced success, exactly this state; else
      // this state or any since the last synced one.
      if (st.ok() && synced) candidates.clear();
      candidates.push_back(ViewOf(memory));
    }

    fs->CutPower();
    disk.reset();
    fs->LoseUnsyncedData();
    fs->RestorePower();
    auto reopened = RocksDbLogStore::Open(o);
    if (out_of_order && absl::IsDataLoss(reopened.status())) {
      ++*refused;  // damage taken for what it may be; never a wrong state opened
      std::printf("%s: the store refuses to open: %s\n", at.c_str(),
                  std::string(reopened.status().message()).c_str());
      continue;
    }
    ASSERT_TRUE(reopened.ok()) << at << ": " << reopened.status();
    const View got = ViewOf(**reopened);
    std::string why;
    bool matched = false;
    for (const View& want : candidates) {
      why = Mismatch(got, want, history);
      if (why.empty()) {
        matched = true;
        break;
      }
    }
    ASSERT_TRUE(matched) << at << ": the recovered store is none of the " << candidates.size()
                         << " states a crash may leave; against the newest: " << why;
    // And it takes new writes.
    const uint64_t next = (*reopened)->LastIndex() + 1;
    raftpb::HardState after = (*reopened)->GetInitialState()->hard_state;
    after.set_term(term + 1);
    ASSERT_TRUE((*reopened)->Save(&after, {E(next, term + 1, "after")}, nullptr, true).ok()) << at;
    reopened->reset();
    auto again = RocksDbLogStore::Open(o);
    ASSERT_TRUE(again.ok()) << at << ": " << again.status();
    EXPECT_EQ((*again)->LastIndex(), next) << at;
  }
}

uint64_t PowerLossSeeds() {
  const char* env = std::getenv("SHOAL_POWER_LOSS_SEEDS");
  return env != nullptr ? std::strtoull(env, nullptr, 10) : 40;
}

TEST_F(RocksDbLogStoreTest, LosingPowerKeepsEverySyncedWrite) {
  uint64_t refused = 0;
  RunPowerLossSeeds(/*out_of_order=*/false, PowerLossSeeds(), &refused);
}

// The same with the unsynced pages written back in any order: the store may then find a
// damaged record before the log's last one, which it cannot tell from real damage. It must
// never open in a state a crash cannot leave; refusing to open (DATA_LOSS) is allowed, and
// how often that happens is printed.
TEST_F(RocksDbLogStoreTest, LosingPowerWithOutOfOrderWritebackNeverOpensAWrongState) {
  uint64_t refused = 0;
  const uint64_t seeds = PowerLossSeeds();
  RunPowerLossSeeds(/*out_of_order=*/true, seeds, &refused);
  std::printf("out-of-order writeback: %llu of %llu power cuts left a store that refuses to open\n",
              static_cast<unsigned long long>(refused), static_cast<unsigned long long>(seeds));
}

// The commit index is written with the next synced write, so a crash can leave it behind a
// snapshot the member took of what it applied, and the log compacted behind that snapshot:
// the entries compacted away were committed all the same. The core refused such a store as
// damaged ("stored commit index 1 is outside the stored log [3, 3]").
TEST_F(RocksDbLogStoreTest, ACommitIndexBehindTheCompactedLogIsTheCompactionPoint) {
  raftpb::ConfState cs;
  cs.add_voters(1);
  {
    auto s = Open();
    ASSERT_TRUE(Bootstrap(*s, std::vector<uint64_t>{1}).ok());
    ASSERT_EQ(s->LastIndex(), 1u);
    const raftpb::HardState hs = HS(1, 1, 1);
    ASSERT_TRUE(s->Save(&hs, Range(2, 3, 1), nullptr, true).ok());
    ASSERT_TRUE(s->SaveSnapshot(3, cs, "state at 3").ok());
    ASSERT_TRUE(s->CompactTo(3).ok());
  }
  auto s = Open();
  Config c;
  c.id = 1;
  c.storage = s.get();
  c.applied = 3;
  absl::StatusOr<std::unique_ptr<Core>> core = Core::Create(c);
  ASSERT_TRUE(core.ok()) << core.status();
  EXPECT_EQ((*core)->log().committed(), 3u);
}

// A write whose entries all lie behind the compaction point changes nothing (the log it does
// not touch stays whole, as in MemoryLogStore); it deleted every entry after its last one.
TEST_F(RocksDbLogStoreTest, EntriesAlreadyCompactedAwayChangeNothing) {
  auto s = Open();
  const raftpb::HardState hs = HS(1, 0, 0);
  ASSERT_TRUE(s->Save(&hs, Range(1, 20, 1), nullptr, true).ok());
  raftpb::ConfState cs;
  cs.add_voters(1);
  ASSERT_TRUE(s->SaveSnapshot(10, cs, "state at 10").ok());
  ASSERT_TRUE(s->CompactTo(10).ok());
  ASSERT_TRUE(s->Save(nullptr, Range(5, 7, 1), nullptr, true).ok());
  EXPECT_EQ(s->LastIndex(), 20u);
  absl::StatusOr<std::vector<raftpb::Entry>> ents = s->Entries(11, 21, UINT64_MAX);
  ASSERT_TRUE(ents.ok()) << ents.status();
  EXPECT_EQ(ents->size(), 10u);
  s.reset();
  s = Open();
  ents = s->Entries(11, 21, UINT64_MAX);
  ASSERT_TRUE(ents.ok()) << ents.status();
  EXPECT_EQ(ents->size(), 10u);
}

// Protobuf serializes at most 2 GiB: a bigger snapshot came out empty, was stored with a valid
// checksum and reported written, and the log was then compacted behind it.
// Reads may run alongside the one writer (storage.h). A Save that installed a snapshot, or
// replaced a suffix of the log by a shorter one, wrote its batch and only then moved the
// store's bounds, and a reader checked the bounds before it read: a reader in between found
// entries it was allowed to ask for gone and reported them missing (DATA_LOSS, which stops a
// member), not compacted or beyond the log (found by two reviews; the node reads nothing it is
// replacing, issue #5's readers may). A race: without the fixes the snapshot case failed
// within about 100 rounds in each of 5 runs (the Term() callers widen the window); the suffix
// case is rarer (within 3,000 rounds in a review's run), and made certain by the test after
// this one. The fixed store never fails.
TEST_F(RocksDbLogStoreTest, AReaderAlongsideASnapshotsInstallSeesTheOldLogOrACompaction) {
  for (int round = 0; round < 300; ++round) {
    const bool suffix = round % 2 == 1;  // else a snapshot
    std::filesystem::remove_all(dir_);
    RocksDbLogStore::Options o{dir_.string()};
    o.entry_cache_bytes = 0;  // every read from disk
    o.sync = false;
    absl::StatusOr<std::unique_ptr<RocksDbLogStore>> opened = RocksDbLogStore::Open(o);
    ASSERT_TRUE(opened.ok()) << opened.status();
    RocksDbLogStore& store = **opened;
    ASSERT_TRUE(store.Save(nullptr, Range(1, 20, 1), nullptr, true).ok());
    std::atomic<bool> done{false};
    std::atomic<int> wrong{0};
    std::vector<std::thread> readers;
    for (int t = 0; t < 2; ++t) {
      readers.emplace_back([&] {
        while (!done.load()) {
          for (int k = 0; k < 50; ++k) (void)store.Term(7);
        }
      });
      readers.emplace_back([&] {
        while (!done.load()) {
          const uint64_t hi = suffix ? 20 : 10;
          absl::StatusOr<std::vector<raftpb::Entry>> e = store.Entries(5, hi, UINT64_MAX);
          if (!e.ok() && !IsCompacted(e.status()) && !IsUnavailableIndex(e.status())) {
            if (wrong.fetch_add(1) == 0) ADD_FAILURE() << e.status();
            return;
          }
          if (e.ok() && e->size() != hi - 5) {
            if (wrong.fetch_add(1) == 0) ADD_FAILURE() << e->size() << " entries of " << hi - 5;
            return;
          }
        }
      });
    }
    if (suffix) {
      // A new leader's entry 10 replaces the old leader's uncommitted 10..20.
      EXPECT_TRUE(store.Save(nullptr, {E(10, 2, "new")}, nullptr, true).ok());
    } else {
      raftpb::Snapshot snap;
      snap.mutable_metadata()->set_index(100);
      snap.mutable_metadata()->set_term(2);
      snap.mutable_metadata()->mutable_conf_state()->add_voters(1);
      snap.set_data("state");
      EXPECT_TRUE(store.Save(nullptr, {}, &snap, true).ok());
    }
    done = true;
    for (std::thread& t : readers) t.join();
    if (wrong.load() > 0) break;
  }
}

// The suffix case of the race above, made certain: the reader checks its bounds, the writer
// replaces the suffix it is about to read by a shorter one, and only then does the reader go to
// the disk. Without the read-again (RocksDbLogStore::rewrites_), it found entries 11..19 gone
// and said so as DATA_LOSS, which stops a member.
TEST_F(RocksDbLogStoreTest, AReaderWhoseRangeIsReplacedBetweenCheckAndReadReadsAgain) {
  RocksDbLogStore::Options o{dir_.string()};
  o.entry_cache_bytes = 0;  // every read from disk
  o.sync = false;
  absl::Notification checked, replaced;
  std::atomic<int> reads{0};
  o.before_disk_read = [&] {
    if (reads.fetch_add(1) == 0) {
      checked.Notify();
      replaced.WaitForNotification();
    }
  };
  absl::StatusOr<std::unique_ptr<RocksDbLogStore>> opened = RocksDbLogStore::Open(o);
  ASSERT_TRUE(opened.ok()) << opened.status();
  RocksDbLogStore& store = **opened;
  ASSERT_TRUE(store.Save(nullptr, Range(1, 20, 1), nullptr, true).ok());
  absl::StatusOr<std::vector<raftpb::Entry>> got;
  std::thread reader([&] { got = store.Entries(5, 20, UINT64_MAX); });
  checked.WaitForNotification();
  // A new leader's entry 10 replaces the old leader's uncommitted 10..20.
  ASSERT_TRUE(store.Save(nullptr, {E(10, 2, "new")}, nullptr, true).ok());
  replaced.Notify();
  reader.join();
  ASSERT_FALSE(got.ok());
  EXPECT_TRUE(IsUnavailableIndex(got.status())) << got.status();
  EXPECT_EQ(reads.load(), 1) << "read again: the second time the bounds say 20 is past the log";
  // What is there is read whole.
  got = store.Entries(5, 11, UINT64_MAX);
  ASSERT_TRUE(got.ok()) << got.status();
  ASSERT_EQ(got->size(), 6u);
  EXPECT_EQ(got->back().term(), 2u);
}

TEST_F(RocksDbLogStoreTest, ASnapshotTooBigToStoreIsRefusedAndWritesNothing) {
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
  GTEST_SKIP() << "a 2 GiB allocation under a sanitizer";
#else
  auto s = Open();
  ASSERT_TRUE(s->Save(nullptr, Range(1, 10, 1), nullptr, true).ok());
  raftpb::ConfState cs;
  cs.add_voters(1);
  ASSERT_TRUE(s->SaveSnapshot(5, cs, "state at 5").ok());
  absl::StatusOr<raftpb::Snapshot> big =
      s->SaveSnapshot(8, cs, std::string(size_t{1} << 31, 'x'));
  ASSERT_FALSE(big.ok());
  EXPECT_EQ(big.status().code(), absl::StatusCode::kInvalidArgument) << big.status();
  EXPECT_THAT(std::string(big.status().message()),
              ::testing::HasSubstr("is over the 2147483647 bytes a stored snapshot can hold"));
  EXPECT_EQ(s->SnapshotMetadata()->index(), 5u);
  EXPECT_EQ(s->Snapshot()->data(), "state at 5");
#endif
}

}  // namespace
}  // namespace shoal::raft
