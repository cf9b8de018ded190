#include "raft/bench/id_set.h"

#include <set>
#include <string>
#include <thread>
#include <vector>

#include "gtest/gtest.h"

namespace shoal::raft::bench {
namespace {

// A value whose id is (client, seq), with `extra` bytes after it.
std::string Value(uint64_t client, uint64_t seq, size_t extra = 0) {
  std::string v;
  for (int i = 0; i < 8; ++i) v.push_back(static_cast<char>(client >> (56 - 8 * i)));
  for (int i = 0; i < 8; ++i) v.push_back(static_cast<char>(seq >> (56 - 8 * i)));
  return v + std::string(extra, 'x');
}

// The ids a snapshot holds, each as its 16 bytes.
std::set<std::string> IdsOf(const std::string& snapshot) {
  std::set<std::string> out;
  for (size_t i = 0; i + IdSetStateMachine::kIdBytes <= snapshot.size();
       i += IdSetStateMachine::kIdBytes) {
    out.insert(snapshot.substr(i, IdSetStateMachine::kIdBytes));
  }
  return out;
}

TEST(IdSetStateMachineTest, CountsEachIdAppliedOnce) {
  IdSetStateMachine sm;
  sm.Apply(1, Value(1, 1, 240));
  sm.Apply(2, Value(1, 2));
  sm.Apply(3, Value(1, 1, 10));  // the same id again
  sm.Apply(4, "short");          // no id
  EXPECT_EQ(sm.size(), 2u);
  std::vector<std::string> asked = {Value(1, 1), Value(1, 2), Value(2, 1), "x"};
  EXPECT_EQ(sm.Count(asked), 2u);
}

// A snapshot taken is the state as of that moment, however much is applied before it is
// serialized (on the snapshot thread, while the node thread goes on), across chunks.
TEST(IdSetStateMachineTest, ASnapshotHoldsTheIdsAsOfItsTakingWhileMoreAreApplied) {
  IdSetStateMachine sm;
  std::set<std::string> expected;
  for (uint64_t i = 0; i < 10000; ++i) {
    sm.Apply(i, Value(7, i));
    expected.insert(Value(7, i));
  }
  auto later = sm.SnapshotLater();
  std::string data;
  std::thread serializer([&] { data = later(); });
  for (uint64_t i = 10000; i < 30000; ++i) sm.Apply(i, Value(7, i));
  serializer.join();
  EXPECT_EQ(data.size(), 10000 * IdSetStateMachine::kIdBytes);
  EXPECT_EQ(IdsOf(data), expected);
  EXPECT_EQ(IdsOf(sm.Snapshot()).size(), 30000u);
}

TEST(IdSetStateMachineTest, RestoreReplacesTheStateAndOldSnapshotsStayWhole) {
  IdSetStateMachine sm;
  for (uint64_t i = 0; i < 5000; ++i) sm.Apply(i, Value(1, i));
  auto before = sm.SnapshotLater();

  IdSetStateMachine other;
  for (uint64_t i = 0; i < 3; ++i) other.Apply(i, Value(2, i));
  ASSERT_TRUE(sm.Restore(other.Snapshot() + "tail").ok());  // a short tail is ignored
  EXPECT_EQ(sm.size(), 3u);
  std::vector<std::string> asked = {Value(1, 0), Value(2, 0), Value(2, 2)};
  EXPECT_EQ(sm.Count(asked), 2u);
  EXPECT_EQ(IdsOf(sm.Snapshot()), IdsOf(other.Snapshot()));
  // Taken before the restore: still the 5,000 ids.
  EXPECT_EQ(IdsOf(before()).size(), 5000u);
  // And it goes on from the restored state.
  sm.Apply(9, Value(2, 3));
  EXPECT_EQ(sm.size(), 4u);
}

}  // namespace
}  // namespace shoal::raft::bench
