// The replicated control plane without its network faces: three managers on real Raft
// (RocksDB, gRPC on loopback), each starting the leader-only components when it leads, and
// fake workers that report what their tasks do by writing the store. Services become running
// tasks, scale, survive the leader's death without a slot doubled or lost, and survive a
// restart of every manager.
#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "manager/controlapi/control_api.h"
#include "manager/leader_components.h"
#include "manager/raft_join.h"
#include "manager/store/testing/raft_cluster.h"
#include "raft/recovery.h"
#include "raft/rocksdb_log_store.h"

namespace shoal::manager {
namespace {

using store::ReadTx;
using store::WriteTx;
using store::testing::Member;
using store::testing::RaftCluster;

const absl::Duration kWait = absl::Seconds(60);

class ControlPlaneTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const char* tmp = std::getenv("TEST_TMPDIR");
    const auto base = std::filesystem::path(tmp ? tmp : "/tmp") /
                      ::testing::UnitTest::GetInstance()->current_test_info()->name();
    std::filesystem::remove_all(base);
    RaftCluster::Options o;
    o.base = base;
    o.snapshot_interval = 200;
    o.on_start = [this](Member& m) {
      absl::MutexLock lock(&mu_);
      Member* mp = &m;
      memberships_[m.id] = std::make_unique<NodeMembership>([mp] { return mp->node.get(); });
      LeaderComponents::Options lo;
      lo.store = m.store.get();
      lo.membership = memberships_[m.id].get();
      components_[m.id] = std::make_unique<LeaderComponents>(lo);
    };
    // From Raft's threads, also while a member stops (after its components are gone).
    o.on_leadership = [this](Member& m, bool leading, uint64_t term) {
      absl::MutexLock lock(&mu_);
      if (components_[m.id] != nullptr) components_[m.id]->OnLeadership(leading, term);
    };
    // The components go before the store they write to.
    o.on_kill = [this](Member& m) {
      std::unique_ptr<LeaderComponents> gone;
      {
        absl::MutexLock lock(&mu_);
        gone = std::move(components_[m.id]);
      }
      gone.reset();  // stops the loops (they may wait for a write: not under mu_)
    };
    cluster_ = std::make_unique<RaftCluster>(o);
    cluster_->Bootstrap(3);
    for (uint64_t id = 1; id <= 3; ++id) {
      ASSERT_TRUE(cluster_->Write(id, [&](WriteTx& tx) { return PutNode(tx, id); }).ok());
    }
  }
  void TearDown() override {
    for (uint64_t id = 1; id <= 3; ++id) cluster_->Kill(id);
  }

  static absl::Status PutNode(WriteTx& tx, uint64_t i) {
    const std::string id = absl::StrCat("node", i);
    if (tx.Get<api::Node>(id) != nullptr) return absl::OkStatus();
    api::Node n;
    n.mutable_meta()->set_id(id);
    n.mutable_description()->set_hostname(id);
    n.mutable_description()->mutable_resources()->set_nano_cpus(4'000'000'000);
    n.mutable_description()->mutable_resources()->set_memory_bytes(int64_t{8} << 30);
    n.mutable_status()->set_state(api::NodeStatus::NODE_STATE_READY);
    return tx.Create(n);
  }

  // A member that runs and is still in the group.
  uint64_t Live() {
    for (uint64_t id = 1; id <= 3; ++id) {
      if (cluster_->M(id).up && !cluster_->M(id).node->GetStatus().removed) return id;
    }
    return 0;
  }

  void SetReplicas(uint64_t replicas) {
    auto r = cluster_->Write(Live(), [&](WriteTx& tx) {
      const api::Service* s = tx.Get<api::Service>("web");
      if (s == nullptr) {
        api::Service n;
        n.mutable_meta()->set_id("web");
        n.mutable_spec()->mutable_annotations()->set_name("web");
        n.mutable_spec()->mutable_replicated()->set_replicas(replicas);
        n.mutable_spec()->mutable_task()->mutable_restart()->mutable_delay()->set_seconds(0);
        return tx.Create(n);
      }
      api::Service u = *s;
      u.mutable_spec()->mutable_replicated()->set_replicas(replicas);
      return tx.Update(u);
    });
    ASSERT_TRUE(r.ok()) << r.status();
  }

  // The fake workers' pass: tasks assigned and wanted running start; tasks asked to stop stop.
  void WorkersReport() {
    (void)cluster_->Write(Live(), [](WriteTx& tx) {
      int changes = 0;
      for (const api::Task* t : tx.List<api::Task>()) {
        if (changes >= 150) break;
        const auto state = t->status().state();
        api::Task u = *t;
        if (state >= api::TASK_STATE_ASSIGNED && state < api::TASK_STATE_RUNNING &&
            t->desired_state() == api::TASK_STATE_RUNNING) {
          u.mutable_status()->set_state(api::TASK_STATE_RUNNING);
        } else if (state >= api::TASK_STATE_ASSIGNED && state <= api::TASK_STATE_RUNNING &&
                   t->desired_state() > api::TASK_STATE_RUNNING) {
          u.mutable_status()->set_state(api::TASK_STATE_SHUTDOWN);
        } else {
          continue;
        }
        if (auto s = tx.Update(u); !s.ok()) return s;
        ++changes;
      }
      return absl::OkStatus();
    });
  }

  // Whether n slots each have exactly one runnable task, running, and nothing else runs.
  // (After a scale down the slots kept need not be 1..n: Docker keeps web.3 and web.6 too.)
  static bool Converged(const ReadTx& tx, uint64_t n) {
    std::map<uint64_t, int> runnable, running;
    for (const api::Task* t : tx.TasksOfService("web")) {
      if (t->desired_state() <= api::TASK_STATE_RUNNING) ++runnable[t->slot()];
      if (t->status().state() == api::TASK_STATE_RUNNING) ++running[t->slot()];
    }
    if (runnable.size() != n || running != runnable) return false;
    for (const auto& [slot, count] : runnable) {
      if (count != 1) return false;
    }
    return true;
  }

  // Lets the workers report until the cluster converges on n running replicas; meanwhile
  // checks that no slot ever has two running tasks.
  bool Converge(uint64_t n) {
    const absl::Time deadline = absl::Now() + kWait;
    while (absl::Now() < deadline) {
      WorkersReport();
      const uint64_t via = Live();
      bool done = false;
      auto w = cluster_->M(via).store->Watch(
          nullptr, [&](const ReadTx& tx) { done = Converged(tx, n); });
      if (done) return true;
      // Something changes (a loop or a worker wrote), or a second passes.
      (void)w->Next(std::min(deadline, absl::Now() + absl::Seconds(1)));
    }
    // What it came to, for the failure message.
    cluster_->M(Live()).store->View([](const ReadTx& tx) {
      for (const api::Task* t : tx.TasksOfService("web")) {
        ADD_FAILURE() << "slot " << t->slot() << " " << t->meta().id() << " on " << t->node_id()
                      << " state " << api::TaskState_Name(t->status().state()) << " desired "
                      << api::TaskState_Name(t->desired_state()) << " err "
                      << t->status().err();
      }
    });
    return false;
  }

  absl::Mutex mu_;
  std::map<uint64_t, std::unique_ptr<LeaderComponents>> components_ ABSL_GUARDED_BY(mu_);
  std::map<uint64_t, std::unique_ptr<NodeMembership>> memberships_ ABSL_GUARDED_BY(mu_);
  std::unique_ptr<RaftCluster> cluster_;
};

TEST_F(ControlPlaneTest, AServiceRunsItsReplicasAndScales) {
  SetReplicas(5);
  ASSERT_TRUE(Converge(5));
  SetReplicas(8);
  ASSERT_TRUE(Converge(8));
  SetReplicas(2);
  ASSERT_TRUE(Converge(2));
}

TEST_F(ControlPlaneTest, ANewLeaderCarriesOnWithNoSlotDoubledOrLost) {
  SetReplicas(5);
  ASSERT_TRUE(Converge(5));
  const uint64_t leader = cluster_->Leader();
  ASSERT_NE(leader, 0u);
  cluster_->Kill(leader);
  SetReplicas(7);
  ASSERT_TRUE(Converge(7));
  const uint64_t next = cluster_->Leader();
  EXPECT_NE(next, leader);
  LeaderComponents* c;
  {
    absl::MutexLock lock(&mu_);
    c = components_[next].get();
  }
  c->Drain();  // not under mu_: Raft's thread reports leadership through it
  EXPECT_NE(c->running_term(), 0u) << "the new leader runs the components";
}

TEST_F(ControlPlaneTest, RestartingEveryManagerKeepsTheState) {
  SetReplicas(4);
  ASSERT_TRUE(Converge(4));
  for (uint64_t id = 1; id <= 3; ++id) cluster_->Kill(id);
  for (uint64_t id = 1; id <= 3; ++id) cluster_->Start(id);
  // The state came back from the managers' logs and snapshots, and the new leader finds
  // nothing to change.
  ASSERT_TRUE(Converge(4));
  cluster_->M(Live()).store->View([](const ReadTx& tx) {
    ASSERT_NE(tx.Get<api::Service>("web"), nullptr);
    EXPECT_EQ(tx.List<api::Node>().size(), 3u);
  });
}

TEST_F(ControlPlaneTest, ASurvivingManagerForcesANewClusterAndCarriesOn) {
  SetReplicas(3);
  ASSERT_TRUE(Converge(3));
  // Two managers are lost for good; the third is stopped and restarted alone, as
  // `swarmd --force-new-cluster` does: its log becomes a one-member cluster.
  for (uint64_t id = 1; id <= 3; ++id) cluster_->Kill(id);
  uint64_t last = 0;
  {
    auto log = raft::RocksDbLogStore::Open({cluster_->M(1).dir});
    ASSERT_TRUE(log.ok()) << log.status();
    auto forced = raft::ForceNewCluster(**log, 1);
    ASSERT_TRUE(forced.ok()) << forced.status();
    EXPECT_EQ(forced->removed, (std::vector<uint64_t>{2, 3}));
    last = forced->last_index;
  }
  cluster_->Start(uint64_t{1});
  // A write of its own: once applied, so is everything before it (the membership changes
  // ForceNewCluster appended are not store transactions, so the store's index cannot say).
  auto probe = cluster_->Write(1, [](WriteTx& tx) -> absl::Status {
    if (tx.Get<api::Config>("probe") != nullptr) return absl::OkStatus();
    api::Config c;
    c.mutable_meta()->set_id("probe");
    c.mutable_spec()->mutable_annotations()->set_name("probe");
    return tx.Create(c);
  });
  ASSERT_TRUE(probe.ok()) << probe.status();
  EXPECT_GT(*probe, last);
  // Everything acknowledged is there, and the lone manager leads and orchestrates.
  cluster_->M(1).store->View([](const ReadTx& tx) {
    ASSERT_NE(tx.Get<api::Service>("web"), nullptr);
    EXPECT_EQ(tx.Get<api::Service>("web")->spec().replicated().replicas(), 3u);
  });
  SetReplicas(5);
  ASSERT_TRUE(Converge(5));
}

TEST_F(ControlPlaneTest, DemotedManagersLeaveTheRaftGroupTheLeaderLast) {
  // The managers' node objects, as swarmd writes them when they join; written through the
  // member the test reads from, so that it reads them at once.
  ASSERT_TRUE(cluster_
                  ->Write(Live(), [&](WriteTx& tx) -> absl::Status {
                    for (uint64_t id = 1; id <= 3; ++id) {
                      const std::string nid = absl::StrCat("mgr", id);
                      if (tx.Get<api::Node>(nid) != nullptr) continue;
                      api::Node n;
                      n.mutable_meta()->set_id(nid);
                      n.set_role(api::NODE_ROLE_MANAGER);
                      n.mutable_spec()->set_desired_role(api::NODE_ROLE_MANAGER);
                      n.mutable_status()->set_state(api::NodeStatus::NODE_STATE_READY);
                      n.mutable_manager_status()->set_raft_id(id);
                      if (auto s = tx.Create(n); !s.ok()) return s;
                    }
                    return absl::OkStatus();
                  })
                  .ok());
  auto demote = [&](uint64_t raft_id) {
    const uint64_t via = Live();
    controlapi::ControlApi::Options o;
    o.store = cluster_->M(via).store.get();
    controlapi::ControlApi api(o);
    api::GetNodeRequest get;
    get.set_node_id(absl::StrCat("mgr", raft_id));
    auto node = api.GetNode(get);
    ASSERT_TRUE(node.ok()) << node.status();
    api::UpdateNodeRequest u;
    u.set_node_id(node->node().meta().id());
    *u.mutable_node_version() = node->node().meta().version();
    *u.mutable_spec() = node->node().spec();
    u.mutable_spec()->set_desired_role(api::NODE_ROLE_WORKER);
    auto r = api.UpdateNode(u);
    ASSERT_TRUE(r.ok()) << r.status();
  };
  auto demoted = [&](uint64_t raft_id) {
    const absl::Time deadline = absl::Now() + kWait;
    while (absl::Now() < deadline) {
      bool done = false;
      auto w = cluster_->M(Live()).store->Watch(nullptr, [&](const ReadTx& tx) {
        const api::Node* n = tx.Get<api::Node>(absl::StrCat("mgr", raft_id));
        done = n != nullptr && n->role() == api::NODE_ROLE_WORKER &&
               !n->has_manager_status();
      });
      if (done) return true;
      (void)w->Next(std::min(deadline, absl::Now() + absl::Seconds(1)));
    }
    return false;
  };

  // A follower first.
  const uint64_t leader = cluster_->Leader();
  const uint64_t follower = leader == 3 ? 2 : 3;
  demote(follower);
  ASSERT_TRUE(demoted(follower));
  // The leader removed the member before it wrote the role (the member itself learns of it
  // in its own time).
  auto two = cluster_->M(leader).node->Members().get();
  ASSERT_TRUE(two.ok()) << two.status();
  EXPECT_EQ(two->size(), 2u);

  // Then the leader itself: it hands over, and its successor removes it.
  demote(leader);
  ASSERT_TRUE(demoted(leader));
  const uint64_t last = 6 - leader - follower;
  ASSERT_EQ(cluster_->Leader(), last);
  auto members = cluster_->M(last).node->Members().get();
  ASSERT_TRUE(members.ok()) << members.status();
  EXPECT_EQ(members->size(), 1u);

  // The last manager cannot go.
  controlapi::ControlApi::Options o;
  o.store = cluster_->M(last).store.get();
  controlapi::ControlApi api(o);
  api::GetNodeRequest get;
  get.set_node_id(absl::StrCat("mgr", last));
  auto node = api.GetNode(get);
  api::UpdateNodeRequest u;
  u.set_node_id(node->node().meta().id());
  *u.mutable_node_version() = node->node().meta().version();
  *u.mutable_spec() = node->node().spec();
  u.mutable_spec()->set_desired_role(api::NODE_ROLE_WORKER);
  EXPECT_EQ(api.UpdateNode(u).status().code(), absl::StatusCode::kFailedPrecondition);

  // And it runs the cluster alone.
  SetReplicas(2);
  ASSERT_TRUE(Converge(2));

  // Promoting a node makes its role manager (its daemon joins the Raft group once it holds a
  // manager certificate: swarmd's part).
  get.set_node_id(absl::StrCat("mgr", follower));
  auto worker = api.GetNode(get);
  ASSERT_TRUE(worker.ok()) << worker.status();
  api::UpdateNodeRequest promote;
  promote.set_node_id(worker->node().meta().id());
  *promote.mutable_node_version() = worker->node().meta().version();
  *promote.mutable_spec() = worker->node().spec();
  promote.mutable_spec()->set_desired_role(api::NODE_ROLE_MANAGER);
  ASSERT_TRUE(api.UpdateNode(promote).ok());
  const absl::Time deadline = absl::Now() + kWait;
  bool promoted = false;
  while (!promoted && absl::Now() < deadline) {
    auto w = cluster_->M(last).store->Watch(nullptr, [&](const ReadTx& tx) {
      const api::Node* n = tx.Get<api::Node>(absl::StrCat("mgr", follower));
      promoted = n != nullptr && n->role() == api::NODE_ROLE_MANAGER;
    });
    if (!promoted) (void)w->Next(std::min(deadline, absl::Now() + absl::Seconds(1)));
  }
  EXPECT_TRUE(promoted);
}

TEST_F(ControlPlaneTest, APromotedNodeJoinsTheRaftGroupAndBecomesAVoter) {
  // The managers' node objects, and a worker to promote.
  ASSERT_TRUE(cluster_
                  ->Write(Live(), [&](WriteTx& tx) -> absl::Status {
                    for (uint64_t id = 1; id <= 4; ++id) {
                      const std::string nid = absl::StrCat("mgr", id);
                      if (tx.Get<api::Node>(nid) != nullptr) continue;
                      api::Node n;
                      n.mutable_meta()->set_id(nid);
                      const auto role = id <= 3 ? api::NODE_ROLE_MANAGER : api::NODE_ROLE_WORKER;
                      n.set_role(role);
                      n.mutable_spec()->set_desired_role(role);
                      n.mutable_status()->set_state(api::NodeStatus::NODE_STATE_READY);
                      if (id <= 3) {
                        n.mutable_manager_status()->set_raft_id(id);
                        n.mutable_manager_status()->set_addr(cluster_->M(id).addr);
                      }
                      if (auto s = tx.Create(n); !s.ok()) return s;
                    }
                    return absl::OkStatus();
                  })
                  .ok());
  const uint64_t leader = cluster_->Leader();
  ASSERT_NE(leader, 0u);
  NodeMembership leader_membership([&] { return cluster_->M(leader).node.get(); });
  JoinService join({cluster_->M(leader).store.get(), &leader_membership, [] { return 4; }});

  // Not promoted yet: refused.
  auto refused = join.Join("mgr4", "127.0.0.1:1");
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(refused.status().message().find("swarmctl node promote mgr4"), std::string::npos);

  controlapi::ControlApi::Options o;
  o.store = cluster_->M(leader).store.get();
  controlapi::ControlApi api(o);
  api::GetNodeRequest get;
  get.set_node_id("mgr4");
  auto node = api.GetNode(get);
  ASSERT_TRUE(node.ok());
  api::UpdateNodeRequest promote;
  promote.set_node_id("mgr4");
  *promote.mutable_node_version() = node->node().meta().version();
  *promote.mutable_spec() = node->node().spec();
  promote.mutable_spec()->set_desired_role(api::NODE_ROLE_MANAGER);
  ASSERT_TRUE(api.UpdateNode(promote).ok());

  // Its daemon starts a member with an empty store and asks the leader to join.
  cluster_->StartJoining(4);
  auto joined = join.Join("mgr4", cluster_->M(4).addr);
  ASSERT_TRUE(joined.ok()) << joined.status();
  EXPECT_EQ(joined->raft_id(), 4u);
  EXPECT_EQ(joined->members_size(), 4);
  // Asked again while a learner (an interrupted join): the same seat.
  auto again = join.Join("mgr4", cluster_->M(4).addr);
  if (again.ok()) {
    EXPECT_EQ(again->raft_id(), 4u);
  } else {
    // Made a voter meanwhile (it caught up at once): refused below.
    EXPECT_EQ(again.status().code(), absl::StatusCode::kFailedPrecondition) << again.status();
  }

  // The leader's role manager makes it a voter once it caught up; it holds the whole store.
  const absl::Time deadline = absl::Now() + kWait;
  bool voter = false;
  while (!voter && absl::Now() < deadline) {
    auto members = cluster_->M(leader).node->Members().get();
    ASSERT_TRUE(members.ok()) << members.status();
    voter = members->size() == 4 &&
            std::none_of(members->begin(), members->end(), [](const auto& m) { return m.learner; });
    if (!voter) {
      // Polling a status (not synchronising data): the promotion comes from the leader's loop.
      absl::SleepFor(absl::Milliseconds(10));
    }
  }
  ASSERT_TRUE(voter);
  // A voter's node asking again lost its Raft state: refused, naming the way back.
  auto lost = join.Join("mgr4", cluster_->M(4).addr);
  EXPECT_EQ(lost.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(lost.status().message().find("swarmctl node demote mgr4"), std::string::npos)
      << lost.status();
  SetReplicas(2);
  ASSERT_TRUE(cluster_->WaitApplied(4, cluster_->M(leader).store->applied_index()));
  cluster_->M(4).store->View([](const ReadTx& tx) {
    ASSERT_NE(tx.Get<api::Node>("mgr4"), nullptr);
    EXPECT_EQ(tx.Get<api::Node>("mgr4")->manager_status().raft_id(), 4u);
    EXPECT_EQ(tx.Get<api::Node>("mgr4")->role(), api::NODE_ROLE_MANAGER);
    EXPECT_NE(tx.Get<api::Service>("web"), nullptr);
  });
}

// The join service and the role manager change the membership from different threads; Raft
// drops a change proposed while another is not applied yet, so without taking turns one of
// two callers would get an error (a manager's join failed this way).
TEST_F(ControlPlaneTest, MembershipChangesFromSeveralCallersTakeTurns) {
  const uint64_t leader = cluster_->Leader();
  ASSERT_NE(leader, 0u);
  NodeMembership* membership;
  {
    absl::MutexLock lock(&mu_);
    membership = memberships_[leader].get();
  }
  constexpr int kCallers = 4;
  std::vector<absl::Status> added(kCallers);
  {
    std::vector<std::thread> callers;
    for (int i = 0; i < kCallers; ++i) {
      callers.emplace_back([&, i] {
        raftpb::RaftMember me;
        me.set_raft_id(100 + i);
        me.set_addr("127.0.0.1:1");  // never starts: stays a learner
        added[i] = membership->AddLearner(100 + i, me.SerializeAsString());
      });
    }
    for (auto& t : callers) t.join();
  }
  for (int i = 0; i < kCallers; ++i) EXPECT_TRUE(added[i].ok()) << i << ": " << added[i];
  auto members = membership->Members();
  ASSERT_TRUE(members.ok()) << members.status();
  EXPECT_EQ(members->size(), 3u + kCallers);
  for (int i = 0; i < kCallers; ++i) EXPECT_TRUE(membership->Remove(100 + i).ok());
}

}  // namespace
}  // namespace shoal::manager
