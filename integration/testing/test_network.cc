#include "integration/testing/test_network.h"

#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"

namespace shoal::integration {
namespace {

std::string Resolve(const std::string& program) {
  if (program.find('/') != std::string::npos) return program;
  for (const char* dir : {"/usr/sbin", "/sbin", "/usr/bin", "/bin"}) {
    std::string p = absl::StrCat(dir, "/", program);
    if (::access(p.c_str(), X_OK) == 0) return p;
  }
  return program;
}

// Closes every descriptor from 3 up in a child after fork, so that it holds none of the test's
// sockets open (a held listening socket would outlive the process that made it).
void CloseInherited() { ::syscall(SYS_close_range, 3u, ~0u, 0u); }

// A child process alone in a new network namespace, waiting to be killed. Between fork and
// exit the child calls async-signal-safe functions only (the test has other threads).
absl::StatusOr<pid_t> StartHolder() {
  int ready[2];
  if (::pipe2(ready, O_CLOEXEC) != 0) return absl::InternalError("pipe2 failed");
  const pid_t parent = ::getpid();
  const pid_t pid = ::fork();
  if (pid < 0) {
    ::close(ready[0]);
    ::close(ready[1]);
    return absl::InternalError("fork failed");
  }
  if (pid == 0) {
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);  // the test dies: so does the namespace
    if (::getppid() != parent) ::_exit(1);
    int err = ::unshare(CLONE_NEWNET) == 0 ? 0 : errno;
    (void)!::write(ready[1], &err, sizeof err);
    if (err != 0) ::_exit(1);
    CloseInherited();
    for (;;) ::pause();
  }
  ::close(ready[1]);
  int err = -1;
  const ssize_t n = ::read(ready[0], &err, sizeof err);
  ::close(ready[0]);
  if (n != sizeof err || err != 0) {
    ::kill(pid, SIGKILL);
    ::waitpid(pid, nullptr, 0);
    return absl::PermissionDeniedError(absl::StrCat(
        "cannot make a network namespace (unshare(CLONE_NEWNET): ",
        n == sizeof err ? std::strerror(err) : "no answer", "): these tests need root"));
  }
  return pid;
}

void Reap(pid_t pid) {
  if (pid <= 0) return;
  ::kill(pid, SIGKILL);
  ::waitpid(pid, nullptr, 0);
}

}  // namespace

CommandResult RunCommand(const std::vector<std::string>& argv, pid_t netns_pid,
                         absl::Duration timeout) {
  CommandResult r;
  if (argv.empty()) return r;
  std::vector<std::string> args = argv;
  args[0] = Resolve(args[0]);
  std::vector<char*> cargv;
  for (auto& a : args) cargv.push_back(a.data());
  cargv.push_back(nullptr);
  int ns = -1;
  if (netns_pid > 0) {
    ns = ::open(absl::StrCat("/proc/", netns_pid, "/ns/net").c_str(), O_RDONLY | O_CLOEXEC);
    if (ns < 0) {
      r.err = absl::StrCat("cannot open the network namespace of pid ", netns_pid);
      return r;
    }
  }
  int out[2], err[2];
  if (::pipe2(out, O_CLOEXEC) != 0 || ::pipe2(err, O_CLOEXEC) != 0) {
    if (ns >= 0) ::close(ns);
    r.err = "pipe2 failed";
    return r;
  }
  const int devnull = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
  const pid_t pid = ::fork();
  if (pid == 0) {
    ::setpgid(0, 0);
    if (ns >= 0 && ::setns(ns, CLONE_NEWNET) != 0) ::_exit(126);
    ::dup2(devnull, 0);
    ::dup2(out[1], 1);
    ::dup2(err[1], 2);
    CloseInherited();
    ::execv(cargv[0], cargv.data());
    ::_exit(127);
  }
  if (ns >= 0) ::close(ns);
  if (devnull >= 0) ::close(devnull);
  ::close(out[1]);
  ::close(err[1]);
  if (pid < 0) {
    ::close(out[0]);
    ::close(err[0]);
    r.err = "fork failed";
    return r;
  }
  const absl::Time deadline = absl::Now() + timeout;
  pollfd fds[2] = {{out[0], POLLIN, 0}, {err[0], POLLIN, 0}};
  std::string* sinks[2] = {&r.out, &r.err};
  int open = 2;
  bool killed = false;
  while (open > 0) {
    const int64_t ms = absl::ToInt64Milliseconds(deadline - absl::Now());
    if (ms <= 0) {
      ::kill(-pid, SIGKILL);
      killed = true;
      break;
    }
    if (::poll(fds, 2, static_cast<int>(std::min<int64_t>(ms, 1000))) < 0 && errno != EINTR) break;
    for (int i = 0; i < 2; ++i) {
      if (fds[i].fd < 0 || fds[i].revents == 0) continue;
      char buf[4096];
      const ssize_t n = ::read(fds[i].fd, buf, sizeof buf);
      if (n > 0) {
        sinks[i]->append(buf, static_cast<size_t>(n));
      } else if (n == 0 || errno != EINTR) {
        ::close(fds[i].fd);
        fds[i].fd = -1;
        --open;
      }
    }
  }
  for (auto& f : fds) {
    if (f.fd >= 0) ::close(f.fd);
  }
  int status = 0;
  ::waitpid(pid, &status, 0);
  if (!killed && WIFEXITED(status)) r.exit_code = WEXITSTATUS(status);
  if (killed) absl::StrAppend(&r.err, "\n(killed: still running after ", absl::FormatDuration(timeout), ")");
  return r;
}

absl::Status TestNetwork::Ip(pid_t netns_pid, const std::vector<std::string>& args) {
  std::vector<std::string> argv = {"ip"};
  argv.insert(argv.end(), args.begin(), args.end());
  CommandResult r = RunCommand(argv, netns_pid, absl::Seconds(20));
  if (r.exit_code == 0) return absl::OkStatus();
  return absl::InternalError(absl::StrCat("`", absl::StrJoin(argv, " "), "` failed (exit ",
                                          r.exit_code, "): ", r.err, r.out));
}

absl::StatusOr<std::unique_ptr<TestNetwork>> TestNetwork::Create() {
  if (::access(Resolve("ip").c_str(), X_OK) != 0) {
    return absl::FailedPreconditionError("iproute2's `ip` is not installed (apt-get install iproute2)");
  }
  auto hub = StartHolder();
  if (!hub.ok()) return hub.status();
  std::unique_ptr<TestNetwork> n(new TestNetwork());
  n->hub_ = *hub;
  for (const auto& args : std::vector<std::vector<std::string>>{
           {"link", "set", "lo", "up"},
           {"link", "add", "br0", "type", "bridge"},
           {"link", "set", "br0", "up"},
           // The hub has an address too: a command run there reaches every host.
           {"addr", "add", "10.99.0.1/24", "dev", "br0"},
       }) {
    if (absl::Status s = Ip(n->hub_, args); !s.ok()) return s;
  }
  return n;
}

TestNetwork::~TestNetwork() {
  for (auto& [name, h] : hosts_) Reap(h.holder);
  Reap(hub_);
}

absl::Status TestNetwork::AddHost(const std::string& name) {
  if (hosts_.count(name) != 0) return absl::AlreadyExistsError(absl::StrCat("host ", name));
  if (name.empty() || name.size() > 11) {
    return absl::InvalidArgumentError(absl::StrCat("host name \"", name, "\": 1 to 11 characters"));
  }
  if (hosts_.size() >= 200) return absl::ResourceExhaustedError("at most 200 hosts");
  auto holder = StartHolder();
  if (!holder.ok()) return holder.status();
  Host h;
  h.holder = *holder;
  h.ip = absl::StrCat("10.99.0.", 11 + hosts_.size());
  hosts_[name] = h;
  const std::string veth = "v" + name;  // the hub's end; the host's end is its eth0
  if (absl::Status s = Ip(hub_, {"link", "add", veth, "type", "veth", "peer", "name", "eth0",
                                 "netns", absl::StrCat(h.holder)});
      !s.ok()) {
    return s;
  }
  if (absl::Status s = Ip(hub_, {"link", "set", veth, "master", "br0", "up"}); !s.ok()) return s;
  for (const auto& args : std::vector<std::vector<std::string>>{
           {"link", "set", "lo", "up"},
           {"addr", "add", h.ip + "/24", "dev", "eth0"},
           {"link", "set", "eth0", "up"},
       }) {
    if (absl::Status s = Ip(h.holder, args); !s.ok()) return s;
  }
  return absl::OkStatus();
}

absl::Status TestNetwork::SetLink(const std::string& name, bool up) {
  auto it = hosts_.find(name);
  if (it == hosts_.end()) return absl::NotFoundError(absl::StrCat("host ", name));
  return Ip(it->second.holder, {"link", "set", "eth0", up ? "up" : "down"});
}

pid_t TestNetwork::holder(const std::string& name) const {
  auto it = hosts_.find(name);
  return it == hosts_.end() ? -1 : it->second.holder;
}

std::string TestNetwork::ip(const std::string& name) const {
  auto it = hosts_.find(name);
  return it == hosts_.end() ? std::string() : it->second.ip;
}

}  // namespace shoal::integration
