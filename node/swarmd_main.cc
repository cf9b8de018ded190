// swarmd: the node daemon. See daemon.h, and docs/getting-started.md for how to run it.
#include <execinfo.h>
#include <signal.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <iostream>

#include "absl/synchronization/mutex.h"
#include "common/log.h"
#include "node/daemon.h"

namespace {

// A crash leaves its stack in the log (journald keeps it), then ends as the signal would.
void OnFatalSignal(int sig) {
  const char head[] = "swarmd: fatal signal; stack:\n";
  (void)!write(2, head, sizeof head - 1);
  void* frames[64];
  const int n = backtrace(frames, 64);
  backtrace_symbols_fd(frames, n, 2);
  signal(sig, SIG_DFL);
  raise(sig);
}

}  // namespace

int main(int argc, char** argv) {
  for (int sig : {SIGSEGV, SIGBUS, SIGABRT, SIGILL, SIGFPE}) signal(sig, OnFatalSignal);
  shoal::node::Daemon::Options o;
  std::string log_level = "info";
  double tick_ms = 100;
  bool lock_order_checks = false;
  CLI::App app{"swarmd: a node of a Shoal cluster (manager and worker roles)"};
  app.add_option("--state-dir", o.state_dir, "Where the node keeps its state")
      ->capture_default_str();
  app.add_option("--listen-addr", o.listen_addr, "host:port the manager role listens on")
      ->capture_default_str();
  app.add_option("--advertise-addr", o.advertise_addr,
                 "host[:port] other nodes reach this one at (default: from --listen-addr, or "
                 "the only non-loopback address)");
  app.add_option("--hostname", o.hostname, "Node hostname (default: the machine's)");
  app.add_option("--executor", o.executor, "How tasks run: process or sim")
      ->capture_default_str();
  app.add_option("--control-socket", o.control_socket, "Local API socket (root only)")
      ->capture_default_str();
  app.add_option("--join-addr", o.join_addr, "Join the cluster of this manager at start");
  app.add_option("--join-token", o.join_token, "Token for --join-addr");
  app.add_option("--log-level", log_level, "debug, info, warn or error")->capture_default_str();
  app.add_option("--raft-tick-ms", tick_ms, "Raft tick in milliseconds (elections take 10)")
      ->capture_default_str();
  app.add_flag("--lock-order-checks", lock_order_checks,
               "Abort on a lock-order cycle, with the stacks that made it (Abseil's deadlock "
               "detection: for tests; it costs CPU on every lock)");
  CLI11_PARSE(app, argc, argv);
  // Abseil (as Debian builds it) records every lock acquisition's order unless told not to: a
  // few % of a busy process's CPU in perf profiles. The tests run swarmd with the checks on.
  absl::SetMutexDeadlockDetectionMode(lock_order_checks ? absl::OnDeadlockCycle::kAbort
                                                        : absl::OnDeadlockCycle::kIgnore);
  auto level = shoal::log::ParseLevel(log_level);
  if (!level.ok()) {
    std::cerr << "swarmd: --log-level: " << level.status().message() << "\n";
    return 2;
  }
  shoal::log::SetLevel(*level);
  if (!o.join_addr.empty() && o.join_token.empty()) {
    std::cerr << "swarmd: --join-addr needs --join-token\n";
    return 2;
  }
  o.tick_interval = absl::Milliseconds(tick_ms);

  // SIGTERM and SIGINT end the daemon cleanly: blocked in every thread, taken here.
  sigset_t stop;
  sigemptyset(&stop);
  sigaddset(&stop, SIGTERM);
  sigaddset(&stop, SIGINT);
  pthread_sigmask(SIG_BLOCK, &stop, nullptr);
  signal(SIGPIPE, SIG_IGN);

  auto daemon = shoal::node::Daemon::Create(o);
  if (!daemon.ok()) {
    std::cerr << "swarmd: " << daemon.status().message() << "\n";
    return 1;
  }
  if (absl::Status s = (*daemon)->Start(); !s.ok()) {
    std::cerr << "swarmd: " << s.message() << "\n";
    return 1;
  }
  int sig = 0;
  sigwait(&stop, &sig);
  shoal::log::Info("swarmd", "stopping", {{"signal", sig}});
  (*daemon)->Stop();
  return 0;
}
