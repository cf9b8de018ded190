#include "integration/testing/swarmd_process.h"

#include <fcntl.h>
#include <netinet/in.h>
#include <sched.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include <grpcpp/grpcpp.h>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"

namespace shoal::integration {

int FreePort() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = 0;
  socklen_t len = sizeof a;
  int port = 0;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0 &&
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) == 0) {
    port = ntohs(a.sin_port);
  }
  ::close(fd);
  return port;
}

SwarmdProcess::SwarmdProcess(Options options) : options_(std::move(options)) {
  if (options_.port == 0) options_.port = options_.netns > 0 ? 4242 : FreePort();
  std::filesystem::create_directories(options_.dir);
  // A unix socket's path is at most 107 bytes, which a test's directory can exceed.
  char dir[] = "/tmp/swarmd-test-XXXXXX";
  if (::mkdtemp(dir) != nullptr) socket_dir_ = dir;
}

SwarmdProcess::~SwarmdProcess() {
  Kill();
  KillTasks();
  std::error_code ec;
  if (!socket_dir_.empty()) std::filesystem::remove_all(socket_dir_, ec);
}

std::string SwarmdProcess::addr() const { return absl::StrCat(options_.ip, ":", options_.port); }
std::string SwarmdProcess::socket() const { return socket_dir_ + "/swarmd.sock"; }
std::string SwarmdProcess::log_path() const { return options_.dir + "/swarmd.log"; }
std::string SwarmdProcess::state_dir() const { return options_.dir + "/state"; }

std::string SwarmdProcess::LogTail(size_t bytes) const {
  std::ifstream in(log_path());
  std::stringstream s;
  s << in.rdbuf();
  const std::string all = s.str();
  return all.size() <= bytes ? all : all.substr(all.size() - bytes);
}

absl::Status SwarmdProcess::Start() {
  if (pid_ > 0) return absl::OkStatus();
  std::vector<std::string> args = {
      "node/swarmd",
      "--state-dir=" + state_dir(),
      "--listen-addr=" + addr(),
      "--advertise-addr=" + addr(),
      "--hostname=" + options_.name,
      "--executor=" + options_.executor,
      "--control-socket=" + socket(),
      absl::StrCat("--raft-tick-ms=", options_.raft_tick_ms),
  };
  if (options_.lock_order_checks) args.push_back("--lock-order-checks");
  args.insert(args.end(), options_.extra_args.begin(), options_.extra_args.end());
  const int log = ::open(log_path().c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (log < 0) return absl::InternalError("cannot open " + log_path());
  int ns = -1;
  if (options_.netns > 0) {
    ns = ::open(absl::StrCat("/proc/", options_.netns, "/ns/net").c_str(), O_RDONLY | O_CLOEXEC);
    if (ns < 0) {
      ::close(log);
      return absl::InternalError(absl::StrCat("cannot open the network namespace of pid ",
                                              options_.netns));
    }
  }
  // Built before the fork: the child of a threaded process may not allocate.
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  const pid_t parent = ::getpid();
  const pid_t pid = ::fork();
  if (pid < 0) {
    ::close(log);
    if (ns >= 0) ::close(ns);
    return absl::InternalError("fork failed");
  }
  if (pid == 0) {
    if (ns >= 0 && ::setns(ns, CLONE_NEWNET) != 0) _exit(126);
    ::dup2(log, 1);
    ::dup2(log, 2);
    ::setpgid(0, 0);
    // A test or benchmark that crashes leaves no daemon behind (its own process group keeps
    // it from a terminal's ^C, so nothing else would end it).
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (::getppid() != parent) _exit(127);  // the parent died before prctl
    ::execv(argv[0], argv.data());
    _exit(127);
  }
  ::close(log);
  if (ns >= 0) ::close(ns);
  pid_ = pid;
  node_control_.reset();
  control_.reset();
  // Ready once the socket answers (bounded).
  const absl::Time deadline = absl::Now() + absl::Seconds(30);
  while (absl::Now() < deadline) {
    int status = 0;
    if (::waitpid(pid_, &status, WNOHANG) == pid_) {
      pid_ = -1;
      return absl::InternalError(absl::StrCat(options_.name, ": swarmd exited at start: ",
                                              LogTail()));
    }
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::milliseconds(200));
    api::InfoResponse info;
    if (node_control().Info(&ctx, api::InfoRequest(), &info).ok()) return absl::OkStatus();
    // A new channel for the next look: gRPC's reconnection back-off would otherwise make a
    // channel that found no socket wait seconds before it tries again.
    node_control_.reset();
    absl::SleepFor(absl::Milliseconds(20));  // until the daemon's socket exists
  }
  return absl::DeadlineExceededError(absl::StrCat(options_.name, ": no control socket"));
}

void SwarmdProcess::KillTasks() {
  std::error_code ec;
  const std::filesystem::path tasks = std::filesystem::path(state_dir()) / "tasks";
  for (const auto& entry : std::filesystem::directory_iterator(tasks, ec)) {
    std::ifstream in(entry.path() / "pid");
    long task = 0, start = 0, supervisor = 0;
    if (!(in >> task >> start >> supervisor)) continue;
    if (task > 1) ::kill(static_cast<pid_t>(-task), SIGKILL);  // the task's process group
    if (supervisor > 1) ::kill(static_cast<pid_t>(supervisor), SIGKILL);
  }
}

void SwarmdProcess::Kill() {
  if (pid_ <= 0) return;
  ::kill(pid_, SIGKILL);
  int status = 0;
  ::waitpid(pid_, &status, 0);
  pid_ = -1;
}

absl::Status SwarmdProcess::Stop(absl::Duration grace) {
  if (pid_ <= 0) return absl::OkStatus();
  ::kill(pid_, SIGTERM);
  int status = 0;
  if (grace == absl::InfiniteDuration()) {
    ::waitpid(pid_, &status, 0);
  } else {
    const absl::Time deadline = absl::Now() + grace;
    while (::waitpid(pid_, &status, WNOHANG) == 0) {
      if (absl::Now() >= deadline) {
        Kill();
        return absl::DeadlineExceededError(absl::StrCat(options_.name, ": swarmd still ran ",
                                                        absl::FormatDuration(grace),
                                                        " after SIGTERM: killed"));
      }
      absl::SleepFor(absl::Milliseconds(20));  // polling another process's exit
    }
  }
  pid_ = -1;
  if (WIFEXITED(status) && WEXITSTATUS(status) == 0) return absl::OkStatus();
  return absl::InternalError(absl::StrCat(options_.name, ": swarmd did not stop cleanly (status ",
                                          status, "): ", LogTail()));
}

api::NodeControl::Stub& SwarmdProcess::node_control() {
  if (node_control_ == nullptr) {
    node_control_ = api::NodeControl::NewStub(
        grpc::CreateChannel("unix:" + socket(), grpc::InsecureChannelCredentials()));
  }
  return *node_control_;
}

api::Control::Stub& SwarmdProcess::control() {
  if (control_ == nullptr) {
    control_ = api::Control::NewStub(
        grpc::CreateChannel("unix:" + socket(), grpc::InsecureChannelCredentials()));
  }
  return *control_;
}

}  // namespace shoal::integration
