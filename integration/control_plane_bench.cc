// The control plane's benchmark: `service create --replicas 10000` onto 1,000 nodes with three
// managers on real Raft (RocksDB, gRPC on loopback), until every task is assigned. Reports the
// time and the Raft entries it took.
//
//   bazel run -c opt //integration:control_plane_bench
//   bazel run -c opt //integration:control_plane_bench -- --replicas 10000 --nodes 1000
//
// The nodes are written READY into the store (no worker processes: what is measured is the
// managers' path from the API call to every task assigned: orchestrator, allocator and
// scheduler, each writing in batches through Raft).
#include <sys/resource.h>

#include <cstdio>
#include <filesystem>
#include <map>
#include <memory>

#include "CLI/CLI.hpp"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "manager/controlapi/control_api.h"
#include "manager/leader_components.h"
#include "manager/store/testing/raft_cluster.h"

namespace shoal::integration {
namespace {

using manager::store::ReadTx;
using manager::store::WriteTx;
using manager::store::testing::Member;
using manager::store::testing::RaftCluster;

int Main(int argc, char** argv) {
  CLI::App app{"Shoal control-plane benchmark"};
  uint64_t replicas = 10000;
  int nodes = 1000;
  std::string dir = "/tmp/shoal-control-plane-bench";
  app.add_option("--replicas", replicas, "replicas of the service")->check(CLI::PositiveNumber);
  app.add_option("--nodes", nodes, "nodes to place them on")->check(CLI::PositiveNumber);
  app.add_option("--dir", dir, "where the managers' Raft logs go (emptied first)");
  CLI11_PARSE(app, argc, argv);
  std::filesystem::remove_all(dir);

  absl::Mutex mu;
  std::map<uint64_t, std::unique_ptr<manager::LeaderComponents>> components;
  RaftCluster::Options o;
  o.base = dir;
  o.on_start = [&](Member& m) {
    absl::MutexLock lock(&mu);
    manager::LeaderComponents::Options lo;
    lo.store = m.store.get();
    components[m.id] = std::make_unique<manager::LeaderComponents>(lo);
  };
  o.on_leadership = [&](Member& m, bool leading, uint64_t term) {
    absl::MutexLock lock(&mu);
    if (components[m.id]) components[m.id]->OnLeadership(leading, term);
  };
  o.on_kill = [&](Member& m) {
    std::unique_ptr<manager::LeaderComponents> gone;
    {
      absl::MutexLock lock(&mu);
      gone = std::move(components[m.id]);
    }
  };
  RaftCluster cluster(o);
  cluster.Bootstrap(3);
  const uint64_t leader = cluster.Leader();
  if (leader == 0) {
    std::fprintf(stderr, "no leader\n");
    return 1;
  }
  // The nodes, 200 to a transaction.
  for (int first = 0; first < nodes; first += 200) {
    auto r = cluster.Write(leader, [&](WriteTx& tx) -> absl::Status {
      for (int i = first; i < std::min(nodes, first + 200); ++i) {
        const std::string id = absl::StrCat("node", 10000 + i);
        if (tx.Get<api::Node>(id) != nullptr) continue;
        api::Node n;
        n.mutable_meta()->set_id(id);
        n.mutable_description()->set_hostname(absl::StrCat("host-", i));
        n.mutable_description()->mutable_resources()->set_nano_cpus(16'000'000'000);
        n.mutable_description()->mutable_resources()->set_memory_bytes(int64_t{64} << 30);
        n.mutable_status()->set_state(api::NodeStatus::NODE_STATE_READY);
        if (auto s = tx.Create(n); !s.ok()) return s;
      }
      return absl::OkStatus();
    });
    if (!r.ok()) {
      std::fprintf(stderr, "writing nodes: %s\n", std::string(r.status().message()).c_str());
      return 1;
    }
  }

  manager::controlapi::ControlApi::Options ao;
  ao.store = cluster.M(leader).store.get();
  manager::controlapi::ControlApi api(ao);
  const uint64_t start_index = cluster.M(leader).store->applied_index();
  const absl::Time start = absl::Now();
  api::CreateServiceRequest req;
  req.mutable_spec()->mutable_annotations()->set_name("web");
  req.mutable_spec()->mutable_task()->mutable_container()->set_image("nginx:1.25");
  req.mutable_spec()->mutable_replicated()->set_replicas(replicas);
  req.mutable_spec()->mutable_task()->mutable_resources()->mutable_reservations()->set_memory_bytes(
      64 << 20);
  auto created = api.CreateService(req);
  if (!created.ok()) {
    std::fprintf(stderr, "create: %s\n", std::string(created.status().message()).c_str());
    return 1;
  }
  const absl::Time accepted = absl::Now();
  uint64_t assigned = 0;
  const absl::Time deadline = absl::Now() + absl::Minutes(10);
  while (absl::Now() < deadline) {
    bool done = false;
    auto w = cluster.M(leader).store->Watch(nullptr, [&](const ReadTx& tx) {
      assigned = 0;
      for (const api::Task* t : tx.TasksWithDesiredState(api::TASK_STATE_RUNNING)) {
        assigned += t->status().state() == api::TASK_STATE_ASSIGNED;
      }
      done = assigned == replicas;
    });
    if (done) break;
    (void)w->Next(absl::Now() + absl::Milliseconds(200));
  }
  const absl::Time end = absl::Now();
  const uint64_t entries = cluster.M(leader).store->applied_index() - start_index;
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  std::printf("service create --replicas %llu onto %d nodes, 3 managers\n",
              static_cast<unsigned long long>(replicas), nodes);
  std::printf("assigned %llu of %llu\n", static_cast<unsigned long long>(assigned),
              static_cast<unsigned long long>(replicas));
  std::printf("create answered in %.1f ms; all assigned after %.1f ms\n",
              absl::ToDoubleMilliseconds(accepted - start),
              absl::ToDoubleMilliseconds(end - start));
  std::printf("Raft entries: %llu (%.1f tasks per entry, counting creation, allocation and "
              "assignment)\n",
              static_cast<unsigned long long>(entries),
              entries == 0 ? 0.0 : 3.0 * replicas / entries);
  std::printf("peak memory of the process (3 managers): %.1f MiB\n", ru.ru_maxrss / 1024.0);
  for (uint64_t id = 1; id <= 3; ++id) cluster.Kill(id);
  std::filesystem::remove_all(dir);
  return assigned == replicas ? 0 : 1;
}

}  // namespace
}  // namespace shoal::integration

int main(int argc, char** argv) { return shoal::integration::Main(argc, argv); }
