#include "raft/log.h"

#include <gtest/gtest.h>

#include "raft/memory_log_store.h"
#include "raft/testing/entries.h"
#include "raft/testing/forwarding_store.h"

namespace shoal::raft {
namespace {

using testing::E;

std::vector<uint64_t> Terms(const std::vector<raftpb::Entry>& ents) {
  std::vector<uint64_t> out;
  for (const auto& e : ents) out.push_back(e.term());
  return out;
}

TEST(MemoryLogStoreTest, AppendsReadsAndTruncatesConflictingSuffix) {
  MemoryLogStore s;
  ASSERT_TRUE(s.Append({E(1, 1), E(2, 1), E(3, 2)}).ok());
  EXPECT_EQ(s.FirstIndex(), 1u);
  EXPECT_EQ(s.LastIndex(), 3u);
  EXPECT_EQ(*s.Term(3), 2u);
  ASSERT_TRUE(s.Append({E(3, 3), E(4, 3)}).ok());  // replaces entry 3
  EXPECT_EQ(Terms(*s.Entries(1, 5, UINT64_MAX)), (std::vector<uint64_t>{1, 1, 3, 3}));
  EXPECT_FALSE(s.Append({E(9, 3)}).ok());  // a gap
}

TEST(MemoryLogStoreTest, CompactionAndSnapshotsReportCompactedIndexes) {
  MemoryLogStore s;
  ASSERT_TRUE(s.Append({E(1, 1), E(2, 1), E(3, 2), E(4, 2)}).ok());
  raftpb::ConfState cs;
  cs.add_voters(1);
  ASSERT_TRUE(s.CreateSnapshot(3, &cs, "state").ok());
  ASSERT_TRUE(s.Compact(3).ok());
  EXPECT_EQ(s.FirstIndex(), 4u);
  EXPECT_EQ(*s.Term(3), 2u);  // the snapshot's index keeps its term
  EXPECT_TRUE(IsCompacted(s.Term(2).status()));
  EXPECT_TRUE(IsCompacted(s.Entries(2, 4, UINT64_MAX).status()));
  EXPECT_TRUE(IsUnavailableIndex(s.Entries(4, 6, UINT64_MAX).status()));
  EXPECT_FALSE(s.Compact(2).ok());
  EXPECT_FALSE(s.CreateSnapshot(2, nullptr, "").ok());
  EXPECT_EQ(s.Snapshot()->metadata().index(), 3u);
  EXPECT_EQ(s.Snapshot()->data(), "state");
}

TEST(MemoryLogStoreTest, EntriesRespectsTheSizeLimitButReturnsAtLeastOne) {
  MemoryLogStore s;
  ASSERT_TRUE(s.Append({E(1, 1, std::string(100, 'a')), E(2, 1, std::string(100, 'b'))}).ok());
  EXPECT_EQ(s.Entries(1, 3, 1)->size(), 1u);
  EXPECT_EQ(s.Entries(1, 3, 250)->size(), 2u);
}

TEST(MemoryLogStoreTest, ApplySnapshotReplacesTheLog) {
  MemoryLogStore s;
  ASSERT_TRUE(s.Append({E(1, 1), E(2, 1)}).ok());
  raftpb::Snapshot snap;
  snap.mutable_metadata()->set_index(10);
  snap.mutable_metadata()->set_term(4);
  snap.mutable_metadata()->mutable_conf_state()->add_voters(7);
  ASSERT_TRUE(s.ApplySnapshot(snap).ok());
  EXPECT_EQ(s.FirstIndex(), 11u);
  EXPECT_EQ(s.LastIndex(), 10u);
  EXPECT_EQ(s.GetInitialState()->conf_state.voters(0), 7u);
  EXPECT_FALSE(s.ApplySnapshot(snap).ok());  // not newer
}

TEST(RaftLogTest, FindConflictFindsTheFirstMismatch) {
  MemoryLogStore s;
  ASSERT_TRUE(s.Append({E(1, 1), E(2, 2), E(3, 3)}).ok());
  RaftLog log(&s, UINT64_MAX);
  EXPECT_EQ(log.FindConflict({}), 0u);
  EXPECT_EQ(log.FindConflict({E(1, 1), E(2, 2)}), 0u);               // all match
  EXPECT_EQ(log.FindConflict({E(2, 2), E(3, 3), E(4, 4)}), 4u);      // new entry
  EXPECT_EQ(log.FindConflict({E(2, 2), E(3, 4), E(4, 4)}), 3u);      // conflict
  EXPECT_EQ(log.FindConflict({E(1, 4), E(2, 4)}), 1u);
}

TEST(RaftLogTest, MaybeAppendChecksThePrecedingEntryAndCommits) {
  MemoryLogStore s;
  ASSERT_TRUE(s.Append({E(1, 1), E(2, 2), E(3, 3)}).ok());
  RaftLog log(&s, UINT64_MAX);
  // Preceding entry does not match: refused.
  EXPECT_FALSE(log.MaybeAppend(3, 2, 3, {E(4, 4)}).has_value());
  EXPECT_FALSE(log.MaybeAppend(4, 3, 3, {E(5, 4)}).has_value());
  // Matches: appended, commit follows min(leader commit, last new).
  EXPECT_EQ(log.MaybeAppend(3, 3, 10, {E(4, 4)}), 4u);
  EXPECT_EQ(log.committed(), 4u);
  // A conflicting suffix (above commit) is replaced.
  MemoryLogStore s2;
  ASSERT_TRUE(s2.Append({E(1, 1), E(2, 2), E(3, 3)}).ok());
  RaftLog log2(&s2, UINT64_MAX);
  EXPECT_EQ(log2.MaybeAppend(1, 1, 1, {E(2, 4), E(3, 4)}), 3u);
  EXPECT_EQ(Terms(log2.AllEntries()), (std::vector<uint64_t>{1, 4, 4}));
  EXPECT_EQ(log2.committed(), 1u);
}

// A received snapshot is moved into the log and out with one Ready (no copy of the state is
// made); a second Ready before Advance would carry an empty state, so asking twice is fatal.
TEST(RaftLogDeathTest, APendingSnapshotsDataGoesOutOnce) {
  MemoryLogStore s;
  RaftLog log(&s, UINT64_MAX);
  raftpb::Snapshot snap;
  snap.mutable_metadata()->set_index(10);
  snap.mutable_metadata()->set_term(2);
  snap.set_data(std::string(1 << 20, 'x'));
  const char* buffer = snap.data().data();
  log.Restore(std::move(snap));
  raftpb::Snapshot out = log.TakePendingSnapshot();
  EXPECT_EQ(out.data().data(), buffer) << "the state was copied, not moved";
  EXPECT_EQ(out.metadata().index(), 10u);
  EXPECT_EQ(*log.Term(10), 2u);  // the metadata stays until Advance
  EXPECT_DEATH(log.TakePendingSnapshot(), "taken already");
  EXPECT_DEATH((void)log.Snapshot(), "went out with a Ready");
  log.StableSnapTo(10);
  EXPECT_FALSE(log.HasPendingSnapshot());
}

// A MemoryLogStore whose reads of entries from `fail_from` on fail (a disk returning EIO for
// some of its blocks).
class ReadFailingStorage : public testing::ForwardingStore {
 public:
  ReadFailingStorage() : ForwardingStore(&inner) {}
  absl::StatusOr<std::vector<raftpb::Entry>> Entries(uint64_t lo, uint64_t hi,
                                                     uint64_t max_bytes) override {
    if (hi > fail_from) return absl::InternalError("IO error: Input/output error");
    return inner.Entries(lo, hi, max_bytes);
  }
  absl::StatusOr<uint64_t> Term(uint64_t i) override {
    if (i >= fail_from) return absl::InternalError("IO error: Input/output error");
    return inner.Term(i);
  }

  MemoryLogStore inner;
  uint64_t fail_from = UINT64_MAX;
};

// A read the storage fails was fatal. It is kept instead (the node stops the member on it),
// and nothing is decided from it: a term that could not be read is no conflict (taken for
// one, a committed entry would be "replaced", a CHECK), and no committed entry comes out.
TEST(RaftLogTest, AFailedReadIsKeptAndDecidesNothing) {
  ReadFailingStorage s;
  ASSERT_TRUE(s.inner.Append({E(1, 1), E(2, 2), E(3, 3)}).ok());
  RaftLog log(&s, UINT64_MAX);
  log.CommitTo(3);
  s.fail_from = 2;  // entry 1 reads, the later ones do not
  EXPECT_FALSE(log.MaybeAppend(1, 1, 3, {E(2, 2), E(3, 3), E(4, 3)}).has_value());
  ASSERT_FALSE(log.storage_error().ok());
  EXPECT_NE(log.storage_error().message().find("raft storage failed reading the term of entry 2"),
            std::string::npos)
      << log.storage_error();
  EXPECT_NE(log.storage_error().message().find("Input/output error"), std::string::npos);
  EXPECT_TRUE(log.NextCommittedEntries().empty());
  EXPECT_EQ(log.LastIndex(), 3u);  // nothing appended
  s.fail_from = UINT64_MAX;
  EXPECT_EQ(Terms(log.AllEntries()), (std::vector<uint64_t>{1, 2, 3}));
}

// Term() answers 0 for an index past the last entry, and MatchTerm took that for a match of
// "index 9, term 0": an append after the end of the log matched, and its commit index went past
// the last entry (found by raft/fuzz/core_fuzzer.cc).
TEST(RaftLogTest, NoIndexOutsideTheLogMatchesNotEvenAtTermZero) {
  MemoryLogStore s;
  ASSERT_TRUE(s.Append({E(1, 1), E(2, 1), E(3, 2)}).ok());
  RaftLog log(&s, UINT64_MAX);
  EXPECT_TRUE(log.MatchTerm(0, 0));  // before the first entry: the empty prefix
  EXPECT_TRUE(log.MatchTerm(3, 2));
  EXPECT_FALSE(log.MatchTerm(4, 0));
  EXPECT_FALSE(log.MatchTerm(9, 0));
  EXPECT_FALSE(log.MaybeAppend(9, 0, 12, {}).has_value());
  EXPECT_FALSE(log.MaybeAppend(9, 0, 12, {E(10, 0)}).has_value());
  EXPECT_EQ(log.committed(), 0u);
  EXPECT_EQ(log.LastIndex(), 3u);
}

// A conflict at or below the commit index (a CHECK before) is a loss found, kept as DATA_LOSS:
// nothing is replaced. (The core answers an append before its commit index without looking for
// conflicts, so this is the log's own guard.)
TEST(RaftLogTest, AConflictWithACommittedEntryIsALossNotACrash) {
  MemoryLogStore s;
  ASSERT_TRUE(s.Append({E(1, 1), E(2, 1), E(3, 1)}).ok());
  RaftLog log(&s, UINT64_MAX);
  log.CommitTo(3);
  EXPECT_FALSE(log.MaybeAppend(1, 1, 3, {E(2, 2)}).has_value());
  EXPECT_EQ(log.storage_error().code(), absl::StatusCode::kDataLoss);
  EXPECT_TRUE(log.found_lost());
  EXPECT_EQ(Terms(log.AllEntries()), (std::vector<uint64_t>{1, 1, 1}));
}

TEST(RaftLogTest, FindConflictByTermSkipsWholeTerms) {
  MemoryLogStore s;
  ASSERT_TRUE(s.Append({E(1, 1), E(2, 1), E(3, 2), E(4, 2), E(5, 5), E(6, 5)}).ok());
  RaftLog log(&s, UINT64_MAX);
  EXPECT_EQ(log.FindConflictByTerm(6, 3), (std::pair<uint64_t, uint64_t>{4, 2}));
  EXPECT_EQ(log.FindConflictByTerm(6, 5), (std::pair<uint64_t, uint64_t>{6, 5}));
  EXPECT_EQ(log.FindConflictByTerm(6, 1), (std::pair<uint64_t, uint64_t>{2, 1}));
  EXPECT_EQ(log.FindConflictByTerm(6, 0), (std::pair<uint64_t, uint64_t>{0, 0}));
}

TEST(RaftLogTest, UnstableEntriesBecomeStableOnlyIfUnchanged) {
  MemoryLogStore s;
  RaftLog log(&s, UINT64_MAX);
  log.Append({E(1, 1), E(2, 1)});
  EXPECT_EQ(log.UnstableEntries().size(), 2u);
  ASSERT_TRUE(s.Append({E(1, 1), E(2, 1)}).ok());
  log.StableTo(2, 2);  // wrong term: the entry was replaced meanwhile
  EXPECT_EQ(log.UnstableEntries().size(), 2u);
  log.StableTo(2, 1);
  EXPECT_TRUE(log.UnstableEntries().empty());
  EXPECT_EQ(log.LastIndex(), 2u);
}

// An append that replaces the middle of what is not written yet keeps exactly what comes
// before it (a new leader overwriting a deposed leader's tail while its write is under way).
// Keeping one stale entry more passed the core tests and 10,000 simulated seeds (a mutation
// test, sixteenth session).
TEST(RaftLogTest, ReplacingTheMiddleOfTheUnwrittenEntriesKeepsExactlyWhatComesBefore) {
  MemoryLogStore s;
  RaftLog log(&s, UINT64_MAX);
  log.Append({E(1, 1), E(2, 1), E(3, 1), E(4, 1)});
  log.Append({E(3, 2)});
  EXPECT_EQ(Terms(log.UnstableEntries()), (std::vector<uint64_t>{1, 1, 2}));
  EXPECT_EQ(log.LastIndex(), 3u);
  log.Append({E(2, 3), E(3, 3)});
  EXPECT_EQ(Terms(log.UnstableEntries()), (std::vector<uint64_t>{1, 3, 3}));
}

// Entries replaced after a Ready took them are not on the disk, even when the last one has
// the index and term of the last one written (a peer that breaks Log Matching can send that:
// core_fuzzer, 2026-12-04, where the member then handed out as committed entries its disk did
// not hold); what comes before the replacement is.
TEST(RaftLogTest, EntriesReplacedWhileBeingWrittenStayUnwrittenWhateverTheirTerms) {
  MemoryLogStore s;
  RaftLog log(&s, UINT64_MAX);
  log.Append({E(1, 1), E(2, 2), E(3, 2)});
  log.MarkUnstableTaken();         // a Ready takes them to write
  log.Append({E(2, 1), E(3, 2)});  // replaced from 2 on, entry 3 again of term 2
  ASSERT_TRUE(s.Append({E(1, 1), E(2, 2), E(3, 2)}).ok());
  log.StableTo(3, 2);  // that write completes
  ASSERT_EQ(log.UnstableEntries().size(), 2u);
  EXPECT_EQ(log.UnstableEntries().front().index(), 2u);
  EXPECT_EQ(Terms(log.UnstableEntries()), (std::vector<uint64_t>{1, 2}));
  // Taken and written in turn, they are stable.
  log.MarkUnstableTaken();
  ASSERT_TRUE(s.Append({E(2, 1), E(3, 2)}).ok());
  log.StableTo(3, 2);
  EXPECT_TRUE(log.UnstableEntries().empty());
}

TEST(RaftLogTest, OnlyEntriesOfTheGivenTermAreCommittedByCounting) {
  MemoryLogStore s;
  ASSERT_TRUE(s.Append({E(1, 1), E(2, 2)}).ok());
  RaftLog log(&s, UINT64_MAX);
  EXPECT_FALSE(log.MaybeCommit(2, 3));  // entry 2 is of term 2, not the leader's term 3
  EXPECT_EQ(log.committed(), 0u);
  EXPECT_TRUE(log.MaybeCommit(2, 2));
  EXPECT_EQ(log.committed(), 2u);
}

TEST(RaftLogTest, UpToDateComparesLastTermThenLength) {
  MemoryLogStore s;
  ASSERT_TRUE(s.Append({E(1, 1), E(2, 2), E(3, 2)}).ok());
  RaftLog log(&s, UINT64_MAX);
  EXPECT_TRUE(log.IsUpToDate(1, 3));   // higher last term wins even if shorter
  EXPECT_TRUE(log.IsUpToDate(3, 2));   // same term, same length
  EXPECT_TRUE(log.IsUpToDate(4, 2));   // same term, longer
  EXPECT_FALSE(log.IsUpToDate(2, 2));  // same term, shorter
  EXPECT_FALSE(log.IsUpToDate(9, 1));  // lower term loses even if longer
}

TEST(RaftLogTest, NextCommittedEntriesAreThoseBetweenAppliedAndCommitted) {
  MemoryLogStore s;
  ASSERT_TRUE(s.Append({E(1, 1), E(2, 1), E(3, 1)}).ok());
  RaftLog log(&s, UINT64_MAX);
  EXPECT_FALSE(log.HasNextCommittedEntries());
  log.CommitTo(2);
  EXPECT_EQ(log.NextCommittedEntries().size(), 2u);
  log.AppliedTo(1);
  ASSERT_EQ(log.NextCommittedEntries().size(), 1u);
  EXPECT_EQ(log.NextCommittedEntries()[0].index(), 2u);
}

}  // namespace
}  // namespace shoal::raft
