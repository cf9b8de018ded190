#include "manager/allocator/allocator.h"

#include "gtest/gtest.h"
#include "manager/store/testing/fake_raft.h"

namespace shoal::manager::allocator {
namespace {

using store::ReadTx;
using store::WriteTx;

class AllocatorTest : public ::testing::Test {
 protected:
  AllocatorTest() { raft_.Join(&store_); }
  template <typename T>
  void Put(const T& o) {
    ASSERT_TRUE(store_.Update([&](WriteTx& tx) { return tx.Create(o); }).ok());
  }
  api::Task Task(const std::string& id) {
    api::Task out;
    store_.View([&](const ReadTx& tx) { out = *tx.Get<api::Task>(id); });
    return out;
  }
  store::testing::FakeRaft raft_;
  store::Store store_{&raft_};
  AllocatorLoop loop_{{&store_, 0}};
};

api::Task NewTask(const std::string& id) {
  api::Task t;
  t.mutable_meta()->set_id(id);
  t.set_service_id("svc");
  t.set_desired_state(api::TASK_STATE_RUNNING);
  t.mutable_status()->set_state(api::TASK_STATE_NEW);
  return t;
}

TEST_F(AllocatorTest, MovesNewTasksToPending) {
  Put(NewTask("t1"));
  EXPECT_EQ(loop_.Step(absl::InfinitePast()), 1u);
  EXPECT_EQ(Task("t1").status().state(), api::TASK_STATE_PENDING);
  EXPECT_EQ(loop_.Step(absl::InfinitePast()), 0u) << "its own write is not NEW";
}

TEST_F(AllocatorTest, AMissingSecretKeepsTheTaskNewWithAnErrorUntilItExists) {
  api::Task t = NewTask("t1");
  auto* ref = t.mutable_spec()->mutable_container()->add_secrets();
  ref->set_secret_id("sec1");
  ref->set_secret_name("db_password");
  Put(t);
  EXPECT_EQ(loop_.Step(absl::InfinitePast()), 1u);
  EXPECT_EQ(Task("t1").status().state(), api::TASK_STATE_NEW);
  EXPECT_EQ(Task("t1").status().err(),
            "cannot allocate: secret db_password (id sec1) not found");
  EXPECT_EQ(loop_.Step(absl::InfinitePast()), 0u) << "the same error is not written again";
  api::Secret s;
  s.mutable_meta()->set_id("sec1");
  s.mutable_spec()->mutable_annotations()->set_name("db_password");
  Put(s);
  EXPECT_EQ(loop_.Step(absl::InfinitePast()), 1u);
  EXPECT_EQ(Task("t1").status().state(), api::TASK_STATE_PENDING);
  EXPECT_EQ(Task("t1").status().err(), "");
}

TEST_F(AllocatorTest, ConfigsAndNetworksAreCheckedToo) {
  api::Task t = NewTask("t1");
  auto* ref = t.mutable_spec()->mutable_container()->add_configs();
  ref->set_config_id("c1");
  ref->set_config_name("nginx.conf");
  t.mutable_spec()->add_networks()->set_target("net1");
  store_.View([&](const ReadTx& tx) {
    EXPECT_EQ(CheckReferences(t, tx).message(), "config nginx.conf (id c1) not found");
  });
  api::Config c;
  c.mutable_meta()->set_id("c1");
  c.mutable_spec()->mutable_annotations()->set_name("nginx.conf");
  Put(c);
  store_.View([&](const ReadTx& tx) {
    EXPECT_EQ(CheckReferences(t, tx).message(), "network net1 not found");
  });
}

}  // namespace
}  // namespace shoal::manager::allocator
