// Properties of the scheduler over seeded random clusters and workloads. Each round hands the
// scheduler new tasks and changes, schedules, applies the decisions as the store loop would,
// and checks, against the test's own model of the cluster (not the scheduler's accounting):
//
//   - reservations are never over-committed on any node;
//   - no node runs more of a service's tasks than its max replicas per node;
//   - no two live tasks on a node hold the same host-mode port;
//   - every pending task has a reason;
//   - no task is left pending while some node could take it (the scheduler wastes no room);
//   - the same inputs give the same decisions;
//   - spread preferences leave the counts per label value within one task of even.
#include <functional>
#include <map>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/testing/manual_clock.h"
#include "gtest/gtest.h"
#include "scheduler/scheduler.h"

namespace shoal::scheduler {
namespace {

constexpr int64_t kMiB = int64_t{1} << 20;

// A constraint the test can evaluate on its own.
struct TestConstraint {
  const char* text;
  std::function<bool(const api::Node&)> holds;
};

std::string Label(const api::Node& n, const std::string& key) {
  const auto& labels = n.spec().annotations().labels();
  auto it = labels.find(key);
  return it == labels.end() ? "" : it->second;
}

const std::vector<TestConstraint>& Constraints() {
  static const auto* all = new std::vector<TestConstraint>{
      {"node.labels.zone!=d", [](const api::Node& n) { return Label(n, "zone") != "d"; }},
      {"node.labels.zone==a", [](const api::Node& n) { return Label(n, "zone") == "a"; }},
      {"node.hostname!=host-3",
       [](const api::Node& n) { return n.description().hostname() != "host-3"; }},
      {"node.role==worker", [](const api::Node& n) { return n.role() == api::NODE_ROLE_WORKER; }},
      {"node.labels.disk==ssd", [](const api::Node& n) { return Label(n, "disk") == "ssd"; }},
  };
  return *all;
}

struct ServiceModel {
  std::string id;
  uint64_t version = 1;
  int64_t cpus = 0;
  int64_t memory = 0;
  uint64_t max_replicas = 0;
  uint32_t host_port = 0;
  std::vector<int> constraints;  // indexes into Constraints()
  std::vector<std::string> spread;
  int next_slot = 1;
};

class World {
 public:
  explicit World(uint64_t seed) : rng_(seed), scheduler_(clock_) {}

  std::mt19937_64& rng() { return rng_; }
  Scheduler& scheduler() { return scheduler_; }
  std::map<std::string, api::Node>& nodes() { return nodes_; }
  std::map<std::string, api::Task>& tasks() { return tasks_; }
  std::map<std::string, ServiceModel>& services() { return services_; }

  int Uniform(int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng_); }
  bool Chance(int percent) { return Uniform(1, 100) <= percent; }

  void AddNode(bool always_eligible) {
    api::Node n;
    const int i = static_cast<int>(nodes_.size());
    n.mutable_meta()->set_id(absl::StrCat("n", 100 + i));
    n.mutable_description()->set_hostname(absl::StrCat("host-", i));
    n.mutable_description()->mutable_platform()->set_os("linux");
    n.mutable_description()->mutable_platform()->set_architecture("amd64");
    n.mutable_description()->mutable_resources()->set_nano_cpus(Uniform(1, 8) * 1'000'000'000LL);
    n.mutable_description()->mutable_resources()->set_memory_bytes(Uniform(1, 16) * 512 * kMiB);
    n.set_role(Chance(20) ? api::NODE_ROLE_MANAGER : api::NODE_ROLE_WORKER);
    auto& labels = *n.mutable_spec()->mutable_annotations()->mutable_labels();
    if (!Chance(10)) labels["zone"] = std::string(1, static_cast<char>('a' + Uniform(0, 3)));
    if (Chance(50)) labels["disk"] = "ssd";
    n.mutable_status()->set_state(api::NodeStatus::NODE_STATE_READY);
    if (!always_eligible) {
      const int roll = Uniform(1, 100);
      if (roll <= 8) n.mutable_status()->set_state(api::NodeStatus::NODE_STATE_DOWN);
      if (roll > 8 && roll <= 12) n.mutable_spec()->set_availability(api::NodeSpec::AVAILABILITY_DRAIN);
      if (roll > 12 && roll <= 15) n.mutable_spec()->set_availability(api::NodeSpec::AVAILABILITY_PAUSE);
    }
    nodes_[n.meta().id()] = n;
    scheduler_.UpsertNode(n);
  }

  // Flips a node between ready and down, or between active and drained.
  void ChangeANode() {
    if (nodes_.empty()) return;
    auto it = nodes_.begin();
    std::advance(it, Uniform(0, static_cast<int>(nodes_.size()) - 1));
    api::Node& n = it->second;
    if (Chance(50)) {
      n.mutable_status()->set_state(n.status().state() == api::NodeStatus::NODE_STATE_READY
                                        ? api::NodeStatus::NODE_STATE_DOWN
                                        : api::NodeStatus::NODE_STATE_READY);
    } else {
      n.mutable_spec()->set_availability(n.spec().availability() == api::NodeSpec::AVAILABILITY_ACTIVE
                                             ? api::NodeSpec::AVAILABILITY_DRAIN
                                             : api::NodeSpec::AVAILABILITY_ACTIVE);
    }
    scheduler_.UpsertNode(n);
  }

  ServiceModel& AddService(bool spread_only) {
    ServiceModel s;
    s.id = absl::StrCat("svc", services_.size());
    if (!spread_only) {
      if (Chance(70)) s.memory = Uniform(1, 8) * 128 * kMiB;
      if (Chance(50)) s.cpus = Uniform(1, 8) * 250'000'000LL;
      if (Chance(30)) s.max_replicas = static_cast<uint64_t>(Uniform(1, 3));
      if (Chance(20)) s.host_port = static_cast<uint32_t>(8000 + services_.size());
      for (int i = 0; i < static_cast<int>(Constraints().size()); ++i) {
        if (Chance(20)) s.constraints.push_back(i);
      }
    }
    if (spread_only || Chance(40)) s.spread.push_back("node.labels.zone");
    if (spread_only && Chance(50)) s.spread.push_back("node.labels.disk");
    return services_[s.id] = s;
  }

  api::Task NewTask(ServiceModel& s) {
    api::Task t;
    const int slot = s.next_slot++;
    t.mutable_meta()->set_id(absl::StrCat(s.id, ".", slot, ".", s.version));
    t.set_service_id(s.id);
    t.set_slot(static_cast<uint64_t>(slot));
    t.mutable_spec_version()->set_index(s.version);
    t.set_desired_state(api::TASK_STATE_RUNNING);
    t.mutable_status()->set_state(api::TASK_STATE_PENDING);
    auto* r = t.mutable_spec()->mutable_resources()->mutable_reservations();
    r->set_memory_bytes(s.memory);
    r->set_nano_cpus(s.cpus);
    auto* pl = t.mutable_spec()->mutable_placement();
    pl->set_max_replicas(s.max_replicas);
    for (int c : s.constraints) pl->add_constraints(Constraints()[c].text);
    for (const std::string& attr : s.spread) {
      pl->add_preferences()->mutable_spread()->set_spread_descriptor(attr);
    }
    if (s.host_port != 0) {
      auto* p = t.mutable_endpoint()->add_ports();
      p->set_publish_mode(api::PortConfig::PUBLISH_MODE_HOST);
      p->set_published_port(s.host_port);
      p->set_target_port(80);
    }
    return t;
  }

  void Hand(const api::Task& t) {
    tasks_[t.meta().id()] = t;
    scheduler_.UpsertTask(t);
  }

  // Schedules and applies the decisions; returns them as text, for the determinism check.
  std::string ScheduleAndApply() {
    std::string trace;
    for (const Scheduler::Decision& d : scheduler_.Schedule()) {
      api::Task& t = tasks_.at(d.task_id);
      absl::StrAppend(&trace, d.task_id, "->", d.node_id, ":", d.reason, "\n");
      if (d.node_id.empty()) {
        t.mutable_status()->set_err(d.reason);
      } else {
        t.set_node_id(d.node_id);
        t.mutable_status()->set_state(api::TASK_STATE_ASSIGNED);
        t.mutable_status()->clear_err();
      }
      scheduler_.UpsertTask(t);
    }
    return trace;
  }

  // Some assigned tasks start running, some fail (and their slot gets a new task), some are
  // removed (scale down).
  void Churn() {
    std::vector<std::string> ids;
    for (const auto& [id, t] : tasks_) ids.push_back(id);
    for (const std::string& id : ids) {
      api::Task& t = tasks_.at(id);
      const api::TaskState state = t.status().state();
      if (state == api::TASK_STATE_ASSIGNED && Chance(50)) {
        t.mutable_status()->set_state(api::TASK_STATE_RUNNING);
        scheduler_.UpsertTask(t);
      } else if (state == api::TASK_STATE_RUNNING && Chance(5)) {
        t.mutable_status()->set_state(api::TASK_STATE_FAILED);
        scheduler_.UpsertTask(t);
        ServiceModel& s = services_.at(t.service_id());
        Hand(NewTask(s));
      } else if (state <= api::TASK_STATE_RUNNING && Chance(3)) {
        scheduler_.RemoveTask(id);
        tasks_.erase(id);
      }
    }
  }

  bool Live(const api::Task& t) const {
    return !t.node_id().empty() && t.status().state() >= api::TASK_STATE_ASSIGNED &&
           t.status().state() <= api::TASK_STATE_RUNNING;
  }

  // Whether `t` could go on `n` by the test's own reckoning.
  bool Fits(const ServiceModel& s, const api::Node& n) const {
    if (n.status().state() != api::NodeStatus::NODE_STATE_READY ||
        n.spec().availability() != api::NodeSpec::AVAILABILITY_ACTIVE) {
      return false;
    }
    for (int c : s.constraints) {
      if (!Constraints()[c].holds(n)) return false;
    }
    int64_t cpus = 0, memory = 0;
    int64_t same = 0;
    bool port_taken = false;
    for (const auto& [id, t] : tasks_) {
      if (!Live(t) || t.node_id() != n.meta().id()) continue;
      cpus += t.spec().resources().reservations().nano_cpus();
      memory += t.spec().resources().reservations().memory_bytes();
      if (t.service_id() == s.id && t.desired_state() <= api::TASK_STATE_RUNNING) ++same;
      for (const auto& p : t.endpoint().ports()) {
        if (s.host_port != 0 && p.published_port() == s.host_port) port_taken = true;
      }
    }
    const auto& total = n.description().resources();
    if (s.memory > 0 && total.memory_bytes() - memory < s.memory) return false;
    if (s.cpus > 0 && total.nano_cpus() - cpus < s.cpus) return false;
    if (s.max_replicas > 0 && same >= static_cast<int64_t>(s.max_replicas)) return false;
    return !port_taken;
  }

  void CheckInvariants(const std::string& where) {
    std::map<std::string, int64_t> cpus, memory;
    std::map<std::pair<std::string, std::string>, uint64_t> per_node;  // node, service
    std::set<std::pair<std::string, uint32_t>> ports;
    for (const auto& [id, t] : tasks_) {
      if (!Live(t)) continue;
      cpus[t.node_id()] += t.spec().resources().reservations().nano_cpus();
      memory[t.node_id()] += t.spec().resources().reservations().memory_bytes();
      ++per_node[{t.node_id(), t.service_id()}];
      for (const auto& p : t.endpoint().ports()) {
        ASSERT_TRUE(ports.insert({t.node_id(), p.published_port()}).second)
            << where << ": port " << p.published_port() << " twice on " << t.node_id();
      }
    }
    for (const auto& [id, n] : nodes_) {
      ASSERT_LE(cpus[id], n.description().resources().nano_cpus()) << where << " cpu on " << id;
      ASSERT_LE(memory[id], n.description().resources().memory_bytes())
          << where << " memory on " << id;
    }
    for (const auto& [key, count] : per_node) {
      const ServiceModel& s = services_.at(key.second);
      if (s.max_replicas > 0) {
        ASSERT_LE(count, s.max_replicas) << where << ": " << key.second << " on " << key.first;
      }
    }
    size_t pending = 0;
    for (const auto& [id, t] : tasks_) {
      if (t.status().state() != api::TASK_STATE_PENDING) continue;
      ++pending;
      ASSERT_FALSE(t.status().err().empty()) << where << ": " << id << " pending without reason";
      const ServiceModel& s = services_.at(t.service_id());
      for (const auto& [node_id, n] : nodes_) {
        ASSERT_FALSE(Fits(s, n)) << where << ": " << id << " left pending (" << t.status().err()
                                 << ") though " << node_id << " fits it";
      }
    }
    ASSERT_EQ(pending, scheduler_.pending()) << where;
  }

 private:
  std::mt19937_64 rng_;
  ManualClock clock_;
  Scheduler scheduler_;
  std::map<std::string, api::Node> nodes_;
  std::map<std::string, api::Task> tasks_;
  std::map<std::string, ServiceModel> services_;
};

// One random history; returns every decision as text.
std::string RunHistory(uint64_t seed) {
  World w(seed);
  const int nodes = w.Uniform(0, 30);
  for (int i = 0; i < nodes; ++i) w.AddNode(false);
  std::string trace;
  const int rounds = w.Uniform(1, 8);
  for (int round = 0; round < rounds; ++round) {
    const int new_services = w.Uniform(0, 3);
    for (int i = 0; i < new_services; ++i) {
      ServiceModel& s = w.AddService(false);
      const int replicas = w.Uniform(1, 25);
      for (int r = 0; r < replicas; ++r) w.Hand(w.NewTask(s));
    }
    // Scale up an existing service.
    if (!w.services().empty() && w.Chance(50)) {
      auto it = w.services().begin();
      std::advance(it, w.Uniform(0, static_cast<int>(w.services().size()) - 1));
      const int more = w.Uniform(1, 10);
      for (int r = 0; r < more; ++r) w.Hand(w.NewTask(it->second));
    }
    if (w.Chance(30)) w.ChangeANode();
    if (w.Chance(20)) w.AddNode(false);
    trace += w.ScheduleAndApply();
    const std::string where = absl::StrCat("seed ", seed, " round ", round);
    w.CheckInvariants(where);
    if (::testing::Test::HasFatalFailure()) return trace;
    w.Churn();
  }
  // After churn, a last schedule must also leave nothing that fits pending.
  trace += w.ScheduleAndApply();
  w.CheckInvariants(absl::StrCat("seed ", seed, " final"));
  return trace;
}

TEST(SchedulerPropertyTest, NeverOvercommitsNeverExceedsMaxPerNodeAndExplainsEveryPending) {
  for (uint64_t seed = 1; seed <= 300; ++seed) {
    RunHistory(seed);
    if (HasFatalFailure()) return;
  }
}

TEST(SchedulerPropertyTest, TheSameInputsGiveTheSameDecisions) {
  for (uint64_t seed = 1000; seed < 1030; ++seed) {
    const std::string first = RunHistory(seed);
    ASSERT_EQ(first, RunHistory(seed)) << "seed " << seed;
  }
}

TEST(SchedulerPropertyTest, SpreadStaysWithinOneTaskOfEvenOverLabelValues) {
  for (uint64_t seed = 1; seed <= 300; ++seed) {
    World w(seed);
    const int nodes = w.Uniform(1, 25);
    for (int i = 0; i < nodes; ++i) w.AddNode(true);
    ServiceModel& s = w.AddService(/*spread_only=*/true);
    const int batches = w.Uniform(1, 5);
    for (int b = 0; b < batches; ++b) {
      const int n = w.Uniform(1, 30);
      for (int i = 0; i < n; ++i) w.Hand(w.NewTask(s));
      w.ScheduleAndApply();
      ASSERT_EQ(w.scheduler().pending(), 0u) << "seed " << seed;
      // Count per value of each level: the first attribute over all nodes, the second within
      // each value of the first.
      std::map<std::string, int> outer;
      std::map<std::string, std::map<std::string, int>> inner;
      std::map<std::string, std::set<std::string>> inner_values;
      for (const auto& [id, n] : w.nodes()) {
        outer[Label(n, "zone")] += 0;
        inner[Label(n, "zone")][Label(n, "disk")] += 0;
      }
      for (const auto& [id, t] : w.tasks()) {
        const api::Node& n = w.nodes().at(t.node_id());
        ++outer[Label(n, "zone")];
        ++inner[Label(n, "zone")][Label(n, "disk")];
      }
      auto spread_of = [](const std::map<std::string, int>& m) {
        int lo = 1 << 30, hi = 0;
        for (const auto& [v, c] : m) {
          lo = std::min(lo, c);
          hi = std::max(hi, c);
        }
        return hi - lo;
      };
      ASSERT_LE(spread_of(outer), 1) << "seed " << seed << " batch " << b;
      if (s.spread.size() == 2) {
        for (const auto& [zone, m] : inner) {
          ASSERT_LE(spread_of(m), 1) << "seed " << seed << " batch " << b << " zone " << zone;
        }
      }
    }
  }
}

}  // namespace
}  // namespace shoal::scheduler
