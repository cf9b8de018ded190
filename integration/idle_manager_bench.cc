// An idle manager's cost: one real swarmd manager and --workers (default 1,000) sim workers on
// one machine, doing nothing but heartbeats. Reports the manager process's RSS, CPU and threads.
//
//   bazel run -c opt //integration:idle_manager_bench -- --workers 1000
//   bazel run -c opt //integration:idle_manager_bench -- --workers 1000 --window 30 --heartbeat 5
//   bazel run -c opt //integration:idle_manager_bench -- --workers 1000 --restart
//
// What runs where:
//   - The manager is the swarmd binary (//node:swarmd, from the runfiles) in a process of its
//     own, on loopback, with swarmd's default Raft tick (100 ms) and the sim executor, `init`ed
//     through its control socket with the heartbeat period --heartbeat (default 5 s, Docker's).
//     It is a worker too, as in Docker: the cluster has --workers + 1 nodes.
//   - The workers are worker::Agent instances with a shared SimExecutor in this process. Each
//     joined through the real path a `swarmctl join` takes (pki::JoinCluster with the worker
//     token: its own key, CSR and certificate from the manager's NodeCA), has its own TLS
//     directory and its own mutual-TLS channel (pki::ClientCredentials and
//     pki::CreateManagerChannel, as node::Daemon::StartRoles builds them), so the manager serves
//     one TCP connection, one session and one assignments stream per worker. What the agents
//     leave out of a real swarmd: the task database (tasks are held in memory; there are none)
//     and the certificate renewer's thread; neither costs the manager anything at idle.
//   - This process pays for the workers' threads: an agent holds 4 (loop, session, heartbeats,
//     session messages) and its credentials one more (gRPC's certificate file watcher), about
//     5 per worker. The manager's figures are read from /proc/<its pid>, so they do not include
//     them; on a small machine the two compete for the cores, but CPU time is counted per
//     process.
//
// Measured: after every node is READY (ListNodes through the control socket) and --settle
// seconds more (default 120: the manager's RSS still grows for about 90 s after the last node
// is READY, then stays within a MiB), over --window seconds during which nothing calls the
// manager but the agents' heartbeats: VmRSS and Threads from /proc/PID/status (sampled each
// second), and utime + stime from /proc/PID/stat (the delta over the window, as % of one core).
// Also the RSS before any worker joined. The swarmd process is stopped by its pid (SIGTERM,
// SIGKILL after 10 s) and the temporary directory removed at the end, or on SIGINT/SIGTERM.
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "CLI/CLI.hpp"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "common/log.h"
#include "integration/testing/swarmd_process.h"
#include "pki/node_ca_client.h"
#include "pki/tls_credentials.h"
#include "pki/tls_files.h"
#include "worker/agent.h"
#include "worker/sim_executor.h"

namespace shoal::integration {
namespace {

// Set on SIGINT or SIGTERM: every wait ends, and the cleanup runs.
absl::Notification* g_stop = nullptr;

// Waits for `d` unless the run is being stopped; false when it is.
bool Pause(absl::Duration d) { return !g_stop->WaitForNotificationWithTimeout(d); }

struct ProcSample {
  double rss_mib = 0;
  long threads = 0;
  uint64_t cpu_ticks = 0;  // utime + stime, in clock ticks
};

// `pid`'s VmRSS, thread count and CPU time, from /proc.
absl::StatusOr<ProcSample> SampleProc(pid_t pid) {
  ProcSample out;
  const std::string dir = absl::StrCat("/proc/", pid);
  std::ifstream status(dir + "/status");
  if (!status) return absl::NotFoundError(absl::StrCat("no ", dir, "/status: did it exit?"));
  bool rss = false;
  bool threads = false;
  for (std::string line; std::getline(status, line);) {
    std::istringstream in(line);
    std::string key;
    in >> key;
    if (key == "VmRSS:") {
      long kib = 0;
      rss = static_cast<bool>(in >> kib);
      out.rss_mib = kib / 1024.0;
    } else if (key == "Threads:") {
      threads = static_cast<bool>(in >> out.threads);
    }
  }
  std::ifstream stat_file(dir + "/stat");
  std::string stat((std::istreambuf_iterator<char>(stat_file)), std::istreambuf_iterator<char>());
  // The command name (field 2) may hold spaces: the fields that follow start after its ')'.
  const size_t close = stat.rfind(')');
  if (!rss || !threads || close == std::string::npos) {
    return absl::InternalError(absl::StrCat("cannot read ", dir, "/status and stat"));
  }
  std::istringstream rest(stat.substr(close + 1));
  std::vector<std::string> fields;
  for (std::string f; rest >> f;) fields.push_back(f);
  // fields[0] is field 3 (state); utime and stime are fields 14 and 15.
  if (fields.size() < 13) return absl::InternalError(absl::StrCat(dir, "/stat is too short"));
  out.cpu_ticks = std::stoull(fields[11]) + std::stoull(fields[12]);
  return out;
}

grpc::ClientContext* WithDeadline(grpc::ClientContext* ctx, absl::Duration d) {
  ctx->set_deadline(absl::ToChronoTime(absl::Now() + d));
  return ctx;
}

// The READY nodes the manager lists, or the call's error.
absl::StatusOr<int> ReadyNodes(SwarmdProcess& manager) {
  grpc::ClientContext ctx;
  api::ListNodesResponse resp;
  const grpc::Status s = manager.control().ListNodes(WithDeadline(&ctx, absl::Seconds(20)),
                                                     api::ListNodesRequest(), &resp);
  if (!s.ok()) return absl::UnavailableError(absl::StrCat("ListNodes: ", s.error_message()));
  int ready = 0;
  for (const api::Node& n : resp.nodes()) {
    ready += n.status().state() == api::NodeStatus::NODE_STATE_READY;
  }
  return ready;
}

api::NodeDescription Describe(const std::string& hostname) {
  api::NodeDescription d;
  d.set_executor(api::NodeDescription::EXECUTOR_KIND_SIM);
  d.set_hostname(hostname);
  d.mutable_platform()->set_os("linux");
  d.mutable_platform()->set_architecture("x86_64");
  d.mutable_resources()->set_nano_cpus(int64_t{4} * 1'000'000'000);
  d.mutable_resources()->set_memory_bytes(int64_t{8} << 30);
  d.set_version("idle-manager-bench");
  return d;
}

struct SimWorker {
  std::string node_id;
  std::unique_ptr<worker::Agent> agent;
};

// Joins one node with `token` through `manager_addr` (a few tries: a manager busy with other
// joins may let one time out), writes its TLS directory under `dir` and starts its agent.
absl::StatusOr<SimWorker> JoinAndStart(const std::string& manager_addr, const std::string& token,
                                       const std::string& dir, const std::string& hostname,
                                       worker::Executor* executor) {
  absl::StatusOr<pki::JoinResult> joined = absl::UnavailableError("not tried");
  for (int attempt = 0; attempt < 3 && !g_stop->HasBeenNotified(); ++attempt) {
    joined = pki::JoinCluster(manager_addr, token, api::NodeSpec::AVAILABILITY_ACTIVE,
                              absl::Seconds(60));
    if (joined.ok() ||
        !(absl::IsUnavailable(joined.status()) || absl::IsDeadlineExceeded(joined.status()))) {
      break;
    }
  }
  if (!joined.ok()) return joined.status();
  const std::string tls = dir + "/tls";
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);  // WriteTlsDir makes only the last level
  if (absl::Status s = pki::WriteTlsDir(tls, joined->bundle); !s.ok()) return s;

  worker::Agent::Options ao;
  ao.node_id = joined->node_id;
  ao.managers = {manager_addr};
  auto creds = pki::ClientCredentials(tls, joined->cluster_id);
  ao.channel = [creds](const std::string& addr) { return pki::CreateManagerChannel(addr, creds); };
  ao.executor = executor;
  ao.description = Describe(hostname);
  ao.seed = std::hash<std::string>()(joined->node_id);
  auto agent = worker::Agent::Create(std::move(ao));
  if (!agent.ok()) return agent.status();
  (*agent)->Start();
  return SimWorker{joined->node_id, *std::move(agent)};
}

struct Flags;
int RestartStorm(const Flags& f, SwarmdProcess& manager, const std::vector<SimWorker>& workers);

struct Flags {
  int workers = 1000;
  double window_s = 30;
  double settle_s = 120;
  double heartbeat_s = 5;
  int join_threads = 4;
  int raft_tick_ms = 100;
  double ready_timeout_s = 600;
  std::string log_level = "info";
  bool keep = false;
  bool restart = false;
};

int Run(const Flags& f, const std::string& base) {
  SwarmdProcess::Options mo;
  mo.name = "manager";
  mo.dir = base + "/manager";
  mo.executor = "sim";
  mo.raft_tick_ms = f.raft_tick_ms;
  mo.lock_order_checks = false;  // as in production
  mo.extra_args = {absl::StrCat("--log-level=", f.log_level)};
  SwarmdProcess manager(mo);
  if (absl::Status s = manager.Start(); !s.ok()) {
    std::fprintf(stderr, "starting swarmd: %s\n", std::string(s.message()).c_str());
    return 1;
  }
  std::fprintf(stderr, "swarmd pid %d on %s, log %s\n", manager.pid(), manager.addr().c_str(),
               manager.log_path().c_str());

  api::InitRequest init;
  const int64_t hb_ns = static_cast<int64_t>(f.heartbeat_s * 1e9);
  auto* period = init.mutable_spec()->mutable_dispatcher()->mutable_heartbeat_period();
  period->set_seconds(hb_ns / 1'000'000'000);
  period->set_nanos(static_cast<int32_t>(hb_ns % 1'000'000'000));
  api::InitResponse inited;
  {
    grpc::ClientContext ctx;
    const grpc::Status s =
        manager.node_control().Init(WithDeadline(&ctx, absl::Seconds(60)), init, &inited);
    if (!s.ok()) {
      std::fprintf(stderr, "init: %s\n%s\n", s.error_message().c_str(), manager.LogTail().c_str());
      return 1;
    }
  }
  // The manager alone (its own worker's session included), before any other node joined.
  absl::StatusOr<int> ready = 0;
  const absl::Time alone_deadline = absl::Now() + absl::Seconds(60);
  while ((ready = ReadyNodes(manager)).value_or(0) < 1 && absl::Now() < alone_deadline &&
         Pause(absl::Milliseconds(200))) {
  }
  if (!Pause(absl::Seconds(2))) return 1;
  absl::StatusOr<ProcSample> before = SampleProc(manager.pid());
  if (!before.ok()) {
    std::fprintf(stderr, "%s\n", std::string(before.status().message()).c_str());
    return 1;
  }
  std::fprintf(stderr, "manager alone: RSS %.1f MiB, %ld threads\n", before->rss_mib,
               before->threads);

  // The joins, --join-threads at a time; each agent starts as soon as its node joined, as a
  // swarmd would.
  worker::SimExecutor executor;
  std::vector<SimWorker> workers(f.workers);
  std::atomic<int> next{0};
  std::atomic<int> done{0};
  absl::Mutex error_mu;
  std::string first_error;
  const absl::Time join_start = absl::Now();
  std::vector<std::thread> joiners;
  for (int t = 0; t < std::min(f.join_threads, f.workers); ++t) {
    joiners.emplace_back([&] {
      while (!g_stop->HasBeenNotified()) {
        const int i = next++;
        if (i >= f.workers) return;
        {
          absl::MutexLock lock(&error_mu);
          if (!first_error.empty()) return;
        }
        const std::string name = absl::StrFormat("sim-%04d", i);
        auto w = JoinAndStart(manager.addr(), inited.join_tokens().worker(),
                              absl::StrCat(base, "/workers/", name), name, &executor);
        if (!w.ok()) {
          absl::MutexLock lock(&error_mu);
          if (first_error.empty()) first_error = absl::StrCat(name, ": ", w.status().ToString());
          return;
        }
        workers[i] = *std::move(w);
        const int n = ++done;
        if (n % 100 == 0 || n == f.workers) {
          std::fprintf(stderr, "joined %d/%d (%.0f s)\n", n, f.workers,
                       absl::ToDoubleSeconds(absl::Now() - join_start));
        }
      }
    });
  }
  for (std::thread& t : joiners) t.join();
  const absl::Duration join_time = absl::Now() - join_start;
  int rc = 0;
  auto stop_workers = [&] {
    // Stopping an agent joins its threads: in parallel, or 1,000 of them take a while.
    std::vector<std::thread> stoppers;
    for (int t = 0; t < 8; ++t) {
      stoppers.emplace_back([&, t] {
        for (size_t i = t; i < workers.size(); i += 8) {
          if (workers[i].agent != nullptr) workers[i].agent->Stop();
        }
      });
    }
    for (std::thread& t : stoppers) t.join();
    workers.clear();
  };
  auto finish = [&](int code) {
    stop_workers();
    if (absl::Status s = manager.Stop(absl::Seconds(10)); !s.ok()) {
      std::fprintf(stderr, "stopping swarmd: %s\n", std::string(s.message()).c_str());
    }
    return code;
  };
  if (!first_error.empty()) {
    std::fprintf(stderr, "a join failed: %s\n", first_error.c_str());
    return finish(1);
  }
  if (g_stop->HasBeenNotified()) return finish(1);

  const int want = f.workers + 1;
  const absl::Time ready_deadline = absl::Now() + absl::Seconds(f.ready_timeout_s);
  absl::Time last_note = absl::Now();
  while (true) {
    ready = ReadyNodes(manager);
    if (ready.ok() && *ready == want) break;
    if (absl::Now() > ready_deadline) {
      std::fprintf(stderr, "only %s of %d nodes READY after %.0f s\n",
                   ready.ok() ? absl::StrCat(*ready).c_str() : ready.status().ToString().c_str(),
                   want, f.ready_timeout_s);
      return finish(1);
    }
    if (absl::Now() - last_note > absl::Seconds(10)) {
      std::fprintf(stderr, "%d of %d nodes READY\n", ready.value_or(-1), want);
      last_note = absl::Now();
    }
    if (!Pause(absl::Seconds(1))) return finish(1);
  }
  const absl::Duration ready_time = absl::Now() - join_start;
  std::fprintf(
      stderr, "%d nodes READY %.0f s after the first join (joins took %.0f s); settling %.0f s\n",
      want, absl::ToDoubleSeconds(ready_time), absl::ToDoubleSeconds(join_time), f.settle_s);
  if (!Pause(absl::Seconds(f.settle_s))) return finish(1);

  // The window: nothing but heartbeats reaches the manager.
  int sessions_before = 0;
  for (const SimWorker& w : workers) sessions_before += w.agent->sessions();
  const int64_t clk_tck = sysconf(_SC_CLK_TCK);
  absl::StatusOr<ProcSample> start = SampleProc(manager.pid());
  absl::StatusOr<ProcSample> self_start = SampleProc(getpid());
  const absl::Time t0 = absl::Now();
  double rss_min = start.ok() ? start->rss_mib : 0, rss_max = rss_min;
  long threads_max = start.ok() ? start->threads : 0;
  while (start.ok() && absl::Now() - t0 < absl::Seconds(f.window_s)) {
    if (!Pause(std::min(absl::Seconds(1), absl::Seconds(f.window_s) - (absl::Now() - t0)))) {
      return finish(1);
    }
    absl::StatusOr<ProcSample> s = SampleProc(manager.pid());
    if (!s.ok()) {
      start = s.status();
      break;
    }
    rss_min = std::min(rss_min, s->rss_mib);
    rss_max = std::max(rss_max, s->rss_mib);
    threads_max = std::max(threads_max, s->threads);
  }
  absl::StatusOr<ProcSample> end = SampleProc(manager.pid());
  absl::StatusOr<ProcSample> self_end = SampleProc(getpid());
  const double wall_s = absl::ToDoubleSeconds(absl::Now() - t0);
  if (!start.ok() || !end.ok() || !self_start.ok() || !self_end.ok()) {
    std::fprintf(stderr, "reading /proc: %s\n%s\n",
                 (!start.ok() ? start.status() : end.status()).ToString().c_str(),
                 manager.LogTail().c_str());
    return finish(1);
  }
  const double cpu_pct = 100.0 * (end->cpu_ticks - start->cpu_ticks) / clk_tck / wall_s;
  const double self_cpu_pct =
      100.0 * (self_end->cpu_ticks - self_start->cpu_ticks) / clk_tck / wall_s;

  // Whether the window was what it claims: every node still READY, no session reopened.
  ready = ReadyNodes(manager);
  int sessions_after = 0, disconnected = 0;
  for (const SimWorker& w : workers) {
    sessions_after += w.agent->sessions();
    disconnected += !w.agent->connected();
  }

  std::printf(
      "idle manager with %d sim workers: RSS %.1f MiB (min %.1f, max %.1f in the window; before "
      "joins %.1f MiB), CPU %.2f%% of one core over %.0f s, %ld threads (before joins %ld), "
      "heartbeat period %gs\n",
      f.workers, end->rss_mib, rss_min, rss_max, before->rss_mib, cpu_pct, wall_s, end->threads,
      before->threads, f.heartbeat_s);
  std::printf(
      "  checks: %s/%d nodes READY after the window, %d sessions reopened in the window, %d "
      "agents without a session; joins took %.0f s (%d threads), all READY after %.0f s\n",
      ready.ok() ? absl::StrCat(*ready).c_str() : "?", want, sessions_after - sessions_before,
      disconnected, absl::ToDoubleSeconds(join_time), f.join_threads,
      absl::ToDoubleSeconds(ready_time));
  std::printf(
      "  the workers' process (not the manager's): %ld threads, RSS %.1f MiB, CPU %.1f%% of one "
      "core\n",
      self_end->threads, self_end->rss_mib, self_cpu_pct);
  std::fflush(stdout);
  if (!ready.ok() || *ready != want || sessions_after != sessions_before) rc = 1;
  if (f.restart && rc == 0) rc = RestartStorm(f, manager, workers);
  return finish(rc);
}

// --restart: the manager restarted (SIGTERM, then swarmd again on the same state directory)
// under its idle workers, which all open a session again at once (each after its back-off,
// 50 ms doubling up to 5 s, jittered): how long until every worker has a session, what the
// storm costs the manager, and whether any node was taken for Down (all READY 3 heartbeat
// periods later, and no session reopened after the storm).
int RestartStorm(const Flags& f, SwarmdProcess& manager, const std::vector<SimWorker>& workers) {
  std::vector<int> before;
  for (const SimWorker& w : workers) before.push_back(w.agent->sessions());
  const absl::Time stop_at = absl::Now();
  if (absl::Status s = manager.Stop(absl::Seconds(30)); !s.ok()) {
    std::fprintf(stderr, "stopping swarmd: %s\n", std::string(s.message()).c_str());
    return 1;
  }
  // When each worker was first seen with a new session: polled every 50 ms from another
  // thread, as Start blocks until the control socket answers.
  std::vector<absl::Duration> back(workers.size(), absl::InfiniteDuration());
  absl::Notification all_back;
  const absl::Time start_at = absl::Now();
  std::thread poll([&] {
    const absl::Time deadline = start_at + absl::Seconds(f.ready_timeout_s);
    while (!g_stop->HasBeenNotified() && absl::Now() < deadline) {
      size_t n = 0;
      const absl::Duration now = absl::Now() - start_at;
      for (size_t i = 0; i < workers.size(); ++i) {
        if (back[i] == absl::InfiniteDuration() && workers[i].agent->sessions() > before[i] &&
            workers[i].agent->connected()) {
          back[i] = now;
        }
        n += back[i] != absl::InfiniteDuration();
      }
      if (n == workers.size()) {
        all_back.Notify();
        return;
      }
      absl::SleepFor(absl::Milliseconds(50));  // sampling, not synchronisation
    }
  });
  absl::Status started = manager.Start();
  // Start returns once the control socket answers a call within 200 ms: during the storm that
  // is a measure of how busy the manager is.
  const absl::Duration socket_after = absl::Now() - start_at;
  double rss_max = 0;
  while (started.ok() && !all_back.HasBeenNotified() && !g_stop->HasBeenNotified() &&
         absl::Now() - start_at < absl::Seconds(f.ready_timeout_s)) {
    if (auto s = SampleProc(manager.pid()); s.ok()) rss_max = std::max(rss_max, s->rss_mib);
    all_back.WaitForNotificationWithTimeout(absl::Milliseconds(100));
  }
  poll.join();
  if (!started.ok()) {
    std::fprintf(stderr, "restarting swarmd: %s\n%s\n", std::string(started.message()).c_str(),
                 manager.LogTail().c_str());
    return 1;
  }
  if (!all_back.HasBeenNotified()) {
    const auto n = std::count_if(back.begin(), back.end(),
                                 [](absl::Duration d) { return d != absl::InfiniteDuration(); });
    std::fprintf(stderr, "only %ld of %d workers had a session again after %.0f s\n",
                 static_cast<long>(n), f.workers, f.ready_timeout_s);
    return 1;
  }
  if (auto s = SampleProc(manager.pid()); s.ok()) rss_max = std::max(rss_max, s->rss_mib);
  const absl::Duration back_after = *std::max_element(back.begin(), back.end());
  // The new process's CPU time is all since its start.
  absl::StatusOr<ProcSample> cpu_end = SampleProc(manager.pid());
  const double cpu_s = cpu_end.ok() ? 1.0 * cpu_end->cpu_ticks / sysconf(_SC_CLK_TCK) : 0;
  std::sort(back.begin(), back.end());
  auto pct = [&](double p) {
    return absl::ToDoubleSeconds(back[std::min(back.size() - 1, size_t(p * back.size()))]);
  };
  int sessions_storm = 0;
  for (const SimWorker& w : workers) sessions_storm += w.agent->sessions();
  // None taken for Down: the dispatcher's grace is 3 periods.
  if (!Pause(absl::Seconds(3 * f.heartbeat_s + 2))) return 1;
  absl::StatusOr<int> ready = ReadyNodes(manager);
  int sessions_later = 0;
  for (const SimWorker& w : workers) sessions_later += w.agent->sessions();
  std::printf(
      "manager restart under %d idle workers: stopped in %.1f s; after its start, its socket "
      "answered within 200 ms at %.1f s, and the workers had a session again at %.1f s (half), "
      "%.1f s (90%%), %.1f s (all); the manager used %.1f s of CPU until then, RSS up to %.1f "
      "MiB\n",
      f.workers, absl::ToDoubleSeconds(start_at - stop_at), absl::ToDoubleSeconds(socket_after),
      pct(0.5), pct(0.9), absl::ToDoubleSeconds(back_after), cpu_s, rss_max);
  std::printf("  checks: %s/%d nodes READY %.0f s later, %d sessions reopened after the storm\n",
              ready.ok() ? absl::StrCat(*ready).c_str() : "?", f.workers + 1,
              3 * f.heartbeat_s + 2, sessions_later - sessions_storm);
  std::fflush(stdout);
  return ready.ok() && *ready == f.workers + 1 && sessions_later == sessions_storm ? 0 : 1;
}

int Main(int argc, char** argv) {
  CLI::App app{"Shoal benchmark: an idle manager's RSS and CPU with many sim workers"};
  Flags f;
  app.add_option("--workers", f.workers, "sim workers that join")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  app.add_option("--window", f.window_s, "seconds over which CPU and RSS are measured")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  app.add_option("--settle", f.settle_s, "seconds to wait after every node is READY")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  app.add_option("--heartbeat", f.heartbeat_s, "the cluster's heartbeat period in seconds")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  app.add_option("--join-threads", f.join_threads, "joins in parallel")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  app.add_option("--raft-tick-ms", f.raft_tick_ms, "the manager's Raft tick")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  app.add_option("--ready-timeout", f.ready_timeout_s,
                 "seconds after the joins for every node to be READY")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  app.add_option("--log-level", f.log_level, "the manager's --log-level")->capture_default_str();
  app.add_flag("--keep", f.keep, "keep the temporary directory (the manager's log)");
  app.add_flag("--restart", f.restart,
               "then restart the manager under the idle workers and time their reconnection");
  CLI11_PARSE(app, argc, argv);
  // The agents' process competes with the manager for the cores: without Abseil's lock-order
  // graph (a few % of its CPU), as swarmd runs.
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
  // A line per agent's session would bury the result; the agents' warnings still show.
  log::SetLevel(log::Level::kWarning);

  // SIGINT and SIGTERM end the run through its cleanup: blocked in every thread (the agents'
  // included, which start later), taken by one.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGINT);
  sigaddset(&stop_signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);
  signal(SIGPIPE, SIG_IGN);
  // Static: the detached thread may outlive Main.
  static absl::Notification stop;
  g_stop = &stop;
  std::thread([stop_signals] {
    int sig = 0;
    sigwait(&stop_signals, &sig);
    std::fprintf(stderr, "signal %d: stopping\n", sig);
    stop.Notify();
  }).detach();

  char tmpl[] = "/tmp/shoal-idle-bench-XXXXXX";
  if (::mkdtemp(tmpl) == nullptr) {
    std::perror("mkdtemp");
    return 1;
  }
  const std::string base = tmpl;
  const int rc = Run(f, base);
  if (f.keep) {
    std::fprintf(stderr, "kept %s\n", base.c_str());
  } else {
    std::error_code ec;
    std::filesystem::remove_all(base, ec);
  }
  return rc;
}

}  // namespace
}  // namespace shoal::integration

int main(int argc, char** argv) { return shoal::integration::Main(argc, argv); }
