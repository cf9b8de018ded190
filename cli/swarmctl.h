// swarmctl, the operator CLI, as a library: Run parses a command line and runs it, writing
// results to `out` and errors to `err` as one line "Error: ...". Exit codes: 0 success, 1 a
// failed operation (the manager's message as it wrote it), 2 a usage error (unknown flag, bad
// value). The binary (main.cc) is a thin wrapper; tests call Run in-process.
//
// Commands and flags follow Docker Swarm's (docs/cli.md). Control-API commands reach the
// managers of --host (mutual TLS, --tls-dir) or the local swarmd socket; init, join, leave and
// info reach the local swarmd socket only (connection.h).
//
//   std::ostringstream out, err;
//   int code = shoal::cli::Run({"--host", addr, "--tls-dir", dir, "service", "ls"}, out, err);
//
// Thread-safety: Run may be called from several threads at once (no global state, but it
// reads the environment: SWARMCTL_HOST, SWARMCTL_TLS_DIR, SWARMCTL_SOCKET).
#pragma once

#include <functional>
#include <istream>
#include <ostream>
#include <string>
#include <vector>

#include "absl/time/clock.h"
#include "absl/time/time.h"

namespace shoal::cli {

inline constexpr char kVersion[] = "0.1.0";

struct RunOptions {
  // `out` is a terminal: progress displays redraw in place (ANSI); otherwise they print plain
  // lines, one per change.
  bool tty = false;
  // Between two looks at a converging service.
  absl::Duration poll_interval = absl::Milliseconds(200);
  // The clock of "5 seconds ago".
  std::function<absl::Time()> now = [] { return absl::Now(); };
  // What `secret create NAME -` reads; null = std::cin.
  std::istream* in = nullptr;
};

int Run(int argc, char** argv, std::ostream& out, std::ostream& err,
        const RunOptions& options = RunOptions());
// `args` without the program name.
int Run(const std::vector<std::string>& args, std::ostream& out, std::ostream& err,
        const RunOptions& options = RunOptions());

}  // namespace shoal::cli
