#include "manager/store/store.h"

#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "common/testing/manual_clock.h"
#include "gtest/gtest.h"
#include "manager/store/testing/fake_raft.h"

namespace shoal::manager::store {
namespace {

using testing::FakeRaft;

api::Service MakeService(const std::string& id, const std::string& name) {
  api::Service s;
  s.mutable_meta()->set_id(id);
  s.mutable_spec()->mutable_annotations()->set_name(name);
  return s;
}

api::Task MakeTask(const std::string& id, const std::string& service, uint64_t slot,
                   const std::string& node = "") {
  api::Task t;
  t.mutable_meta()->set_id(id);
  t.set_service_id(service);
  t.set_slot(slot);
  t.set_node_id(node);
  t.set_desired_state(api::TASK_STATE_RUNNING);
  return t;
}

class StoreTest : public ::testing::Test {
 protected:
  StoreTest() {
    raft_.Join(&store_);
    raft_.Join(&replica_);
  }
  static Store::Options Opts(const ManualClock& clock, uint32_t nonce) {
    Store::Options o;
    o.clock = &clock;
    o.proposal_nonce = nonce;
    return o;
  }

  // A copy of the object, as stored now.
  template <typename T>
  std::optional<T> Read(Store& s, const std::string& id) {
    std::optional<T> out;
    s.View([&](const ReadTx& tx) {
      if (const T* o = tx.Get<T>(id)) out = *o;
    });
    return out;
  }

  ManualClock clock_;
  FakeRaft raft_;
  Store store_{&raft_, Opts(clock_, 1)};
  Store replica_{&raft_, Opts(clock_, 2)};
};

TEST_F(StoreTest, AWriteIsVersionedByItsIndexAndReachesEveryMember) {
  auto index = store_.Update([](WriteTx& tx) { return tx.Create(MakeService("s1", "web")); });
  ASSERT_TRUE(index.ok()) << index.status();
  EXPECT_EQ(*index, 1u);
  for (Store* s : {&store_, &replica_}) {
    auto got = Read<api::Service>(*s, "s1");
    ASSERT_TRUE(got.has_value());
    EXPECT_EQ(got->meta().version().index(), 1u);
    EXPECT_EQ(got->meta().created_at().seconds(), absl::ToUnixSeconds(clock_.Now()));
    EXPECT_EQ(got->spec().annotations().name(), "web");
  }
  const api::Service v1 = *Read<api::Service>(store_, "s1");
  clock_.Advance(absl::Seconds(10));
  api::Service changed = v1;
  changed.mutable_spec()->mutable_annotations()->mutable_labels()->insert({"tier", "front"});
  index = store_.Update([&](WriteTx& tx) { return tx.Update(changed); });
  ASSERT_TRUE(index.ok()) << index.status();
  EXPECT_EQ(*index, 2u);
  const api::Service v2 = *Read<api::Service>(replica_, "s1");
  EXPECT_EQ(v2.meta().version().index(), 2u);
  EXPECT_EQ(v2.meta().created_at().seconds(), v1.meta().created_at().seconds());
  EXPECT_EQ(v2.meta().updated_at().seconds(), v1.meta().created_at().seconds() + 10);

  // The same stale copy again: the version moved on.
  index = store_.Update([&](WriteTx& tx) { return tx.Update(changed); });
  EXPECT_EQ(index.status().code(), absl::StatusCode::kAborted) << index.status();
  EXPECT_NE(index.status().message().find("service s1 changed since it was read (version 1, now 2)"),
            std::string::npos)
      << index.status();
}

TEST_F(StoreTest, NamesAreUniquePerKindIgnoringCase) {
  ASSERT_TRUE(store_.Update([](WriteTx& tx) { return tx.Create(MakeService("s1", "web")); }).ok());
  auto dup = store_.Update([](WriteTx& tx) { return tx.Create(MakeService("s2", "WEB")); });
  EXPECT_EQ(dup.status().code(), absl::StatusCode::kAlreadyExists);
  EXPECT_NE(dup.status().message().find("service name \"web\" is taken by service s1"),
            std::string::npos)
      << dup.status();
  // Another kind may use the name.
  api::Secret secret;
  secret.mutable_meta()->set_id("x1");
  secret.mutable_spec()->mutable_annotations()->set_name("web");
  EXPECT_TRUE(store_.Update([&](WriteTx& tx) { return tx.Create(secret); }).ok());
  // A rename frees the old name within the same transaction.
  auto swapped = store_.Update([&](WriteTx& tx) {
    api::Service s1 = *tx.Get<api::Service>("s1");
    s1.mutable_spec()->mutable_annotations()->set_name("web-old");
    if (auto s = tx.Update(s1); !s.ok()) return s;
    if (tx.GetByName<api::Service>("web") != nullptr) return absl::InternalError("still taken");
    return tx.Create(MakeService("s2", "web"));
  });
  ASSERT_TRUE(swapped.ok()) << swapped.status();
  replica_.View([](const ReadTx& tx) {
    ASSERT_NE(tx.GetByName<api::Service>("Web"), nullptr);
    EXPECT_EQ(tx.GetByName<api::Service>("Web")->meta().id(), "s2");
    EXPECT_EQ(tx.GetByName<api::Service>("web-old")->meta().id(), "s1");
  });
}

TEST_F(StoreTest, TaskIndexesFollowWritesAndRemovals) {
  ASSERT_TRUE(store_
                  .Update([](WriteTx& tx) {
                    for (int i = 1; i <= 3; ++i) {
                      auto s = tx.Create(MakeTask(absl::StrCat("t", i), "web", i,
                                                  i == 3 ? "n2" : "n1"));
                      if (!s.ok()) return s;
                    }
                    return tx.Create(MakeTask("t9", "db", 1, "n2"));
                  })
                  .ok());
  auto ids = [](const std::vector<const api::Task*>& ts) {
    std::vector<std::string> out;
    for (const auto* t : ts) out.push_back(t->meta().id());
    return out;
  };
  replica_.View([&](const ReadTx& tx) {
    EXPECT_EQ(ids(tx.TasksOfService("web")), (std::vector<std::string>{"t1", "t2", "t3"}));
    EXPECT_EQ(ids(tx.TasksOnNode("n2")), (std::vector<std::string>{"t3", "t9"}));
    EXPECT_EQ(ids(tx.TasksInSlot("web", 2)), (std::vector<std::string>{"t2"}));
    EXPECT_EQ(tx.TasksWithDesiredState(api::TASK_STATE_RUNNING).size(), 4u);
  });
  ASSERT_TRUE(store_
                  .Update([](WriteTx& tx) {
                    api::Task t = *tx.Get<api::Task>("t1");
                    t.set_node_id("n2");
                    t.set_desired_state(api::TASK_STATE_SHUTDOWN);
                    if (auto s = tx.Update(t); !s.ok()) return s;
                    return tx.Remove<api::Task>("t9");
                  })
                  .ok());
  replica_.View([&](const ReadTx& tx) {
    EXPECT_EQ(ids(tx.TasksOnNode("n1")), (std::vector<std::string>{"t2"}));
    EXPECT_EQ(ids(tx.TasksOnNode("n2")), (std::vector<std::string>{"t1", "t3"}));
    EXPECT_EQ(ids(tx.TasksOfService("db")), std::vector<std::string>{});
    EXPECT_EQ(ids(tx.TasksWithDesiredState(api::TASK_STATE_SHUTDOWN)),
              (std::vector<std::string>{"t1"}));
    EXPECT_EQ(tx.Get<api::Task>("t9"), nullptr);
  });
}

TEST_F(StoreTest, ATransactionOverTheLimitsIsRefusedBeforeItIsProposed) {
  auto big = store_.Update([](WriteTx& tx) {
    for (int i = 0; i < 201; ++i) {
      auto s = tx.Create(MakeTask(absl::StrCat("t", i), "web", i));
      if (!s.ok()) return s;
    }
    return absl::OkStatus();
  });
  EXPECT_EQ(big.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_NE(big.status().message().find("at most 200 changes"), std::string::npos) << big.status();
  auto huge = store_.Update([](WriteTx& tx) {
    api::Config c;
    c.mutable_meta()->set_id("c1");
    c.mutable_spec()->mutable_annotations()->set_name("blob");
    c.mutable_spec()->set_data(std::string(2 << 20, 'x'));
    return tx.Create(c);
  });
  EXPECT_EQ(huge.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(raft_.proposals(), 0);
  store_.View([](const ReadTx& tx) { EXPECT_TRUE(tx.List<api::Task>().empty()); });
}

TEST_F(StoreTest, ABatchSpreadsChangesOverAsManyTransactionsAsTheyNeed) {
  auto batch = store_.StartBatch();
  for (int i = 0; i < 1000; ++i) {
    ASSERT_TRUE(batch
                    ->Add([&](WriteTx& tx) {
                      return tx.Create(MakeTask(absl::StrCat("t", 1000 + i), "web", i + 1));
                    })
                    .ok());
  }
  ASSERT_TRUE(batch->Finish().ok());
  EXPECT_EQ(batch->transactions(), 5u);
  replica_.View([](const ReadTx& tx) { EXPECT_EQ(tx.TasksOfService("web").size(), 1000u); });
  // A batch's later change sees its earlier ones (a name taken in the open transaction).
  auto b2 = store_.StartBatch();
  ASSERT_TRUE(b2->Add([](WriteTx& tx) { return tx.Create(MakeService("s1", "api")); }).ok());
  EXPECT_EQ(b2->Add([](WriteTx& tx) { return tx.Create(MakeService("s2", "API")); }).code(),
            absl::StatusCode::kAlreadyExists);
  ASSERT_TRUE(b2->Finish().ok());
}

TEST_F(StoreTest, ConcurrentWritesOfOneVersionApplyOnceAndTheOtherIsRefusedWhole) {
  ASSERT_TRUE(store_.Update([](WriteTx& tx) { return tx.Create(MakeService("s1", "web")); }).ok());
  raft_.Hold();
  absl::StatusOr<uint64_t> a, b;
  auto label = [](const std::string& v) {
    return [v](WriteTx& tx) {
      api::Service s = *tx.Get<api::Service>("s1");
      (*s.mutable_spec()->mutable_annotations()->mutable_labels())["by"] = v;
      if (auto st = tx.Update(s); !st.ok()) return st;
      return tx.Create(MakeTask("t-" + v, "s1", 1));
    };
  };
  // a is proposed and held (not applied), so b reads the same version a read.
  std::thread ta([&] { a = store_.Update(label("a")); });
  raft_.WaitHeld(1);
  std::thread tb([&] { b = store_.Update(label("b")); });
  raft_.ReleaseWhenHeld(2);
  ta.join();
  tb.join();
  // a applied; b, proposed second from the same version, was refused, task and all.
  ASSERT_TRUE(a.ok()) << a.status();
  EXPECT_EQ(b.status().code(), absl::StatusCode::kAborted) << b.status();
  const std::string winner = "a";
  for (Store* s : {&store_, &replica_}) {
    s->View([&](const ReadTx& tx) {
      EXPECT_EQ(tx.Get<api::Service>("s1")->spec().annotations().labels().at("by"), winner);
      EXPECT_EQ(tx.TasksOfService("s1").size(), 1u);
    });
    EXPECT_EQ(s->refused_transactions(), 1u);
  }
}

TEST_F(StoreTest, ARemovalOfAStaleReadIsRefusedAtApply) {
  ASSERT_TRUE(store_.Update([](WriteTx& tx) { return tx.Create(MakeService("s1", "web")); }).ok());
  raft_.Hold();
  absl::StatusOr<uint64_t> removed, updated;
  std::thread remover([&] {
    removed = store_.Update([](WriteTx& tx) { return tx.Remove<api::Service>("s1"); });
  });
  std::thread updater([&] {
    updated = store_.Update([](WriteTx& tx) {
      api::Service s = *tx.Get<api::Service>("s1");
      s.mutable_spec()->mutable_annotations()->set_name("web2");
      return tx.Update(s);
    });
  });
  raft_.ReleaseWhenHeld(2);
  remover.join();
  updater.join();
  EXPECT_NE(removed.ok(), updated.ok()) << removed.status() << " / " << updated.status();
}

TEST_F(StoreTest, WritesThatFailChangeNothing) {
  auto mine = store_.Update([](WriteTx& tx) -> absl::Status {
    if (auto s = tx.Create(MakeService("s1", "web")); !s.ok()) return s;
    return absl::InvalidArgumentError("replicas: must be at least 0");
  });
  EXPECT_EQ(mine.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(raft_.proposals(), 0);
  raft_.FailWith(absl::UnavailableError("not the leader"));
  auto lost = store_.Update([](WriteTx& tx) { return tx.Create(MakeService("s1", "web")); });
  EXPECT_EQ(lost.status().code(), absl::StatusCode::kUnavailable);
  store_.View([](const ReadTx& tx) { EXPECT_EQ(tx.Get<api::Service>("s1"), nullptr); });
  EXPECT_EQ(store_.Update([](WriteTx&) { return absl::OkStatus(); }).value_or(99), 0u)
      << "nothing changed, nothing proposed";
  EXPECT_EQ(store_.Update([](WriteTx& tx) { return tx.Create(api::Service()); }).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST_F(StoreTest, WatchersSeeEachTransactionInOrderFromWhereTheyRead) {
  ASSERT_TRUE(store_.Update([](WriteTx& tx) { return tx.Create(MakeService("s1", "web")); }).ok());
  size_t services_at_start = 0;
  auto tasks = replica_.Watch([](const Event& e) { return e.kind == Kind::kTask; },
                              [&](const ReadTx& tx) {
                                services_at_start = tx.List<api::Service>().size();
                              });
  auto all = replica_.Watch(nullptr);
  EXPECT_EQ(services_at_start, 1u);
  ASSERT_TRUE(store_
                  .Update([](WriteTx& tx) {
                    if (auto s = tx.Create(MakeTask("t1", "s1", 1)); !s.ok()) return s;
                    return tx.Create(MakeTask("t2", "s1", 2));
                  })
                  .ok());
  ASSERT_TRUE(store_.Update([](WriteTx& tx) { return tx.Remove<api::Service>("s1"); }).ok());
  std::vector<std::string> seen;
  while (true) {
    auto e = tasks->Next();
    ASSERT_TRUE(e.ok());
    if (!e->has_value()) break;
    const Event& ev = **e;
    seen.push_back(ev.type == Event::Type::kCommit
                       ? absl::StrCat("commit@", ev.index)
                       : absl::StrCat(ev.As<api::Task>()->meta().id(), "@", ev.index));
  }
  EXPECT_EQ(seen, (std::vector<std::string>{"t1@2", "t2@2", "commit@2"}));
  int events = 0;
  while (true) {
    auto e = all->Next();
    ASSERT_TRUE(e.ok());
    if (!e->has_value()) break;
    ++events;
    if ((*e)->type == Event::Type::kRemove) {
      EXPECT_EQ((*e)->As<api::Service>()->meta().id(), "s1");
      EXPECT_EQ((*e)->As<api::Task>(), nullptr);
    }
  }
  EXPECT_EQ(events, 5);  // two creates, a commit, a removal, a commit
}

TEST_F(StoreTest, AWatcherThatFallsBehindIsClosedAndARestoreClosesEveryWatcher) {
  Store::Options o = Opts(clock_, 3);
  o.watch_queue_limit = 3;
  FakeRaft raft;
  Store small(&raft, o);
  raft.Join(&small);
  auto slow = small.Watch(nullptr);
  for (int i = 0; i < 3; ++i) {
    ASSERT_TRUE(small
                    .Update([&](WriteTx& tx) {
                      return tx.Create(MakeService(absl::StrCat("s", i), absl::StrCat("n", i)));
                    })
                    .ok());
  }
  auto e = slow->Next();
  EXPECT_EQ(e.status().code(), absl::StatusCode::kResourceExhausted) << e.status();

  auto watcher = small.Watch(nullptr);
  ASSERT_TRUE(small.Restore(small.SnapshotLater()()).ok());
  e = watcher->Next();
  EXPECT_EQ(e.status().code(), absl::StatusCode::kUnavailable) << e.status();
}

TEST_F(StoreTest, ASnapshotHoldsTheStateWhenTakenAndRestoresItWithItsIndexes) {
  ASSERT_TRUE(store_
                  .Update([](WriteTx& tx) {
                    if (auto s = tx.Create(MakeService("s1", "web")); !s.ok()) return s;
                    if (auto s = tx.Create(MakeTask("t1", "s1", 1, "n1")); !s.ok()) return s;
                    api::Cluster c;
                    c.mutable_meta()->set_id("c1");
                    c.mutable_spec()->mutable_annotations()->set_name("default");
                    return tx.Create(c);
                  })
                  .ok());
  std::function<std::string()> later = store_.SnapshotLater();
  // Written after the capture: not in the snapshot.
  ASSERT_TRUE(store_.Update([](WriteTx& tx) { return tx.Create(MakeTask("t2", "s1", 2)); }).ok());
  const std::string data = later();

  FakeRaft other;
  Store fresh(&other, Opts(clock_, 4));
  ASSERT_TRUE(fresh.Restore(data).ok());
  EXPECT_EQ(fresh.applied_index(), 1u);
  fresh.View([](const ReadTx& tx) {
    EXPECT_EQ(tx.TasksOfService("s1").size(), 1u);
    EXPECT_EQ(tx.TasksOnNode("n1").size(), 1u);
    ASSERT_NE(tx.GetByName<api::Service>("WEB"), nullptr);
    ASSERT_NE(tx.GetByName<api::Cluster>("default"), nullptr);
    EXPECT_EQ(tx.Get<api::Task>("t2"), nullptr);
    EXPECT_EQ(tx.Get<api::Task>("t1")->meta().version().index(), 1u);
  });
  // Two members fed the same entries hold the same state.
  EXPECT_EQ(store_.SnapshotLater()(), replica_.SnapshotLater()());
}

TEST_F(StoreTest, ABadSnapshotIsRefusedAndChangesNothing) {
  ASSERT_TRUE(store_.Update([](WriteTx& tx) { return tx.Create(MakeService("s1", "web")); }).ok());
  EXPECT_EQ(store_.Restore("\xff\xff garbage").code(), absl::StatusCode::kInvalidArgument);
  api::StoreSnapshot newer;
  newer.set_format(2);
  const absl::Status s = store_.Restore(newer.SerializeAsString());
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(s.message().find("format is 2"), std::string::npos) << s;
  EXPECT_TRUE(Read<api::Service>(store_, "s1").has_value());
}

TEST_F(StoreTest, LabelsSelectObjects) {
  ASSERT_TRUE(store_
                  .Update([](WriteTx& tx) {
                    api::Service a = MakeService("s1", "web");
                    (*a.mutable_spec()->mutable_annotations()->mutable_labels())
                        ["com.docker.stack.namespace"] = "shop";
                    api::Service b = MakeService("s2", "db");
                    (*b.mutable_spec()->mutable_annotations()->mutable_labels())
                        ["com.docker.stack.namespace"] = "blog";
                    if (auto s = tx.Create(a); !s.ok()) return s;
                    if (auto s = tx.Create(b); !s.ok()) return s;
                    return tx.Create(MakeService("s3", "solo"));
                  })
                  .ok());
  store_.View([](const ReadTx& tx) {
    EXPECT_EQ(tx.ListByLabel<api::Service>("com.docker.stack.namespace").size(), 2u);
    auto shop = tx.ListByLabel<api::Service>("com.docker.stack.namespace", "shop");
    ASSERT_EQ(shop.size(), 1u);
    EXPECT_EQ(shop[0]->meta().id(), "s1");
  });
}

}  // namespace
}  // namespace shoal::manager::store
