// A real swarmd binary run by a test: its own state directory, control socket and loopback
// port, its output in a log file under the test's directory. Start, SIGKILL (a machine that
// dies), SIGTERM (a clean stop), and clients of its control socket. The daemon gets SIGKILL
// when the thread that started it ends (PR_SET_PDEATHSIG): start it from the thread that owns
// it (a test's thread, a benchmark's main), so that a crash leaves no daemon behind.
//
// Thread-safety: from the test thread.
#pragma once

#include <sys/types.h>

#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "proto/control.grpc.pb.h"
#include "proto/node_control.grpc.pb.h"

namespace shoal::integration {

// A loopback port nobody listens on now (the kernel's choice).
int FreePort();

class SwarmdProcess {
 public:
  struct Options {
    std::string name;  // also the node's hostname
    std::string dir;   // state dir, socket and log go under it
    // The network namespace to run in, held by this pid (see TestNetwork), and the node's
    // address there; 0: the test's own namespace, on 127.0.0.1.
    pid_t netns = 0;
    std::string ip = "127.0.0.1";
    int port = 0;      // 0: 4242 in a namespace of its own, else FreePort()
    std::string executor = "sim";
    // Fast elections on loopback for tests (10 ticks of 20 ms); a benchmark of an idle
    // manager wants swarmd's own default (100 ms), as a tick is work done at idle.
    int raft_tick_ms = 20;
    // swarmd --lock-order-checks (abort on a lock-order cycle): on in tests, off in a benchmark
    // (it costs CPU, and production runs without).
    bool lock_order_checks = true;
    std::vector<std::string> extra_args;
  };
  explicit SwarmdProcess(Options options);
  ~SwarmdProcess();

  // Starts the binary and waits (bounded) until its control socket answers.
  absl::Status Start();
  void Kill();       // SIGKILL, reaped (its tasks go on, as after a crash)
  // Kills what the process executor started for it, by the pids in its task directories
  // (the destructor does, after Kill).
  void KillTasks();
  // SIGTERM, reaped; an error if it did not exit 0. One still running after `grace` is
  // SIGKILLed and reaped (DEADLINE_EXCEEDED).
  absl::Status Stop(absl::Duration grace = absl::InfiniteDuration());
  bool running() const { return pid_ > 0; }
  pid_t pid() const { return pid_; }

  const std::string& name() const { return options_.name; }
  std::string addr() const;  // "<ip>:<port>"
  std::string socket() const;
  std::string log_path() const;
  std::string state_dir() const;
  // The tail of its log, for failure messages.
  std::string LogTail(size_t bytes = 3000) const;

  api::NodeControl::Stub& node_control();
  api::Control::Stub& control();

 private:
  Options options_;
  pid_t pid_ = -1;
  std::string socket_dir_;
  std::unique_ptr<api::NodeControl::Stub> node_control_;
  std::unique_ptr<api::Control::Stub> control_;
};

}  // namespace shoal::integration
