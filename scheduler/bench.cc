// The scheduler's benchmark: 100,000 tasks of 100 services onto 5,000 nodes, every service
// with a placement constraint and a spread preference over zones, and reservations. Reports
// tasks per second (goal: at least 50,000 on the 2-core CI machine) and peak memory.
//
//   bazel run -c opt //scheduler:bench
//   bazel run -c opt //scheduler:bench -- --nodes 5000 --tasks 100000 --services 100
//
// What is timed is what the store loop will do: hand every pending task in (UpsertTask),
// Schedule, and hand every assignment back as written (UpsertTask). The cluster is seeded
// (--seed), so two runs place the same tasks on the same nodes.
#include <sys/resource.h>

#include <cstdio>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "CLI/CLI.hpp"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "common/clock.h"
#include "scheduler/scheduler.h"

namespace shoal::scheduler {
namespace {

constexpr int64_t kGiB = int64_t{1} << 30;

long PeakRssKiB() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  return ru.ru_maxrss;
}

api::Node MakeNode(int i, std::mt19937_64& rng, int zones) {
  api::Node n;
  n.mutable_meta()->set_id(absl::StrCat("node", 100000 + i));
  auto* d = n.mutable_description();
  d->set_hostname(absl::StrCat("host-", i));
  d->mutable_platform()->set_os("linux");
  d->mutable_platform()->set_architecture(rng() % 10 == 0 ? "arm64" : "x86_64");
  d->mutable_resources()->set_nano_cpus(int64_t{8 + 8 * static_cast<int64_t>(rng() % 4)} *
                                        1'000'000'000);
  d->mutable_resources()->set_memory_bytes((16 + 16 * static_cast<int64_t>(rng() % 4)) * kGiB);
  auto& labels = *n.mutable_spec()->mutable_annotations()->mutable_labels();
  labels["zone"] = absl::StrCat("zone-", rng() % zones);
  labels["tier"] = rng() % 4 == 0 ? "db" : "app";
  n.set_role(i < 5 ? api::NODE_ROLE_MANAGER : api::NODE_ROLE_WORKER);
  const uint64_t roll = rng() % 100;
  n.mutable_status()->set_state(roll == 0 ? api::NodeStatus::NODE_STATE_DOWN
                                          : api::NodeStatus::NODE_STATE_READY);
  if (roll == 1) n.mutable_spec()->set_availability(api::NodeSpec::AVAILABILITY_DRAIN);
  return n;
}

api::Task MakeTask(int service, int slot, std::mt19937_64& rng_of_service) {
  api::Task t;
  t.mutable_meta()->set_id(absl::StrCat("svc", service, ".", slot));
  t.set_service_id(absl::StrCat("svc", service));
  t.set_slot(slot);
  t.mutable_spec_version()->set_index(1000 + service);
  t.set_desired_state(api::TASK_STATE_RUNNING);
  t.mutable_status()->set_state(api::TASK_STATE_PENDING);
  std::mt19937_64 rng = rng_of_service;  // the same spec for every task of the service
  auto* spec = t.mutable_spec();
  auto* r = spec->mutable_resources()->mutable_reservations();
  r->set_nano_cpus(static_cast<int64_t>(50'000'000 * (1 + rng() % 4)));
  r->set_memory_bytes(static_cast<int64_t>((64 << 20) * (1 + rng() % 4)));
  auto* pl = spec->mutable_placement();
  pl->add_constraints(rng() % 3 == 0 ? "node.labels.tier==db" : "node.labels.tier!=db");
  pl->add_constraints("node.role!=manager");
  if (rng() % 2 == 0) pl->add_constraints("node.platform.os==linux");
  pl->add_preferences()->mutable_spread()->set_spread_descriptor("node.labels.zone");
  if (rng() % 5 == 0) pl->set_max_replicas(2);
  return t;
}

int Main(int argc, char** argv) {
  CLI::App app{"Shoal scheduler benchmark"};
  int nodes = 5000;
  int tasks = 100000;
  int services = 100;
  int zones = 10;
  uint64_t seed = 1;
  app.add_option("--nodes", nodes, "nodes in the cluster")->check(CLI::PositiveNumber);
  app.add_option("--tasks", tasks, "tasks to schedule, spread over the services")
      ->check(CLI::PositiveNumber);
  app.add_option("--services", services, "services")->check(CLI::PositiveNumber);
  app.add_option("--zones", zones, "values of node.labels.zone")->check(CLI::PositiveNumber);
  app.add_option("--seed", seed, "seed of the cluster's and the services' randomness");
  CLI11_PARSE(app, argc, argv);

  std::mt19937_64 rng(seed);
  const long rss_start = PeakRssKiB();
  Scheduler s(RealClock());
  for (int i = 0; i < nodes; ++i) s.UpsertNode(MakeNode(i, rng, zones));

  // The tasks, made before the clock starts: the store holds them already.
  std::vector<api::Task> all;
  all.reserve(tasks);
  for (int svc = 0; svc < services; ++svc) {
    std::mt19937_64 rng_of_service(seed * 1000003 + svc);
    const int n = tasks / services + (svc < tasks % services ? 1 : 0);
    for (int slot = 1; slot <= n; ++slot) all.push_back(MakeTask(svc, slot, rng_of_service));
  }
  std::map<std::string, size_t> index;
  for (size_t i = 0; i < all.size(); ++i) index[all[i].meta().id()] = i;
  const long rss_made = PeakRssKiB();

  const absl::Time start = absl::Now();
  for (const api::Task& t : all) s.UpsertTask(t);
  const absl::Time fed = absl::Now();
  const std::vector<Scheduler::Decision> decisions = s.Schedule();
  const absl::Time scheduled = absl::Now();
  size_t assigned = 0;
  for (const Scheduler::Decision& d : decisions) {
    if (d.node_id.empty()) continue;
    api::Task& t = all[index.at(d.task_id)];
    t.set_node_id(d.node_id);
    t.mutable_status()->set_state(api::TASK_STATE_ASSIGNED);
    s.UpsertTask(t);
    ++assigned;
  }
  const absl::Time done = absl::Now();

  const double total_s = absl::ToDoubleSeconds(done - start);
  std::printf("nodes %d, services %d, tasks %d, zones %d, seed %llu\n", nodes, services, tasks,
              zones, static_cast<unsigned long long>(seed));
  std::printf("assigned %zu, pending %zu\n", assigned, s.pending());
  std::printf("hand in %.1f ms, schedule %.1f ms, hand back %.1f ms\n",
              absl::ToDoubleMilliseconds(fed - start),
              absl::ToDoubleMilliseconds(scheduled - fed),
              absl::ToDoubleMilliseconds(done - scheduled));
  std::printf("schedule alone: %.0f tasks/s\n",
              tasks / absl::ToDoubleSeconds(scheduled - fed));
  std::printf("end to end: %.0f tasks/s (goal 50000)\n", tasks / total_s);
  std::printf("peak memory: %.1f MiB in all; %.1f MiB for the cluster and the tasks' protos, "
              "%.1f MiB more while scheduling\n",
              PeakRssKiB() / 1024.0, (rss_made - rss_start) / 1024.0,
              (PeakRssKiB() - rss_made) / 1024.0);
  return 0;
}

}  // namespace
}  // namespace shoal::scheduler

int main(int argc, char** argv) { return shoal::scheduler::Main(argc, argv); }
