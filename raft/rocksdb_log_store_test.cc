#include "raft/rocksdb_log_store.h"

#include <rocksdb/db.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <random>

#include <gtest/gtest.h>

#include "absl/strings/str_cat.h"
#include "raft/core.h"
#include "raft/memory_log_store.h"
#include "raft/testing/entries.h"

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
    ASSERT_TRUE(s->SaveConfState(cs).ok());
  }
  auto s = Open();
  EXPECT_EQ(s->LastIndex(), 5u);
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

TEST_F(RocksDbLogStoreTest, NewEntriesReplaceAConflictingSuffix) {
  {
    auto s = Open();
    ASSERT_TRUE(s->Save(nullptr, Range(1, 6, 1), nullptr, true).ok());
    ASSERT_TRUE(s->Save(nullptr, Range(3, 4, 2), nullptr, true).ok());
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
    ASSERT_TRUE(s->Save(nullptr, Range(1, 10, 2), nullptr, true).ok());
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
    ASSERT_TRUE(s->Save(nullptr, Range(1, 5, 1), nullptr, true).ok());
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
}

TEST_F(RocksDbLogStoreTest, DetectsAMissingEntry) {
  {
    auto s = Open();
    ASSERT_TRUE(s->Save(nullptr, Range(1, 5, 1), nullptr, true).ok());
  }
  ASSERT_TRUE(Raw()->Delete(rocksdb::WriteOptions(), Key(3)).ok());
  absl::Status st = OpenStatus();
  EXPECT_EQ(st.code(), absl::StatusCode::kDataLoss);
  EXPECT_NE(st.message().find("entries 3 to 3 are missing"), std::string::npos) << st;
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

// The core runs on the RocksDB store and picks up where it stopped after a restart.
TEST_F(RocksDbLogStoreTest, CoreRecoversItsStateFromTheStore) {
  uint64_t term = 0;
  {
    auto s = Open();
    raftpb::ConfState cs;
    cs.add_voters(1);
    ASSERT_TRUE(s->SaveConfState(cs).ok());
    Config c;
    c.id = 1;
    c.storage = s.get();
    auto core = std::move(*Core::Create(c));
    core->Campaign();
    std::vector<std::string> applied;
    for (int round = 0; round < 10; ++round) {
      if (round < 5) {
        ASSERT_TRUE(core->Propose("p" + std::to_string(round)).ok());
      }
      while (core->HasReady()) {
        Ready rd = core->GetReady();
        ASSERT_TRUE(s->Save(rd.hard_state ? &*rd.hard_state : nullptr, rd.entries,
                            rd.snapshot ? &*rd.snapshot : nullptr, rd.must_sync)
                        .ok());
        for (const auto& e : rd.committed_entries) {
          if (!e.data().empty()) {
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
  EXPECT_EQ(core->log().committed(), 6u);  // the no-op and five proposals
  Ready rd = core->GetReady();              // everything committed is applied again
  std::vector<std::string> replayed;
  for (const auto& e : rd.committed_entries) {
    if (!e.data().empty()) replayed.push_back(e.data());
  }
  EXPECT_EQ(replayed, (std::vector<std::string>{"p0", "p1", "p2", "p3", "p4"}));
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
        ASSERT_TRUE(disk->Save(nullptr, es, nullptr, true).ok());
        ASSERT_TRUE(memory.Save(nullptr, es, nullptr, true).ok());
      } else if (what < 16 && last >= first) {  // snapshot, then compact behind it
        const uint64_t at = pick(std::max(first, memory.Snapshot()->metadata().index() + 1),
                                 std::max(first, last));
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
        ASSERT_TRUE(disk->Save(nullptr, {}, &snap, true).ok());
        ASSERT_TRUE(memory.Save(nullptr, {}, &snap, true).ok());
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

}  // namespace
}  // namespace shoal::raft
