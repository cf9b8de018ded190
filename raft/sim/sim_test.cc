// The simulation in CI: 2,000 seeds, split into blocks so Bazel can shard them across cores.
#include <gtest/gtest.h>

#include "raft/sim/sim.h"

namespace shoal::raft::sim {
namespace {

constexpr uint64_t kSeedsPerBlock = 100;
constexpr uint64_t kBlocks = 20;  // 2,000 seeds

class SimTest : public ::testing::TestWithParam<uint64_t> {};

TEST_P(SimTest, AllInvariantsHoldForEverySeed) {
  const uint64_t first = GetParam() * kSeedsPerBlock + 1;
  SimStats total;
  for (uint64_t seed = first; seed < first + kSeedsPerBlock; ++seed) {
    SimResult r = RunSeed(seed);
    if (!r.ok) {
      SimOptions traced;
      traced.trace_lines = 200;
      SimResult t = RunSeed(seed, traced);
      std::string trace;
      for (const std::string& line : t.trace) trace += "  " + line + "\n";
      ADD_FAILURE() << "seed " << seed << ": " << r.failure << "\n"
                    << trace << "replay: bazel run //raft:sim -- --seeds 1 --first-seed " << seed;
    }
    total.elections += r.stats.elections;
    total.crashes += r.stats.crashes;
    total.acked_writes += r.stats.acked_writes;
    total.acked_reads += r.stats.acked_reads;
    total.snapshots_sent += r.stats.snapshots_sent;
    total.membership_changes += r.stats.membership_changes;
    total.pauses += r.stats.pauses;
    total.driven_changes += r.stats.driven_changes;
    total.tail_entries += r.stats.tail_entries;
  }
  // The faults and the load really happened (a simulation that does nothing proves nothing).
  EXPECT_GT(total.elections, kSeedsPerBlock);
  EXPECT_GT(total.crashes, kSeedsPerBlock);
  EXPECT_GT(total.acked_writes, 10 * kSeedsPerBlock);
  EXPECT_GT(total.acked_reads, 5 * kSeedsPerBlock);
  EXPECT_GT(total.snapshots_sent, 0u);
  EXPECT_GT(total.membership_changes, 0u);
  EXPECT_GT(total.pauses, 0u);
  EXPECT_GT(total.driven_changes, 0u);
  EXPECT_GT(total.tail_entries, 0u);
}

INSTANTIATE_TEST_SUITE_P(Seeds, SimTest, ::testing::Range<uint64_t>(0, kBlocks));

// Seeds outside the CI range that once found a bug, run on every change. 684897: a member
// applied entry 25 (term 5) while its disk still held an older entry 25 (term 4) and took a
// snapshot there: the simulation's snapshots, unlike Node::MaybeSnapshot, did not wait for the
// write, and the snapshot said term 4; a member that installed it never matched an append
// again (found when leaders' writes began to wait, which changed the schedules).
TEST(SimRegressionTest, SeedsThatOnceFailedPass) {
  for (uint64_t seed : {684897}) {
    SimResult r = RunSeed(seed);
    EXPECT_TRUE(r.ok) << "seed " << seed << ": " << r.failure
                      << "\nreplay: bazel run //raft:sim -- --seeds 1 --first-seed " << seed;
  }
}

TEST(SimDeterminismTest, TheSameSeedReplaysTheSameRun) {
  SimOptions opts;
  opts.trace_lines = 100000;
  SimResult a = RunSeed(4242, opts);
  SimResult b = RunSeed(4242, opts);
  EXPECT_EQ(a.trace, b.trace);
  EXPECT_EQ(a.stats.messages, b.stats.messages);
  EXPECT_GT(a.trace.size(), 100u);
}

}  // namespace
}  // namespace shoal::raft::sim
