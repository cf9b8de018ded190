#include "raft/snapshot_stream.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "raft/testing/snapshot_chunks.h"

namespace shoal::raft {
namespace {

// What an empty std::string holds without allocating.
const uint64_t kInline = std::string().capacity();

raftpb::Message Header(uint64_t to = 3) {
  raftpb::Message m;
  m.set_type(raftpb::MSG_SNAP);
  m.set_from(1);
  m.set_to(to);
  m.set_term(7);
  m.mutable_snapshot()->mutable_metadata()->set_index(42);
  m.mutable_snapshot()->mutable_metadata()->set_term(6);
  return m;
}

std::vector<raftpb::SnapshotChunk> Cut(const std::string& data, size_t chunk_bytes) {
  std::vector<raftpb::SnapshotChunk> chunks;
  raftpb::Message h = Header();
  h.mutable_snapshot()->set_data(data);  // cleared in what is sent
  EXPECT_TRUE(ForEachSnapshotChunk(h, data, chunk_bytes, [&](const raftpb::SnapshotChunk& c) {
    chunks.push_back(c);
    return true;
  }));
  return chunks;
}

absl::StatusOr<raftpb::Message> Assemble(std::vector<raftpb::SnapshotChunk> chunks,
                                         SnapshotAssembler in = SnapshotAssembler()) {
  for (raftpb::SnapshotChunk& c : chunks) {
    if (in.complete()) break;  // as the receiver does: it stops reading at the last chunk
    if (absl::Status s = in.Add(std::move(c)); !s.ok()) return s;
  }
  return std::move(in).Finish();
}

raftpb::SnapshotChunk First(uint64_t total, const std::string& data) {
  return testing::FirstChunk(3, total, data);
}
using testing::Last;
using testing::NextChunk;
TEST(SnapshotStreamTest, WhatTheSenderCutsTheReceiverPutsBackWhole) {
  for (size_t size : {0, 1, 3, 4, 5, 8, 13}) {
    std::string data;
    for (size_t i = 0; i < size; ++i) data.push_back(static_cast<char>('a' + i));
    const std::vector<raftpb::SnapshotChunk> chunks = Cut(data, 4);
    ASSERT_EQ(chunks.size(), size == 0 ? 1 : (size + 3) / 4) << size;
    EXPECT_TRUE(chunks.front().has_header());
    EXPECT_TRUE(chunks.front().header().snapshot().data().empty()) << "the data goes in chunks";
    EXPECT_EQ(chunks.front().total_bytes(), size);
    for (size_t i = 1; i < chunks.size(); ++i) EXPECT_FALSE(chunks[i].has_header());
    for (size_t i = 0; i + 1 < chunks.size(); ++i) EXPECT_FALSE(chunks[i].last());
    EXPECT_TRUE(chunks.back().last());
    absl::StatusOr<raftpb::Message> got = Assemble(chunks);
    ASSERT_TRUE(got.ok()) << size << ": " << got.status();
    EXPECT_EQ(got->snapshot().data(), data);
    EXPECT_EQ(got->snapshot().metadata().index(), 42u);
    EXPECT_EQ(got->term(), 7u);
    EXPECT_EQ(got->to(), 3u);
  }
}

TEST(SnapshotStreamTest, TheSenderStopsAtTheFirstFailedWrite) {
  int writes = 0;
  EXPECT_FALSE(ForEachSnapshotChunk(Header(), std::string(10, 'x'), 2,
                                    [&](const raftpb::SnapshotChunk&) { return ++writes < 2; }));
  EXPECT_EQ(writes, 2);
}

TEST(SnapshotStreamTest, TheChecksumIsTheSameWhetherTakenWholeOrInPieces) {
  const std::string data = "the quick brown fox jumps over the lazy dog";
  EXPECT_EQ(SnapshotCrc(data), 3456913684u);  // zlib.crc32 of that sentence (Python)
  EXPECT_EQ(SnapshotCrc(data.substr(10), SnapshotCrc(data.substr(0, 10))), SnapshotCrc(data));
}

TEST(SnapshotStreamTest, EachMalformedStreamIsRefusedWithWhatIsWrong) {
  raftpb::SnapshotChunk headerless = First(5, "hello");
  headerless.clear_header();
  raftpb::SnapshotChunk not_snap = First(5, "hello");
  not_snap.mutable_header()->set_type(raftpb::MSG_APP);
  struct Case {
    std::string name;
    std::vector<raftpb::SnapshotChunk> chunks;
    absl::StatusCode code;
    std::string says;
  };
  const std::vector<Case> cases = {
      {"no header", {Last(headerless, "hello")}, absl::StatusCode::kInvalidArgument,
       "the first snapshot chunk must carry the MSG_SNAP header"},
      {"not a snapshot", {Last(not_snap, "hello")}, absl::StatusCode::kInvalidArgument,
       "the first snapshot chunk must carry the MSG_SNAP header"},
      {"over the limit", {First((uint64_t{4} << 30) + 1, "x")},
       absl::StatusCode::kResourceExhausted,
       "snapshot of 4294967297 bytes exceeds the limit of 4294967296 bytes"},
      {"a gap", {First(10, "hello"), Last(NextChunk(6, "world"), "helloworld")},
       absl::StatusCode::kInvalidArgument, "snapshot chunk at offset 6 but 5 bytes received"},
      {"an overlap", {First(10, "hello"), Last(NextChunk(4, "oworld"), "helloworld")},
       absl::StatusCode::kInvalidArgument, "snapshot chunk at offset 4 but 5 bytes received"},
      {"more than announced", {First(5, "hello"), Last(NextChunk(5, "!"), "hello!")},
       absl::StatusCode::kInvalidArgument, "snapshot chunks exceed the announced size of 5 bytes"},
      {"more than announced at once", {First(3, "hello")}, absl::StatusCode::kInvalidArgument,
       "snapshot chunks exceed the announced size of 3 bytes"},
      {"nothing at all", {}, absl::StatusCode::kDataLoss,
       "snapshot stream ended early: 0 of 0 bytes received"},
      {"cut short", {First(10, "hello")}, absl::StatusCode::kDataLoss,
       "snapshot stream ended early: 5 of 10 bytes received"},
      {"last too soon", {Last(First(10, "hello"), "hello")}, absl::StatusCode::kDataLoss,
       "snapshot stream ended early: 5 of 10 bytes received"},
      {"corrupt", {Last(First(5, "hello"), "hellO")}, absl::StatusCode::kDataLoss,
       "snapshot checksum mismatch: the 5 bytes received have CRC-32 907060870, the sender's "
       "last chunk says 226395726; nothing was installed, the sender sends it again"},
  };
  for (const Case& c : cases) {
    absl::StatusOr<raftpb::Message> got = Assemble(c.chunks);
    EXPECT_EQ(got.status().code(), c.code) << c.name << ": " << got.status();
    EXPECT_EQ(got.status().message(), c.says) << c.name;
  }
}

TEST(SnapshotStreamTest, AChunkAfterTheLastIsRefused) {
  SnapshotAssembler in;
  ASSERT_TRUE(in.Add(Last(First(5, "hello"), "hello")).ok());
  EXPECT_TRUE(in.complete());
  const absl::Status s = in.Add(NextChunk(5, ""));
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(s.message(), "snapshot chunk at offset 5 after the last chunk");
  EXPECT_EQ(std::move(in).Finish().status(), s);
}

TEST(SnapshotStreamTest, ARefusedStreamStaysRefusedAndKeepsNothing) {
  SnapshotAssembler in;
  ASSERT_TRUE(in.Add(First(10, "hello")).ok());
  EXPECT_EQ(in.received(), 5u);
  const absl::Status s = in.Add(NextChunk(7, "world"));
  ASSERT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_LE(in.held(), kInline);
  // The well-formed chunk that would have followed does not revive it.
  EXPECT_EQ(in.Add(Last(NextChunk(5, "world"), "helloworld")), s);
  EXPECT_EQ(std::move(in).Finish().status(), s);
}

TEST(SnapshotStreamTest, TheHeaderIsCheckedBeforeItsSizeAndBeforeAnythingIsSetAside) {
  std::vector<uint64_t> checked;
  SnapshotAssembler in([&](const raftpb::Message& h) {
    checked.push_back(h.to());
    return absl::FailedPreconditionError("not for me");
  });
  const absl::Status s = in.Add(First(uint64_t{8} << 30, "x"));  // also over the limit
  EXPECT_EQ(s, absl::FailedPreconditionError("not for me"));
  EXPECT_EQ(checked, std::vector<uint64_t>{3});
  EXPECT_LE(in.held(), kInline);

  // A header the check accepts goes on to the other checks, and the check runs once.
  int calls = 0;
  SnapshotAssembler ok([&](const raftpb::Message&) {
    ++calls;
    return absl::OkStatus();
  });
  absl::StatusOr<raftpb::Message> got =
      Assemble({First(10, "hello"), Last(NextChunk(5, "world"), "helloworld")}, std::move(ok));
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(calls, 1);
}

TEST(SnapshotStreamTest, WhatIsSetAsideBeforeTheDataArrivesIsBounded) {
  // Limits scaled down: at most 1 MiB set aside for a claim of 1 GiB.
  SnapshotAssembler in(nullptr, uint64_t{1} << 30, uint64_t{1} << 20);
  ASSERT_TRUE(in.Add(First(uint64_t{1} << 30, "hello")).ok());
  EXPECT_GE(in.held(), uint64_t{1} << 20);
  EXPECT_LT(in.held(), uint64_t{2} << 20);
  // A small announced size sets aside only that.
  SnapshotAssembler small(nullptr, uint64_t{1} << 30, uint64_t{1} << 20);
  ASSERT_TRUE(small.Add(First(100, "hello")).ok());
  EXPECT_LT(small.held(), 1024u);
}

}  // namespace
}  // namespace shoal::raft
