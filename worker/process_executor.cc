#include "worker/process_executor.h"

#include <fcntl.h>
#include <grp.h>
#include <linux/magic.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <filesystem>
#include <utility>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "common/log.h"
#include "common/status.h"
#include "common/status_macros.h"
#include "worker/process_logs.h"
#include "worker/process_supervisor.h"

namespace shoal::worker {

using process_internal::ProcState;
using process_internal::StateOf;

namespace {

constexpr char kComponent[] = "worker";
constexpr char kDefaultPath[] = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
// Docker's exit code for a container whose end nobody saw.
constexpr int kLostCode = 255;
constexpr char kLost[] = "lost: the process is gone and left no exit status";

std::string Dirname(const std::string& path) {
  const size_t slash = path.find_last_of('/');
  if (slash == std::string::npos) return ".";
  if (slash == 0) return "/";
  return path.substr(0, slash);
}

bool AllDigits(absl::string_view s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
}

absl::StatusOr<std::string> ReadFile(const std::string& path) {
  const int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return absl::ErrnoToStatus(errno, absl::StrCat("reading ", path));
  std::string out;
  char buf[4096];
  for (;;) {
    const ssize_t n = read(fd, buf, sizeof(buf));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      const int err = errno;
      close(fd);
      return absl::ErrnoToStatus(err, absl::StrCat("reading ", path));
    }
    if (n == 0) break;
    out.append(buf, static_cast<size_t>(n));
  }
  close(fd);
  return out;
}

// For cgroup files: they exist already, and each write is one command.
absl::Status WriteFile(const std::string& path, absl::string_view data) {
  const int fd = open(path.c_str(), O_WRONLY | O_TRUNC | O_CLOEXEC);
  if (fd < 0) return absl::ErrnoToStatus(errno, absl::StrCat("writing ", path));
  const ssize_t n = write(fd, data.data(), data.size());
  const int err = errno;
  close(fd);
  if (n != static_cast<ssize_t>(data.size())) {
    return absl::ErrnoToStatus(n < 0 ? err : EIO, absl::StrCat("writing ", path));
  }
  return absl::OkStatus();
}

absl::Status MakeDir(const std::string& path, mode_t mode) {
  if (mkdir(path.c_str(), mode) == 0) return absl::OkStatus();
  const int err = errno;
  struct stat st;
  if (err == EEXIST && stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode)) {
    return absl::OkStatus();
  }
  return absl::ErrnoToStatus(err, absl::StrCat("making ", path));
}

bool IsCgroup2(const std::string& path) {
  struct statfs fs;
  return statfs(path.c_str(), &fs) == 0 && fs.f_type == CGROUP2_SUPER_MAGIC;
}

// "SIGINT", "INT", "sigint" or "2"; SIGTERM when empty.
absl::StatusOr<int> ParseSignal(absl::string_view text) {
  if (text.empty()) return SIGTERM;
  int number = 0;
  if (AllDigits(text)) {
    if (absl::SimpleAtoi(text, &number) && number >= 1 && number < NSIG) return number;
  } else {
    std::string name = absl::AsciiStrToUpper(text);
    if (!absl::StartsWith(name, "SIG")) name = absl::StrCat("SIG", name);
    for (int sig = 1; sig < 32; ++sig) {
      const char* known = process_internal::SignalName(sig);
      if (known != nullptr && name == known) return sig;
    }
  }
  return absl::InvalidArgumentError(absl::StrCat("unknown stop signal \"", text,
                                                 "\" (a name such as SIGINT or INT, or a number)"));
}

struct Account {
  uid_t uid = 0;
  gid_t gid = 0;
  std::string name;
  std::string home;
};

// getpwnam_r / getpwuid_r with a buffer that grows as needed. NOT_FOUND when there is none.
absl::StatusOr<Account> LookUpUser(const std::string* name, uid_t uid) {
  std::vector<char> buf(1024);
  for (;;) {
    struct passwd pw;
    struct passwd* found = nullptr;
    const int err = name != nullptr ? getpwnam_r(name->c_str(), &pw, buf.data(), buf.size(), &found)
                                    : getpwuid_r(uid, &pw, buf.data(), buf.size(), &found);
    if (err == ERANGE && buf.size() < (1u << 20)) {
      buf.resize(buf.size() * 2);
      continue;
    }
    if (err != 0) return absl::ErrnoToStatus(err, "reading the user database");
    if (found == nullptr) {
      return absl::NotFoundError(name != nullptr ? absl::StrCat("no user \"", *name, "\"")
                                                 : absl::StrCat("no user with uid ", uid));
    }
    return Account{pw.pw_uid, pw.pw_gid, pw.pw_name, pw.pw_dir};
  }
}

// A group name or number.
absl::StatusOr<gid_t> LookUpGroup(const std::string& group) {
  if (AllDigits(group)) {
    gid_t gid = 0;
    if (!absl::SimpleAtoi(group, &gid)) {
      return absl::InvalidArgumentError(absl::StrCat("bad group id \"", group, "\""));
    }
    return gid;
  }
  std::vector<char> buf(1024);
  for (;;) {
    struct group gr;
    struct group* found = nullptr;
    const int err = getgrnam_r(group.c_str(), &gr, buf.data(), buf.size(), &found);
    if (err == ERANGE && buf.size() < (1u << 20)) {
      buf.resize(buf.size() * 2);
      continue;
    }
    if (err != 0) return absl::ErrnoToStatus(err, "reading the group database");
    if (found == nullptr) return absl::NotFoundError(absl::StrCat("no group \"", group, "\""));
    return gr.gr_gid;
  }
}

// The groups /etc/group gives `name` besides `gid`.
std::vector<gid_t> GroupsOf(const std::string& name, gid_t gid) {
  int n = 32;
  std::vector<gid_t> groups(static_cast<size_t>(n));
  while (getgrouplist(name.c_str(), gid, groups.data(), &n) < 0) {
    groups.resize(static_cast<size_t>(n));
  }
  groups.resize(static_cast<size_t>(n));
  return groups;
}

struct Config {
  std::string tasks_dir;
  std::string cgroup_root;  // empty = no cgroups
  absl::Duration kill_timeout;
  absl::Duration poll_interval;
  uid_t euid;
};

}  // namespace

// One task's process; see process_executor.h.
class ProcessRunner : public TaskRunner {
 public:
  ProcessRunner(Config config, const api::Task& task, std::vector<std::string> argv,
                int stop_signal)
      : config_(std::move(config)),
        id_(task.meta().id()),
        task_dir_(absl::StrCat(config_.tasks_dir, "/", id_)),
        container_(task.spec().container()),
        argv_(std::move(argv)),
        stop_signal_(stop_signal),
        service_id_(task.service_id()),
        node_id_(task.node_id()) {
    const auto& limits = task.spec().resources().limits();
    memory_bytes_ = limits.memory_bytes();
    nano_cpus_ = limits.nano_cpus();
    pids_limit_ = task.spec().resources().pids_limit();
  }

  // Never kills: a restarting daemon re-adopts the task (process_executor.h).
  ~ProcessRunner() override = default;

  absl::Status Prepare() override;
  absl::Status Start() override;
  std::optional<Exit> Poll() override;
  absl::Status Stop(absl::Duration grace) override;
  absl::Status Remove() override;

  // Takes over the task that an earlier daemon started from its pid file.
  absl::Status Adopt();

 private:
  std::string TaskFile(absl::string_view name) const { return absl::StrCat(task_dir_, "/", name); }
  absl::Status Fail(const absl::Status& s) const { return Annotate(s, absl::StrCat("task ", id_)); }

  absl::Status ResolveUser(std::string& home);
  absl::Status MakeCgroup();
  std::vector<std::string> ExecPaths() const;
  absl::Status LoadPidFile();
  std::optional<Exit> ReadExitFile() const;
  // Whether the supervisor still runs; reaps it (if ours) once it ended.
  bool SupervisorRunning();
  // Until the task's end is known and its supervisor is gone, or `timeout` passed.
  bool WaitUntilEnded(absl::Duration timeout);
  // To the task's process group (and the task, should it have left it); never to a pid that a
  // different process now has.
  void SignalTask(int sig);
  void KillCgroup();
  absl::Status RemoveCgroup();

  const Config config_;
  const std::string id_;
  const std::string task_dir_;
  const api::ContainerSpec container_;
  const std::vector<std::string> argv_;
  const int stop_signal_;
  const std::string service_id_;
  const std::string node_id_;
  int64_t memory_bytes_ = 0;
  int64_t nano_cpus_ = 0;
  int64_t pids_limit_ = 0;

  // Prepare's results.
  bool prepared_ = false;
  std::vector<std::string> env_;
  std::string work_dir_;
  bool switch_user_ = false;
  uid_t uid_ = 0;
  gid_t gid_ = 0;
  std::vector<gid_t> groups_;
  std::string cgroup_dir_;  // empty = none
  bool limits_ = false;

  // Start's (or Adopt's) results.
  bool started_ = false;
  pid_t task_pid_ = 0;
  uint64_t task_start_ = 0;
  pid_t supervisor_pid_ = 0;
  uint64_t supervisor_start_ = 0;
  bool supervisor_gone_ = false;
  std::optional<Exit> exit_;
  bool removed_ = false;
};

absl::Status ProcessRunner::ResolveUser(std::string& home) {
  const uid_t euid = config_.euid;
  const gid_t egid = getegid();
  home = "/";
  if (auto self = LookUpUser(nullptr, geteuid()); self.ok()) home = self->home;
  if (container_.user().empty() && container_.groups_size() == 0) return absl::OkStatus();

  uid_t uid = euid;
  gid_t gid = egid;
  bool gid_given = false;
  std::vector<gid_t> groups;
  if (!container_.user().empty()) {
    const std::vector<std::string> parts =
        absl::StrSplit(container_.user(), absl::MaxSplits(':', 1));
    const std::string& user = parts[0];
    if (AllDigits(user)) {
      if (!absl::SimpleAtoi(user, &uid)) {
        return absl::InvalidArgumentError(absl::StrCat("bad user id \"", user, "\""));
      }
      // A uid without an account is allowed (as in Docker): group 0, home "/".
      gid = 0;
      home = "/";
      if (auto account = LookUpUser(nullptr, uid); account.ok()) {
        gid = account->gid;
        home = account->home;
        groups = GroupsOf(account->name, gid);
      }
    } else {
      ASSIGN_OR_RETURN(const Account account, LookUpUser(&user, 0));
      uid = account.uid;
      gid = account.gid;
      home = account.home;
      groups = GroupsOf(account.name, gid);
    }
    if (parts.size() > 1) {
      ASSIGN_OR_RETURN(gid, LookUpGroup(parts[1]));
      gid_given = true;
    }
  }
  for (const std::string& g : container_.groups()) {
    ASSIGN_OR_RETURN(const gid_t extra, LookUpGroup(g));
    groups.push_back(extra);
  }
  if (gid_given || groups.empty()) groups.insert(groups.begin(), gid);
  std::sort(groups.begin(), groups.end());
  groups.erase(std::unique(groups.begin(), groups.end()), groups.end());

  const bool same = uid == euid && (gid == egid || !gid_given) && container_.groups_size() == 0;
  if (same) return absl::OkStatus();
  if (euid != 0) {
    return absl::PermissionDeniedError(
        absl::StrCat("running as user \"", container_.user(), "\"",
                     container_.groups_size() > 0 ? " with extra groups" : "",
                     " needs a worker running as root (it runs as uid ", euid, ")"));
  }
  switch_user_ = true;
  uid_ = uid;
  gid_ = gid;
  groups_ = std::move(groups);
  return absl::OkStatus();
}

absl::Status ProcessRunner::MakeCgroup() {
  limits_ = memory_bytes_ > 0 || nano_cpus_ > 0 || pids_limit_ > 0;
  if (config_.cgroup_root.empty()) return absl::OkStatus();
  const std::string dir = absl::StrCat(config_.cgroup_root, "/", id_);
  if (absl::Status s = MakeDir(dir, 0755); !s.ok()) {
    if (limits_) return Annotate(s, "making the task's cgroup for its resource limits");
    log::Warning(kComponent, "no cgroup for the task; it runs without one",
                 {{"task", id_}, {"error", s}});
    return absl::OkStatus();
  }
  cgroup_dir_ = dir;
  absl::Status s;
  if (memory_bytes_ > 0) s.Update(WriteFile(dir + "/memory.max", absl::StrCat(memory_bytes_)));
  if (s.ok() && nano_cpus_ > 0) {
    // nano_cpus are 1e-9 cores; a period of 100ms (100000us) takes nano_cpus / 10^4 us of it.
    const int64_t quota = std::max<int64_t>(1000, nano_cpus_ / 10000);
    s.Update(WriteFile(dir + "/cpu.max", absl::StrCat(quota, " 100000")));
  }
  if (s.ok() && pids_limit_ > 0) s.Update(WriteFile(dir + "/pids.max", absl::StrCat(pids_limit_)));
  if (!s.ok()) {
    (void)RemoveCgroup();
    return Annotate(s, "setting the task's resource limits");
  }
  return absl::OkStatus();
}

absl::Status ProcessRunner::Prepare() {
  if (prepared_) return absl::OkStatus();
  if (absl::Status s = MakeDir(task_dir_, 0755); !s.ok()) return Fail(s);

  std::string home;
  if (absl::Status s = ResolveUser(home); !s.ok()) return Fail(s);

  if (!container_.dir().empty()) {
    struct stat st;
    if (stat(container_.dir().c_str(), &st) != 0) {
      return Fail(
          absl::ErrnoToStatus(errno, absl::StrCat("working directory \"", container_.dir(), "\"")));
    }
    if (!S_ISDIR(st.st_mode)) {
      return Fail(absl::FailedPreconditionError(
          absl::StrCat("working directory \"", container_.dir(), "\" is not a directory")));
    }
    work_dir_ = container_.dir();
  } else {
    // A directory of its own, so the task cannot overwrite its pid and exit files.
    work_dir_ = TaskFile("work");
    if (absl::Status s = MakeDir(work_dir_, 0755); !s.ok()) return Fail(s);
    if (switch_user_ && chown(work_dir_.c_str(), uid_, gid_) != 0) {
      return Fail(absl::ErrnoToStatus(errno, absl::StrCat("chown ", work_dir_)));
    }
  }

  // The base, then the spec's entries (a later KEY replaces an earlier one in place).
  env_.clear();
  auto set = [this](absl::string_view key, absl::string_view value) {
    const std::string prefix = absl::StrCat(key, "=");
    for (std::string& e : env_) {
      if (absl::StartsWith(e, prefix)) {
        e = absl::StrCat(prefix, value);
        return;
      }
    }
    env_.push_back(absl::StrCat(prefix, value));
  };
  set("PATH", kDefaultPath);
  set("HOME", home);
  set("SHOAL_TASK_ID", id_);
  if (!service_id_.empty()) set("SHOAL_SERVICE_ID", service_id_);
  if (!node_id_.empty()) set("SHOAL_NODE_ID", node_id_);
  for (const std::string& e : container_.env()) {
    const size_t eq = e.find('=');
    set(absl::string_view(e).substr(0, eq), absl::string_view(e).substr(eq + 1));
  }

  if (absl::Status s = MakeCgroup(); !s.ok()) return Fail(s);
  prepared_ = true;
  return absl::OkStatus();
}

std::vector<std::string> ProcessRunner::ExecPaths() const {
  const std::string& name = argv_[0];
  if (name.find('/') != std::string::npos) return {name};
  // The task's own PATH, as a container's.
  std::string path = kDefaultPath;
  for (const std::string& e : env_) {
    if (absl::StartsWith(e, "PATH=")) path = e.substr(5);
  }
  std::vector<std::string> out;
  for (absl::string_view dir : absl::StrSplit(path, ':')) {
    out.push_back(absl::StrCat(dir.empty() ? "." : dir, "/", name));
  }
  return out;
}

absl::Status ProcessRunner::Start() {
  if (!prepared_) return Fail(absl::FailedPreconditionError("not prepared"));
  if (started_) return Fail(absl::FailedPreconditionError("already started"));
  // Left by an earlier attempt, they would describe a different process.
  unlink(TaskFile("pid").c_str());
  unlink(TaskFile("exit").c_str());

  // The output and, per line, when it was written (process_executor.h).
  const std::string paths[4] = {TaskFile("stdout.log"), TaskFile("stderr.log"),
                                TaskFile("stdout.idx"), TaskFile("stderr.idx")};
  int fds[4] = {-1, -1, -1, -1};
  for (int i = 0; i < 4; ++i) {
    fds[i] = open(paths[i].c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
    if (fds[i] < 0) {
      const int e = errno;
      for (int j = 0; j < i; ++j) close(fds[j]);
      return Fail(absl::ErrnoToStatus(e, absl::StrCat("opening ", paths[i])));
    }
  }

  process_internal::LaunchSpec spec;
  spec.argv = argv_;
  spec.exec_paths = ExecPaths();
  spec.env = env_;
  spec.dir = work_dir_;
  if (!cgroup_dir_.empty()) spec.cgroup_procs = cgroup_dir_ + "/cgroup.procs";
  spec.cgroup_required = limits_;
  spec.switch_user = switch_user_;
  spec.uid = uid_;
  spec.gid = gid_;
  spec.groups = groups_;
  spec.pid_path = TaskFile("pid");
  spec.exit_path = TaskFile("exit");
  spec.stdout_fd = fds[0];
  spec.stderr_fd = fds[1];
  spec.stdout_index_fd = fds[2];
  spec.stderr_index_fd = fds[3];
  absl::StatusOr<pid_t> supervisor = process_internal::SpawnSupervised(spec);
  for (int fd : fds) close(fd);
  // The message alone (`exec "foo": No such file or directory`): the task's status says which.
  if (!supervisor.ok()) return supervisor.status();

  started_ = true;
  supervisor_pid_ = *supervisor;
  return LoadPidFile();
}

absl::Status ProcessRunner::LoadPidFile() {
  const std::string path = TaskFile("pid");
  absl::StatusOr<std::string> text = ReadFile(path);
  if (!text.ok()) return Fail(text.status());
  const std::vector<absl::string_view> f =
      absl::StrSplit(*text, absl::ByAnyChar(" \n"), absl::SkipEmpty());
  int64_t task_pid = 0;
  int64_t supervisor_pid = 0;
  if (f.size() != 4 || !absl::SimpleAtoi(f[0], &task_pid) ||
      !absl::SimpleAtoi(f[1], &task_start_) || !absl::SimpleAtoi(f[2], &supervisor_pid) ||
      !absl::SimpleAtoi(f[3], &supervisor_start_) || task_pid <= 0 || supervisor_pid <= 0 ||
      task_pid > INT_MAX || supervisor_pid > INT_MAX) {
    return Fail(absl::DataLossError(absl::StrCat("malformed pid file ", path)));
  }
  task_pid_ = static_cast<pid_t>(task_pid);
  supervisor_pid_ = static_cast<pid_t>(supervisor_pid);
  return absl::OkStatus();
}

absl::Status ProcessRunner::Adopt() {
  RETURN_IF_ERROR(LoadPidFile());
  prepared_ = true;
  started_ = true;
  work_dir_ = container_.dir().empty() ? TaskFile("work") : container_.dir();
  if (!config_.cgroup_root.empty()) {
    const std::string dir = absl::StrCat(config_.cgroup_root, "/", id_);
    struct stat st;
    if (stat(dir.c_str(), &st) == 0) cgroup_dir_ = dir;
  }
  return absl::OkStatus();
}

std::optional<Exit> ProcessRunner::ReadExitFile() const {
  absl::StatusOr<std::string> text = ReadFile(TaskFile("exit"));
  if (!text.ok()) return std::nullopt;  // not yet
  const std::vector<std::string> lines = absl::StrSplit(*text, absl::MaxSplits('\n', 1));
  Exit exit;
  if (!absl::SimpleAtoi(lines[0], &exit.code)) {
    return Exit{kLostCode, absl::StrCat("unreadable exit file: \"", absl::CEscape(*text), "\"")};
  }
  if (lines.size() > 1) exit.error = std::string(absl::StripTrailingAsciiWhitespace(lines[1]));
  return exit;
}

bool ProcessRunner::SupervisorRunning() {
  if (supervisor_gone_) return false;
  switch (StateOf(supervisor_pid_, supervisor_start_)) {
    case ProcState::kRunning:
      return true;
    case ProcState::kZombie:
      // Ours (the daemon that started it): reap it. Another parent's: ECHILD, harmless; its
      // pid cannot be reused while it is a zombie.
      waitpid(supervisor_pid_, nullptr, WNOHANG);
      break;
    case ProcState::kGone:
      break;
  }
  supervisor_gone_ = true;
  return false;
}

std::optional<Exit> ProcessRunner::Poll() {
  if (exit_.has_value()) return exit_;
  if (!started_) return std::nullopt;
  if ((exit_ = ReadExitFile())) {
    SupervisorRunning();  // reaps it if it already exited
    return exit_;
  }
  if (SupervisorRunning()) return std::nullopt;
  // It writes the file before it exits: look once more now that it has.
  if ((exit_ = ReadExitFile())) return exit_;
  // The supervisor is gone without a word (killed): while the task still runs, it runs.
  if (StateOf(task_pid_, task_start_) == ProcState::kRunning) return std::nullopt;
  exit_ = Exit{kLostCode, kLost};
  return exit_;
}

bool ProcessRunner::WaitUntilEnded(absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  for (;;) {
    if (Poll().has_value() && !SupervisorRunning()) return true;
    const absl::Duration left = deadline - absl::Now();
    if (left <= absl::ZeroDuration()) return false;
    // Sleep until the process that will end next does: the supervisor (it writes the exit
    // file), or an orphaned task. A pidfd becomes readable when its process ends.
    const bool supervisor = SupervisorRunning();
    const pid_t pid = supervisor ? supervisor_pid_ : task_pid_;
    const uint64_t start = supervisor ? supervisor_start_ : task_start_;
    const int fd = static_cast<int>(syscall(SYS_pidfd_open, pid, 0));
    if (fd < 0) {
      absl::SleepFor(std::min(left, config_.poll_interval));
      continue;
    }
    // Checked after opening: the pidfd now pins the process, so it cannot be another's.
    if (StateOf(pid, start) == ProcState::kRunning) {
      struct pollfd p = {fd, POLLIN, 0};
      const int64_t ms = std::min<int64_t>(absl::ToInt64Milliseconds(left) + 1, INT_MAX);
      poll(&p, 1, static_cast<int>(ms));
    }
    close(fd);
  }
}

void ProcessRunner::SignalTask(int sig) {
  if (!started_ || StateOf(task_pid_, task_start_) == ProcState::kGone) return;
  kill(-task_pid_, sig);
  if (getpgid(task_pid_) != task_pid_) kill(task_pid_, sig);
}

void ProcessRunner::KillCgroup() {
  // Catches what left the process group (kernel 5.14+; older kernels only have the group kill).
  if (!cgroup_dir_.empty()) (void)WriteFile(cgroup_dir_ + "/cgroup.kill", "1");
}

absl::Status ProcessRunner::RemoveCgroup() {
  if (cgroup_dir_.empty()) return absl::OkStatus();
  KillCgroup();
  // Killed processes leave the cgroup a moment after they die.
  const absl::Time deadline = absl::Now() + config_.kill_timeout;
  while (rmdir(cgroup_dir_.c_str()) != 0) {
    if (errno == ENOENT) break;
    if (errno != EBUSY || absl::Now() >= deadline) {
      return absl::ErrnoToStatus(errno, absl::StrCat("removing the cgroup ", cgroup_dir_));
    }
    absl::SleepFor(config_.poll_interval);
  }
  cgroup_dir_.clear();
  return absl::OkStatus();
}

absl::Status ProcessRunner::Stop(absl::Duration grace) {
  if (!started_ || WaitUntilEnded(absl::ZeroDuration())) return absl::OkStatus();
  SignalTask(stop_signal_);
  if (WaitUntilEnded(grace)) return absl::OkStatus();
  log::Info(kComponent, "task did not stop within its grace period; killing it",
            {{"task", id_}, {"grace", grace}});
  SignalTask(SIGKILL);
  KillCgroup();
  if (WaitUntilEnded(config_.kill_timeout)) return absl::OkStatus();
  return Fail(absl::DeadlineExceededError(absl::StrCat("still running ",
                                                       absl::FormatDuration(config_.kill_timeout),
                                                       " after SIGKILL (pid ", task_pid_, ")")));
}

absl::Status ProcessRunner::Remove() {
  if (removed_) return absl::OkStatus();
  if (started_ && !WaitUntilEnded(absl::ZeroDuration())) {
    SignalTask(SIGKILL);
    KillCgroup();
    if (!WaitUntilEnded(config_.kill_timeout)) {
      return Fail(absl::DeadlineExceededError(
          absl::StrCat("still running after SIGKILL (pid ", task_pid_, ")")));
    }
  }
  if (absl::Status s = RemoveCgroup(); !s.ok()) return Fail(s);
  // The logs stay (LogFiles); what described the process goes, so nothing adopts it again.
  for (const char* name : {"pid", "pid.tmp", "exit", "exit.tmp"}) unlink(TaskFile(name).c_str());
  if (work_dir_ == TaskFile("work")) rmdir(work_dir_.c_str());  // only if the task left it empty
  removed_ = true;
  return absl::OkStatus();
}

ProcessExecutor::ProcessExecutor(Options options, bool cgroups_enabled)
    : options_(std::move(options)), cgroups_enabled_(cgroups_enabled) {}

namespace {

// Enables cpu, memory and pids for the children of `dir` where its parent offers them.
void EnableControllers(const std::string& dir) {
  const absl::StatusOr<std::string> available = ReadFile(dir + "/cgroup.controllers");
  const absl::StatusOr<std::string> enabled = ReadFile(dir + "/cgroup.subtree_control");
  if (!available.ok() || !enabled.ok()) return;
  const std::vector<absl::string_view> have =
      absl::StrSplit(*available, ' ', absl::SkipWhitespace());
  const std::vector<absl::string_view> on = absl::StrSplit(*enabled, ' ', absl::SkipWhitespace());
  for (absl::string_view c : {"cpu", "memory", "pids"}) {
    auto has = [c](const std::vector<absl::string_view>& v) {
      return std::any_of(v.begin(), v.end(),
                         [c](absl::string_view x) { return absl::StripAsciiWhitespace(x) == c; });
    };
    if (!has(have) || has(on)) continue;
    if (absl::Status s = WriteFile(dir + "/cgroup.subtree_control", absl::StrCat("+", c));
        !s.ok()) {
      log::Warning(kComponent, "cannot enable a cgroup controller",
                   {{"controller", c}, {"cgroup", dir}, {"error", s}});
    }
  }
}

// Whether tasks get cgroups under `root`; says why not, once.
bool SetUpCgroups(const std::string& root) {
  if (root.empty()) {
    log::Info(kComponent, "cgroups disabled: tasks run without resource limits");
    return false;
  }
  const std::string parent = Dirname(root);
  std::string why;
  if (!IsCgroup2(parent)) {
    why = absl::StrCat(parent, " is not a cgroup2 mount");
  } else if (access(parent.c_str(), W_OK) != 0) {
    why = absl::StrCat(parent, " is not writable");
  } else if (absl::Status s = MakeDir(root, 0755); !s.ok()) {
    why = std::string(s.message());
  }
  if (!why.empty()) {
    log::Warning(kComponent, "cgroups v2 unavailable: tasks run without resource limits",
                 {{"cgroup_root", root}, {"reason", why}});
    return false;
  }
  // From the top of the hierarchy down to root, each level passes the controllers on.
  std::vector<std::string> chain = {root, parent};
  while (chain.back() != "/" && IsCgroup2(Dirname(chain.back()))) {
    chain.push_back(Dirname(chain.back()));
  }
  for (auto it = chain.rbegin(); it != chain.rend(); ++it) EnableControllers(*it);
  const absl::StatusOr<std::string> enabled = ReadFile(root + "/cgroup.subtree_control");
  log::Info(
      kComponent, "tasks run in cgroups v2",
      {{"cgroup_root", root},
       {"controllers", enabled.ok() ? std::string(absl::StripAsciiWhitespace(*enabled)) : ""}});
  return true;
}

absl::Status CheckTaskId(absl::string_view id) {
  if (id.empty() || id == "." || id == ".." || id.find('/') != absl::string_view::npos ||
      id.find('\0') != absl::string_view::npos) {
    return absl::InvalidArgumentError(
        absl::StrCat("task id \"", absl::CEscape(id), "\" cannot name a directory"));
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::unique_ptr<ProcessExecutor>> ProcessExecutor::Create(Options options) {
  if (options.state_dir.empty()) {
    return absl::InvalidArgumentError("the process executor needs a state directory");
  }
  std::error_code ec;
  const std::filesystem::path state = std::filesystem::absolute(options.state_dir, ec);
  if (ec) {
    return absl::InvalidArgumentError(
        absl::StrCat("state directory ", options.state_dir, ": ", ec.message()));
  }
  std::filesystem::create_directories(state / "tasks", ec);
  if (ec) {
    return absl::InternalError(
        absl::StrCat("making ", (state / "tasks").string(), ": ", ec.message()));
  }
  options.state_dir = state.lexically_normal().string();
  while (options.state_dir.size() > 1 && options.state_dir.back() == '/') {
    options.state_dir.pop_back();
  }
  const bool cgroups = SetUpCgroups(options.cgroup_root);
  return std::unique_ptr<ProcessExecutor>(new ProcessExecutor(std::move(options), cgroups));
}

absl::StatusOr<std::unique_ptr<ProcessRunner>> ProcessExecutor::MakeRunner(
    const api::Task& task) const {
  const std::string& id = task.meta().id();
  RETURN_IF_ERROR(CheckTaskId(id));
  auto fail = [&id](absl::string_view what) {
    return absl::InvalidArgumentError(absl::StrCat("task ", id, ": ", what));
  };
  if (!task.spec().has_container()) return fail("the process executor runs container specs only");
  const api::ContainerSpec& c = task.spec().container();

  std::vector<std::string> argv(c.command().begin(), c.command().end());
  argv.insert(argv.end(), c.args().begin(), c.args().end());
  if (argv.empty()) {
    return fail("the process executor needs a command (--entrypoint/command or args)");
  }
  for (const std::string& e : c.env()) {
    const size_t eq = e.find('=');
    if (eq == std::string::npos || eq == 0) {
      return fail(absl::StrCat("env entry \"", e, "\" is not KEY=value"));
    }
  }
  if (!c.dir().empty() && c.dir()[0] != '/') {
    return fail(absl::StrCat("working directory \"", c.dir(), "\" is not an absolute path"));
  }
  if (!c.user().empty() && absl::StartsWith(c.user(), ":")) {
    return fail(absl::StrCat("user \"", c.user(), "\" names no user (name|uid[:group|gid])"));
  }
  absl::StatusOr<int> stop_signal = ParseSignal(c.stop_signal());
  if (!stop_signal.ok()) return fail(stop_signal.status().message());

  Config config{absl::StrCat(options_.state_dir, "/tasks"),
                cgroups_enabled_ ? options_.cgroup_root : std::string(), options_.kill_timeout,
                options_.poll_interval, options_.effective_uid_for_test.value_or(geteuid())};
  return std::make_unique<ProcessRunner>(std::move(config), task, std::move(argv), *stop_signal);
}

absl::StatusOr<std::unique_ptr<TaskRunner>> ProcessExecutor::Runner(const api::Task& task) {
  ASSIGN_OR_RETURN(std::unique_ptr<ProcessRunner> runner, MakeRunner(task));
  return std::unique_ptr<TaskRunner>(std::move(runner));
}

absl::StatusOr<std::unique_ptr<TaskRunner>> ProcessExecutor::Adopt(const api::Task& task) {
  ASSIGN_OR_RETURN(std::unique_ptr<ProcessRunner> runner, MakeRunner(task));
  RETURN_IF_ERROR(runner->Adopt());
  return std::unique_ptr<TaskRunner>(std::move(runner));
}

absl::StatusOr<ProcessExecutor::LogFiles> ProcessExecutor::Logs(absl::string_view task_id) const {
  RETURN_IF_ERROR(CheckTaskId(task_id));
  const std::string dir = absl::StrCat(options_.state_dir, "/tasks/", task_id);
  return LogFiles{dir + "/stdout.log", dir + "/stderr.log"};
}

absl::StatusOr<std::unique_ptr<LogReader>> ProcessExecutor::OpenLogs(const std::string& task_id,
                                                                     const LogOptions& options) {
  RETURN_IF_ERROR(CheckTaskId(task_id));
  return process_internal::OpenTaskLogs(absl::StrCat(options_.state_dir, "/tasks/", task_id),
                                        options);
}

absl::Status ProcessExecutor::DeleteTaskFiles(absl::string_view task_id) {
  RETURN_IF_ERROR(CheckTaskId(task_id));
  const std::string dir = absl::StrCat(options_.state_dir, "/tasks/", task_id);
  std::error_code ec;
  std::filesystem::remove_all(dir, ec);
  if (ec) return absl::InternalError(absl::StrCat("deleting ", dir, ": ", ec.message()));
  return absl::OkStatus();
}

}  // namespace shoal::worker
