#include "raft/sim/linearizability.h"

#include <gtest/gtest.h>

namespace shoal::raft::sim {
namespace {

KvOp Put(int client, const std::string& key, const std::string& v, int64_t call, int64_t ret) {
  KvOp op;
  op.client = client;
  op.kind = KvOp::Kind::kPut;
  op.key = key;
  op.value = v;
  op.call = call;
  op.ret = ret;
  return op;
}

KvOp Get(int client, const std::string& key, std::optional<std::string> v, int64_t call,
         int64_t ret) {
  KvOp op;
  op.client = client;
  op.kind = KvOp::Kind::kGet;
  op.key = key;
  op.found = v.has_value();
  op.value = v.value_or("");
  op.call = call;
  op.ret = ret;
  return op;
}

TEST(LinearizabilityTest, SequentialHistoryThatReadsItsWritesIsLinearizable) {
  EXPECT_TRUE(CheckKvHistory({Get(0, "k", std::nullopt, 0, 1), Put(0, "k", "a", 2, 3),
                              Get(1, "k", "a", 4, 5)})
                  .ok);
}

TEST(LinearizabilityTest, StaleReadAfterACompletedWriteIsNot) {
  LinearizabilityResult r = CheckKvHistory(
      {Put(0, "k", "a", 0, 1), Put(0, "k", "b", 2, 3), Get(1, "k", "a", 4, 5)});
  EXPECT_FALSE(r.ok);
  EXPECT_EQ(r.key, "k");
  EXPECT_NE(r.explanation.find("client 1"), std::string::npos) << r.explanation;
}

TEST(LinearizabilityTest, ConcurrentOperationsMayTakeEffectInEitherOrder) {
  // put(a) and put(b) overlap; the reads after both see b then... a is impossible afterwards.
  EXPECT_TRUE(CheckKvHistory({Put(0, "k", "a", 0, 10), Put(1, "k", "b", 1, 9),
                              Get(2, "k", "a", 11, 12)})
                  .ok);
  EXPECT_TRUE(CheckKvHistory({Put(0, "k", "a", 0, 10), Put(1, "k", "b", 1, 9),
                              Get(2, "k", "b", 11, 12)})
                  .ok);
  EXPECT_FALSE(CheckKvHistory({Put(0, "k", "a", 0, 10), Put(1, "k", "b", 1, 9),
                               Get(2, "k", "b", 11, 12), Get(2, "k", "a", 13, 14)})
                   .ok);
}

TEST(LinearizabilityTest, AReadOverlappingAWriteMaySeeEitherValue) {
  EXPECT_TRUE(CheckKvHistory({Put(0, "k", "a", 0, 1), Put(0, "k", "b", 2, 10),
                              Get(1, "k", "a", 3, 4), Get(2, "k", "b", 5, 6)})
                  .ok);
  // ...but not go back once it saw the new value.
  EXPECT_FALSE(CheckKvHistory({Put(0, "k", "a", 0, 1), Put(0, "k", "b", 2, 10),
                               Get(1, "k", "b", 3, 4), Get(2, "k", "a", 5, 6)})
                   .ok);
}

TEST(LinearizabilityTest, AWriteWithoutAnswerMayHaveHappenedOrNot) {
  EXPECT_TRUE(CheckKvHistory({Put(0, "k", "a", 0, 1), Put(1, "k", "lost", 2, kUnknownReturn),
                              Get(2, "k", "a", 5, 6)})
                  .ok);
  EXPECT_TRUE(CheckKvHistory({Put(0, "k", "a", 0, 1), Put(1, "k", "late", 2, kUnknownReturn),
                              Get(2, "k", "late", 5, 6)})
                  .ok);
  // It cannot have happened before it was called.
  EXPECT_FALSE(CheckKvHistory({Get(2, "k", "late", 0, 1),
                               Put(1, "k", "late", 2, kUnknownReturn)})
                   .ok);
}

TEST(LinearizabilityTest, AcknowledgedWriteThatVanishedIsCaught) {
  // The write of "b" was acknowledged, then a later read sees the older "a": a lost write.
  EXPECT_FALSE(CheckKvHistory({Put(0, "k", "a", 0, 1), Put(1, "k", "b", 2, 3),
                               Get(0, "k", "a", 10, 11)})
                   .ok);
}

TEST(LinearizabilityTest, KeysAreIndependent) {
  EXPECT_TRUE(CheckKvHistory({Put(0, "x", "1", 0, 1), Put(0, "y", "2", 2, 3),
                              Get(1, "x", "1", 4, 5), Get(1, "y", "2", 6, 7)})
                  .ok);
}

TEST(LinearizabilityTest, ManyConcurrentClientsStayTractable) {
  std::vector<KvOp> h;
  int64_t t = 0;
  for (int round = 0; round < 40; ++round) {
    // Five overlapping writes, then a read that sees the last one written by client 4.
    const int64_t start = t;
    for (int c = 0; c < 5; ++c) h.push_back(Put(c, "k", std::to_string(round * 10 + c), start + c, start + 20));
    h.push_back(Get(9, "k", std::to_string(round * 10 + 4), start + 21, start + 22));
    t += 30;
  }
  LinearizabilityResult r = CheckKvHistory(h);
  EXPECT_TRUE(r.ok) << r.explanation;
  EXPECT_LT(r.states, 1'000'000u);
}

}  // namespace
}  // namespace shoal::raft::sim
