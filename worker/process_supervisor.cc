#include "worker/process_supervisor.h"

#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace shoal::worker::process_internal {
namespace {

// ---- Async-signal-safe helpers: used between fork and exec ----

// A fixed buffer that text is appended to; too long = truncated (never the case here).
struct Buf {
  char data[512];
  size_t len = 0;

  void Add(const char* s) {
    while (*s != '\0' && len < sizeof(data) - 1) data[len++] = *s++;
    data[len] = '\0';
  }
  void AddNumber(uint64_t v) {
    char digits[24];
    size_t n = 0;
    do {
      digits[n++] = static_cast<char>('0' + v % 10);
      v /= 10;
    } while (v != 0);
    while (n > 0 && len < sizeof(data) - 1) data[len++] = digits[--n];
    data[len] = '\0';
  }
};

bool WriteAll(int fd, const char* p, size_t n) {
  while (n > 0) {
    const ssize_t w = write(fd, p, n);
    if (w < 0) {
      if (errno == EINTR) continue;
      return false;
    }
    p += w;
    n -= static_cast<size_t>(w);
  }
  return true;
}

// Writes `path` through "<path>.tmp" and a rename, so a reader sees all of it or nothing.
bool WriteAtomically(const std::string& path, const Buf& content) {
  Buf tmp;
  tmp.Add(path.c_str());
  tmp.Add(".tmp");
  const int fd = open(tmp.data, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return false;
  const bool ok = WriteAll(fd, content.data, content.len);
  if (close(fd) != 0 || !ok) return false;
  return rename(tmp.data, path.c_str()) == 0;
}

// Where the start failed; the daemon turns it into a message.
enum Stage : int32_t {
  kStageFork = 1,
  kStagePidFile,
  kStageCgroup,
  kStageStdio,
  kStageGroups,
  kStageSetgid,
  kStageSetuid,
  kStageChdir,
  kStageExec,
};

struct Report {
  int32_t stage;
  int32_t error;
};

void SendReport(int fd, Stage stage, int error) {
  const Report r{stage, error};
  WriteAll(fd, reinterpret_cast<const char*>(&r), sizeof(r));
}

// What a child needs, as C arrays made before fork.
struct Prepared {
  const LaunchSpec* spec;
  std::vector<char*> argv;
  std::vector<char*> envp;
  int stdin_fd;
  int report_fd;
  int max_fd;
  // The output pipes (read end, write end) when the supervisor copies the output; -1 otherwise.
  int out_pipe[2] = {-1, -1};
  int err_pipe[2] = {-1, -1};
  bool capture() const { return out_pipe[0] >= 0; }
};

// Marks every descriptor from 3 up close-on-exec (the report pipe already is).
void CloseOnExecFrom3(int max_fd) {
  if (close_range(3, ~0U, CLOSE_RANGE_CLOEXEC) == 0) return;
  for (int fd = 3; fd < max_fd; ++fd) {
    const int flags = fcntl(fd, F_GETFD);
    if (flags >= 0) fcntl(fd, F_SETFD, flags | FD_CLOEXEC);
  }
}

// Closes every descriptor from 3 up but the `n` in `keep`.
void CloseFrom3Except(int* keep, int n, int max_fd) {
  // Insertion sort: n is tiny, and nothing here may allocate.
  for (int i = 1; i < n; ++i) {
    for (int j = i; j > 0 && keep[j - 1] > keep[j]; --j) {
      const int t = keep[j];
      keep[j] = keep[j - 1];
      keep[j - 1] = t;
    }
  }
  int from = 3;
  for (int i = 0; i <= n; ++i) {
    const int upto = i < n ? keep[i] - 1 : -1;  // -1: to the end
    if (i < n && keep[i] < from) continue;
    if (upto == -1 || upto >= from) {
      if (close_range(static_cast<unsigned>(from), upto == -1 ? ~0U : static_cast<unsigned>(upto),
                      0) != 0) {
        const int last = upto == -1 ? max_fd - 1 : upto;
        for (int fd = from; fd <= last; ++fd) close(fd);
      }
    }
    if (i < n) from = keep[i] + 1;
  }
}

// ---- Copying the task's output (the supervisor, after fork: no allocation) ----

int64_t NowNanos(clockid_t clock) {
  struct timespec ts;
  clock_gettime(clock, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1000000000 + ts.tv_nsec;
}

// Lines longer than this are indexed in pieces of this size, so that a reader sees them before
// their newline comes (as Docker splits log lines at 16 KiB).
constexpr uint64_t kMaxLine = 16 * 1024;

// One output stream: the pipe it is read from, the log and index files it is copied to.
struct Copier {
  int in = -1;
  int log = -1;
  int index = -1;
  uint64_t offset = 0;      // the log file's size
  uint64_t line_start = 0;  // where the line not indexed yet starts
  char records[256 * kIndexRecordSize];
  size_t records_len = 0;

  void Record(uint64_t end, int64_t now) {
    EncodeIndexRecord(end, now, records + records_len);
    records_len += kIndexRecordSize;
    line_start = end;
    if (records_len == sizeof(records)) FlushRecords();
  }
  void FlushRecords() {
    if (records_len > 0) WriteAll(index, records, records_len);
    records_len = 0;
  }
  // Copies what the pipe holds now; false at its end (or on an error), when the rest is indexed.
  bool CopyOnce(char* buf, size_t size) {
    const ssize_t n = read(in, buf, size);
    if (n < 0 && (errno == EINTR || errno == EAGAIN)) return true;
    const int64_t now = NowNanos(CLOCK_REALTIME);
    if (n <= 0) {
      if (offset > line_start) Record(offset, now);
      FlushRecords();
      return false;
    }
    if (!WriteAll(log, buf, static_cast<size_t>(n))) {
      // Disk full or the like: index from wherever the file ends now.
      const off_t end = lseek(log, 0, SEEK_END);
      if (end >= 0) offset = line_start = static_cast<uint64_t>(end);
      return true;
    }
    for (ssize_t i = 0; i < n; ++i) {
      const uint64_t at = offset + static_cast<uint64_t>(i);
      if (buf[i] == '\n') {
        Record(at + 1, now);
      } else if (at + 1 - line_start >= kMaxLine) {
        Record(at + 1, now);
      }
    }
    offset += static_cast<uint64_t>(n);
    FlushRecords();
    return true;
  }
  void Close() {
    if (in >= 0) close(in);
    in = -1;
  }
};

char g_copy_buf[64 * 1024];

// Waits for the task while copying its output; kills what is left of its process group once it
// ended; copies what remains (for at most 2 s: whatever left the group may hold the pipes).
// Returns the task's wait status.
int CopyUntilEnded(pid_t child, Copier* streams, int n) {
  const int pidfd = static_cast<int>(syscall(SYS_pidfd_open, child, 0));
  int status = 0;
  bool exited = false;
  int64_t drain_deadline = 0;
  for (;;) {
    if (!exited) {
      const pid_t r = waitpid(child, &status, WNOHANG);
      if (r < 0 && errno != EINTR) _exit(1);
      if (r == child) {
        exited = true;
        kill(-child, SIGKILL);
        drain_deadline = NowNanos(CLOCK_MONOTONIC) + 2000000000;
      }
    }
    bool open = false;
    for (int i = 0; i < n; ++i) open = open || streams[i].in >= 0;
    if (exited && !open) break;
    struct pollfd fds[3];
    int nfds = 0;
    for (int i = 0; i < n; ++i) {
      if (streams[i].in >= 0) fds[nfds++] = {streams[i].in, POLLIN, 0};
    }
    if (!exited && pidfd >= 0) fds[nfds++] = {pidfd, POLLIN, 0};
    int timeout_ms = -1;
    if (exited) {
      const int64_t left = drain_deadline - NowNanos(CLOCK_MONOTONIC);
      if (left <= 0) break;
      timeout_ms = static_cast<int>(left / 1000000) + 1;
    } else if (pidfd < 0) {
      timeout_ms = 100;  // no pidfd (kernel < 5.3): look again for the task's end
    }
    const int r = poll(fds, static_cast<nfds_t>(nfds), timeout_ms);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) continue;
    for (int i = 0; i < nfds; ++i) {
      if (fds[i].revents == 0) continue;
      for (int k = 0; k < n; ++k) {
        if (streams[k].in != fds[i].fd) continue;
        if (!streams[k].CopyOnce(g_copy_buf, sizeof(g_copy_buf))) streams[k].Close();
      }
    }
  }
  for (int k = 0; k < n; ++k) {
    if (streams[k].in < 0) continue;
    if (streams[k].offset > streams[k].line_start) {
      streams[k].Record(streams[k].offset, NowNanos(CLOCK_REALTIME));
    }
    streams[k].FlushRecords();
    streams[k].Close();
  }
  if (pidfd >= 0) close(pidfd);
  return status;  // the loop ends only once the task was reaped
}

// The task process, in the supervisor's fork: its own process group, its cgroup, output to the
// log files, the user, the directory, then exec. Any failure is reported on the pipe.
[[noreturn]] void RunTask(const Prepared& p) {
  const LaunchSpec& s = *p.spec;
  setpgid(0, 0);

  // Default dispositions and nothing blocked, whatever the daemon's thread had (an ignored
  // SIGPIPE would otherwise survive exec).
  struct sigaction dfl;
  memset(&dfl, 0, sizeof(dfl));
  dfl.sa_handler = SIG_DFL;
  for (int sig = 1; sig < NSIG; ++sig) {
    if (sig != SIGKILL && sig != SIGSTOP) sigaction(sig, &dfl, nullptr);
  }
  sigset_t none;
  sigemptyset(&none);
  sigprocmask(SIG_SETMASK, &none, nullptr);

  if (!s.cgroup_procs.empty()) {
    Buf pid;
    pid.AddNumber(static_cast<uint64_t>(getpid()));
    const int fd = open(s.cgroup_procs.c_str(), O_WRONLY | O_CLOEXEC);
    const bool ok = fd >= 0 && WriteAll(fd, pid.data, pid.len);
    const int err = errno;
    if (fd >= 0) close(fd);
    if (!ok && s.cgroup_required) {
      SendReport(p.report_fd, kStageCgroup, err);
      _exit(127);
    }
  }

  const int out = p.capture() ? p.out_pipe[1] : s.stdout_fd;
  const int err = p.capture() ? p.err_pipe[1] : s.stderr_fd;
  if (dup2(p.stdin_fd, 0) < 0 || dup2(out, 1) < 0 || dup2(err, 2) < 0) {
    SendReport(p.report_fd, kStageStdio, errno);
    _exit(127);
  }

  if (s.switch_user) {
    if (setgroups(s.groups.size(), s.groups.data()) != 0) {
      SendReport(p.report_fd, kStageGroups, errno);
      _exit(127);
    }
    if (setgid(s.gid) != 0) {
      SendReport(p.report_fd, kStageSetgid, errno);
      _exit(127);
    }
    if (setuid(s.uid) != 0) {
      SendReport(p.report_fd, kStageSetuid, errno);
      _exit(127);
    }
  }
  // After the user switch, so that the user's own permissions apply.
  if (chdir(s.dir.c_str()) != 0) {
    SendReport(p.report_fd, kStageChdir, errno);
    _exit(127);
  }

  CloseOnExecFrom3(p.max_fd);

  // execvp's search: the first path that execs wins; EACCES anywhere is reported if no path
  // exists; another error stops the search.
  int error = ENOENT;
  bool denied = false;
  for (const std::string& path : s.exec_paths) {
    execve(path.c_str(), p.argv.data(), p.envp.data());
    const int e = errno;
    if (e == EACCES) {
      denied = true;
    } else if (e != ENOENT && e != ENOTDIR && e != ESTALE && e != ENODEV && e != ETIMEDOUT) {
      error = e;
      break;
    }
  }
  if (denied && error == ENOENT) error = EACCES;
  SendReport(p.report_fd, kStageExec, error);
  _exit(127);
}

// The supervisor: a session of its own, forks the task, records it, waits for it, records how it
// ended, and exits. It outlives the daemon that forked it.
[[noreturn]] void Supervise(const Prepared& p) {
  const LaunchSpec& s = *p.spec;
  setsid();
  // Whatever ends the daemon's session or is sent to "all shoal processes" must not take the
  // record of the task's end with it (SIGKILL still does).
  struct sigaction ign;
  memset(&ign, 0, sizeof(ign));
  ign.sa_handler = SIG_IGN;
  for (int sig : {SIGHUP, SIGINT, SIGTERM, SIGQUIT, SIGPIPE}) sigaction(sig, &ign, nullptr);

  const pid_t child = fork();
  if (child < 0) {
    SendReport(p.report_fd, kStageFork, errno);
    _exit(1);
  }
  if (child == 0) RunTask(p);
  setpgid(child, child);  // the child does it too: whichever runs first
  if (p.capture()) {
    // Only the task writes into the pipes: their end is the end of its output.
    close(p.out_pipe[1]);
    close(p.err_pipe[1]);
  }

  // The task is our unreaped child, so its /proc entry exists even if it already ended.
  errno = 0;
  uint64_t child_start = 0;
  uint64_t self_start = 0;
  char state = 0;
  Buf pid;
  bool ok =
      ReadStartTime(child, &child_start, &state) && ReadStartTime(getpid(), &self_start, &state);
  if (ok) {
    pid.AddNumber(static_cast<uint64_t>(child));
    pid.Add(" ");
    pid.AddNumber(child_start);
    pid.Add("\n");
    pid.AddNumber(static_cast<uint64_t>(getpid()));
    pid.Add(" ");
    pid.AddNumber(self_start);
    pid.Add("\n");
    ok = WriteAtomically(s.pid_path, pid);
  }
  if (!ok) {
    const int err = errno != 0 ? errno : EIO;
    // Nobody could find or stop a task without its pid file: do not let it run.
    SendReport(p.report_fd, kStagePidFile, err);
    kill(-child, SIGKILL);
    kill(child, SIGKILL);
    while (waitpid(child, nullptr, 0) < 0 && errno == EINTR) {
    }
    _exit(1);
  }

  // Let go of the daemon's descriptors: closing the report pipe tells it the start is over
  // (the task's copy closes at exec), and a listening socket must not outlive the daemon here.
  // The output's pipes and files stay when the supervisor copies them.
  dup2(p.stdin_fd, 0);
  dup2(p.stdin_fd, 1);
  dup2(p.stdin_fd, 2);
  int keep[6] = {p.out_pipe[0], p.err_pipe[0],     s.stdout_fd,
                 s.stderr_fd,   s.stdout_index_fd, s.stderr_index_fd};
  CloseFrom3Except(keep, p.capture() ? 6 : 0, p.max_fd);

  int status = 0;
  if (p.capture()) {
    Copier streams[2];
    const int in[2] = {p.out_pipe[0], p.err_pipe[0]};
    const int log[2] = {s.stdout_fd, s.stderr_fd};
    const int index[2] = {s.stdout_index_fd, s.stderr_index_fd};
    for (int i = 0; i < 2; ++i) {
      streams[i].in = in[i];
      streams[i].log = log[i];
      streams[i].index = index[i];
      const off_t end = lseek(log[i], 0, SEEK_END);
      streams[i].offset = streams[i].line_start = end > 0 ? static_cast<uint64_t>(end) : 0;
    }
    // Copies until the task ended, and kills the rest of its process group then.
    status = CopyUntilEnded(child, streams, 2);
  } else {
    while (waitpid(child, &status, 0) < 0) {
      if (errno != EINTR) _exit(1);
    }
    // As a container ends with its main process, so does the rest of the task's process group.
    kill(-child, SIGKILL);
  }

  Buf text;
  if (WIFSIGNALED(status)) {
    const int sig = WTERMSIG(status);
    text.AddNumber(static_cast<uint64_t>(128 + sig));
    text.Add("\nkilled by signal ");
    text.AddNumber(static_cast<uint64_t>(sig));
    if (const char* name = SignalName(sig)) {
      text.Add(" (");
      text.Add(name);
      text.Add(")");
    }
    if (WCOREDUMP(status)) text.Add(", core dumped");
    text.Add("\n");
  } else {
    text.AddNumber(static_cast<uint64_t>(WEXITSTATUS(status)));
    text.Add("\n\n");
  }
  _exit(WriteAtomically(s.exit_path, text) ? 0 : 1);
}

std::string StageText(const LaunchSpec& s, const Report& r) {
  switch (r.stage) {
    case kStageFork:
      return "fork";
    case kStagePidFile:
      return absl::StrCat("writing ", s.pid_path);
    case kStageCgroup:
      return absl::StrCat("joining the cgroup (", s.cgroup_procs, ")");
    case kStageStdio:
      return "redirecting stdin, stdout and stderr";
    case kStageGroups:
      return "setgroups";
    case kStageSetgid:
      return absl::StrCat("setgid ", s.gid);
    case kStageSetuid:
      return absl::StrCat("setuid ", s.uid);
    case kStageChdir:
      return absl::StrCat("chdir \"", s.dir, "\"");
    case kStageExec:
      return absl::StrCat("exec \"", s.argv.empty() ? "" : s.argv[0], "\"");
  }
  return absl::StrCat("stage ", r.stage);
}

}  // namespace

absl::StatusOr<pid_t> SpawnSupervised(const LaunchSpec& spec) {
  if (spec.argv.empty()) return absl::InvalidArgumentError("no command");
  Prepared p;
  p.spec = &spec;
  for (const std::string& a : spec.argv) p.argv.push_back(const_cast<char*>(a.c_str()));
  p.argv.push_back(nullptr);
  for (const std::string& e : spec.env) p.envp.push_back(const_cast<char*>(e.c_str()));
  p.envp.push_back(nullptr);
  struct rlimit rl;
  p.max_fd = getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < 65536
                 ? static_cast<int>(rl.rlim_cur)
                 : 65536;

  p.stdin_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
  if (p.stdin_fd < 0) return absl::ErrnoToStatus(errno, "opening /dev/null");
  auto close_output_pipes = [&p] {
    for (int* fds : {p.out_pipe, p.err_pipe}) {
      for (int i = 0; i < 2; ++i) {
        if (fds[i] >= 0) close(fds[i]);
        fds[i] = -1;
      }
    }
  };
  if (spec.stdout_index_fd >= 0 && spec.stderr_index_fd >= 0) {
    if (pipe2(p.out_pipe, O_CLOEXEC) != 0 || pipe2(p.err_pipe, O_CLOEXEC) != 0) {
      const int err = errno;
      close_output_pipes();
      close(p.stdin_fd);
      return absl::ErrnoToStatus(err, "pipe for the task's output");
    }
  }
  int pipe_fds[2];
  if (pipe2(pipe_fds, O_CLOEXEC) != 0) {
    const int err = errno;
    close_output_pipes();
    close(p.stdin_fd);
    return absl::ErrnoToStatus(err, "pipe");
  }
  p.report_fd = pipe_fds[1];

  const pid_t supervisor = fork();
  if (supervisor == 0) Supervise(p);
  const int fork_error = errno;
  close(pipe_fds[1]);
  close(p.stdin_fd);
  close_output_pipes();  // the supervisor and the task hold theirs
  if (supervisor < 0) {
    close(pipe_fds[0]);
    return absl::ErrnoToStatus(fork_error, "fork");
  }

  // Reports until both children let go of the pipe: the task at exec, the supervisor once the
  // pid file is written. The first report is the cause.
  bool failed = false;
  Report first{0, 0};
  for (;;) {
    Report r;
    const ssize_t n = read(pipe_fds[0], &r, sizeof(r));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    if (n == sizeof(r) && !failed) {
      failed = true;
      first = r;
    }
  }
  close(pipe_fds[0]);
  if (!failed) return supervisor;

  // The supervisor ends at once after a failed start (it records the exit status 127 first).
  while (waitpid(supervisor, nullptr, 0) < 0 && errno == EINTR) {
  }
  return absl::ErrnoToStatus(first.error, StageText(spec, first));
}

void EncodeIndexRecord(uint64_t end, int64_t unix_nanos, char out[kIndexRecordSize]) {
  const uint64_t t = static_cast<uint64_t>(unix_nanos);
  for (int i = 0; i < 8; ++i) {
    out[i] = static_cast<char>((end >> (8 * i)) & 0xff);
    out[8 + i] = static_cast<char>((t >> (8 * i)) & 0xff);
  }
}

void DecodeIndexRecord(const char in[kIndexRecordSize], uint64_t* end, int64_t* unix_nanos) {
  uint64_t e = 0;
  uint64_t t = 0;
  for (int i = 7; i >= 0; --i) {
    e = (e << 8) | static_cast<unsigned char>(in[i]);
    t = (t << 8) | static_cast<unsigned char>(in[8 + i]);
  }
  *end = e;
  *unix_nanos = static_cast<int64_t>(t);
}

bool ReadStartTime(pid_t pid, uint64_t* start_time, char* state) {
  Buf path;
  path.Add("/proc/");
  path.AddNumber(static_cast<uint64_t>(pid));
  path.Add("/stat");
  const int fd = open(path.data, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return false;
  char buf[1024];
  size_t len = 0;
  for (;;) {
    const ssize_t n = read(fd, buf + len, sizeof(buf) - 1 - len);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    len += static_cast<size_t>(n);
    if (len == sizeof(buf) - 1) break;
  }
  close(fd);
  buf[len] = '\0';
  // "pid (comm) S ppid ...": comm may hold anything, so fields count from the last ')'.
  const char* p = strrchr(buf, ')');
  if (p == nullptr) return false;
  ++p;
  // Fields 3 (state) to 22 (starttime), each preceded by a space.
  int field = 2;
  uint64_t value = 0;
  while (*p != '\0') {
    if (*p == ' ') {
      ++field;
      ++p;
      if (field == 3) *state = *p;
      if (field == 22) {
        value = 0;
        while (*p >= '0' && *p <= '9') value = value * 10 + static_cast<uint64_t>(*p++ - '0');
        *start_time = value;
        return true;
      }
      continue;
    }
    ++p;
  }
  return false;
}

ProcState StateOf(pid_t pid, uint64_t start_time) {
  if (pid <= 0) return ProcState::kGone;
  uint64_t start = 0;
  char state = 0;
  if (!ReadStartTime(pid, &start, &state) || start != start_time) return ProcState::kGone;
  if (state == 'Z' || state == 'X' || state == 'x') return ProcState::kZombie;
  return ProcState::kRunning;
}

const char* SignalName(int sig) {
  switch (sig) {
    case SIGHUP:
      return "SIGHUP";
    case SIGINT:
      return "SIGINT";
    case SIGQUIT:
      return "SIGQUIT";
    case SIGILL:
      return "SIGILL";
    case SIGTRAP:
      return "SIGTRAP";
    case SIGABRT:
      return "SIGABRT";
    case SIGBUS:
      return "SIGBUS";
    case SIGFPE:
      return "SIGFPE";
    case SIGKILL:
      return "SIGKILL";
    case SIGUSR1:
      return "SIGUSR1";
    case SIGSEGV:
      return "SIGSEGV";
    case SIGUSR2:
      return "SIGUSR2";
    case SIGPIPE:
      return "SIGPIPE";
    case SIGALRM:
      return "SIGALRM";
    case SIGTERM:
      return "SIGTERM";
    case SIGSTKFLT:
      return "SIGSTKFLT";
    case SIGCHLD:
      return "SIGCHLD";
    case SIGCONT:
      return "SIGCONT";
    case SIGSTOP:
      return "SIGSTOP";
    case SIGTSTP:
      return "SIGTSTP";
    case SIGTTIN:
      return "SIGTTIN";
    case SIGTTOU:
      return "SIGTTOU";
    case SIGURG:
      return "SIGURG";
    case SIGXCPU:
      return "SIGXCPU";
    case SIGXFSZ:
      return "SIGXFSZ";
    case SIGVTALRM:
      return "SIGVTALRM";
    case SIGPROF:
      return "SIGPROF";
    case SIGWINCH:
      return "SIGWINCH";
    case SIGIO:
      return "SIGIO";
    case SIGPWR:
      return "SIGPWR";
    case SIGSYS:
      return "SIGSYS";
  }
  return nullptr;
}

}  // namespace shoal::worker::process_internal
