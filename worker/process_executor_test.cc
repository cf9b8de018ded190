#include "worker/process_executor.h"

#include <dirent.h>
#include <fcntl.h>
#include <linux/magic.h>
#include <pwd.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "common/log.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "worker/process_supervisor.h"
#include "worker/task_controller.h"

namespace shoal::worker {
namespace {

using process_internal::ProcState;
using process_internal::StateOf;
using ::testing::Each;
using ::testing::ElementsAre;
using ::testing::IsEmpty;

const absl::Time kNow = absl::FromUnixSeconds(1700000000);
// Generous bounds for a real child process to do something quick.
const absl::Duration kPatience = absl::Seconds(20);

std::string ReadAll(const std::string& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

bool Exists(const std::string& path) {
  struct stat st;
  return stat(path.c_str(), &st) == 0;
}

api::Task MakeTask(const std::string& id, std::vector<std::string> command,
                   api::TaskState desired = api::TASK_STATE_RUNNING) {
  api::Task t;
  t.mutable_meta()->set_id(id);
  t.set_service_id("svc1");
  t.set_node_id("node1");
  t.mutable_spec()->mutable_container();
  for (auto& c : command) t.mutable_spec()->mutable_container()->add_command(c);
  t.set_desired_state(desired);
  t.mutable_status()->set_state(api::TASK_STATE_ASSIGNED);
  return t;
}

api::Task Sh(const std::string& id, const std::string& script) {
  return MakeTask(id, {"/bin/sh", "-c", script});
}

// Waits (bounded) for a real process to end.
std::optional<Exit> WaitForExit(TaskRunner& runner) {
  const absl::Time deadline = absl::Now() + kPatience;
  while (absl::Now() < deadline) {
    if (std::optional<Exit> e = runner.Poll()) return e;
    absl::SleepFor(absl::Milliseconds(5));
  }
  return std::nullopt;
}

// Steps until the task finished (bounded); the statuses it reported on the way.
std::vector<api::TaskStatus> StepUntilFinished(TaskController& c) {
  std::vector<api::TaskStatus> out;
  const absl::Time deadline = absl::Now() + kPatience;
  while (!c.finished() && absl::Now() < deadline) {
    for (auto& s : c.Step(kNow)) out.push_back(s);
    if (!c.finished()) absl::SleepFor(absl::Milliseconds(5));
  }
  return out;
}

ProcessExecutor::LogFiles LogsOf(const ProcessExecutor& executor, const std::string& id) {
  absl::StatusOr<ProcessExecutor::LogFiles> logs = executor.Logs(id);
  EXPECT_TRUE(logs.ok()) << logs.status();
  return logs.ok() ? *logs : ProcessExecutor::LogFiles{};
}

bool WaitForFileContaining(const std::string& path, const std::string& text) {
  const absl::Time deadline = absl::Now() + kPatience;
  while (absl::Now() < deadline) {
    if (absl::StrContains(ReadAll(path), text)) return true;
    absl::SleepFor(absl::Milliseconds(5));
  }
  return false;
}

struct Pids {
  pid_t task = 0;
  uint64_t task_start = 0;
  pid_t supervisor = 0;
  uint64_t supervisor_start = 0;
};

// The children this process has: orphaned tasks come here too (the test is a subreaper).
std::vector<std::string> LiveChildren() {
  std::vector<std::string> out;
  DIR* proc = opendir("/proc");
  if (proc == nullptr) return out;
  while (dirent* e = readdir(proc)) {
    int pid = 0;
    if (!absl::SimpleAtoi(e->d_name, &pid)) continue;
    const std::string stat = ReadAll(absl::StrCat("/proc/", pid, "/stat"));
    const size_t paren = stat.rfind(')');
    if (paren == std::string::npos) continue;
    const std::vector<std::string> f = absl::StrSplit(stat.substr(paren + 2), ' ');
    int ppid = 0;
    if (f.size() > 1 && absl::SimpleAtoi(f[1], &ppid) && ppid == getpid() && f[0] != "Z") {
      out.push_back(absl::StrCat(pid, " ", stat.substr(0, paren + 1)));
      kill(pid, SIGKILL);
    }
  }
  closedir(proc);
  return out;
}

class ProcessExecutorTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    // Orphaned task processes become our children, so TearDown sees anything left behind.
    prctl(PR_SET_CHILD_SUBREAPER, 1);
  }

  void SetUp() override {
    const char* tmp = std::getenv("TEST_TMPDIR");
    root_ = absl::StrCat(tmp != nullptr ? tmp : "/tmp", "/",
                         ::testing::UnitTest::GetInstance()->current_test_info()->name());
    ASSERT_EQ(mkdir(root_.c_str(), 0755), 0) << root_;
    executor_ = NewExecutor();
  }

  void TearDown() override {
    executor_.reset();
    const std::vector<std::string> left = LiveChildren();
    EXPECT_TRUE(left.empty()) << "left behind: " << absl::StrJoin(left, "; ");
    while (waitpid(-1, nullptr, WNOHANG) > 0) {
    }
  }

  std::unique_ptr<ProcessExecutor> NewExecutor(std::string cgroup_root = "",
                                               std::optional<uid_t> euid = std::nullopt) {
    ProcessExecutor::Options o;
    o.state_dir = root_ + "/state";
    o.cgroup_root = std::move(cgroup_root);
    o.effective_uid_for_test = euid;
    auto e = ProcessExecutor::Create(o);
    EXPECT_TRUE(e.ok()) << e.status();
    return e.ok() ? *std::move(e) : nullptr;
  }

  std::string TaskDir(const std::string& id) { return absl::StrCat(root_, "/state/tasks/", id); }

  Pids ReadPids(const std::string& id) {
    Pids p;
    const std::vector<std::string> f =
        absl::StrSplit(ReadAll(TaskDir(id) + "/pid"), absl::ByAnyChar(" \n"), absl::SkipEmpty());
    EXPECT_EQ(f.size(), 4u);
    if (f.size() == 4) {
      EXPECT_TRUE(absl::SimpleAtoi(f[0], &p.task));
      EXPECT_TRUE(absl::SimpleAtoi(f[1], &p.task_start));
      EXPECT_TRUE(absl::SimpleAtoi(f[2], &p.supervisor));
      EXPECT_TRUE(absl::SimpleAtoi(f[3], &p.supervisor_start));
    }
    return p;
  }

  std::unique_ptr<TaskRunner> Started(const api::Task& task) {
    auto runner = executor_->Runner(task);
    EXPECT_TRUE(runner.ok()) << runner.status();
    if (!runner.ok()) return nullptr;
    EXPECT_TRUE((*runner)->Prepare().ok());
    const absl::Status s = (*runner)->Start();
    EXPECT_TRUE(s.ok()) << s;
    return *std::move(runner);
  }

  std::string root_;
  std::unique_ptr<ProcessExecutor> executor_;
};

TEST_F(ProcessExecutorTest, AFailingScriptFailsTheTaskWithItsExitCodeAndLogsBothStreams) {
  TaskController c(Sh("t1", "echo out; echo err >&2; exit 3"), *executor_);
  const auto out = StepUntilFinished(c);
  ASSERT_EQ(c.state(), api::TASK_STATE_FAILED);
  EXPECT_EQ(out.back().err(), "task: non-zero exit (3)");
  const ProcessExecutor::LogFiles logs = LogsOf(*executor_, "t1");
  EXPECT_EQ(logs.stdout_path, TaskDir("t1") + "/stdout.log");
  EXPECT_EQ(ReadAll(logs.stdout_path), "out\n");
  EXPECT_EQ(ReadAll(logs.stderr_path), "err\n");
}

TEST_F(ProcessExecutorTest, ExitZeroCompletesTheTask) {
  TaskController c(Sh("t1", "exit 0"), *executor_);
  const auto out = StepUntilFinished(c);
  EXPECT_EQ(c.state(), api::TASK_STATE_COMPLETE);
  EXPECT_EQ(out.back().message(), "finished");
}

TEST_F(ProcessExecutorTest, TheTaskGetsItsEnvironmentAndWorkingDirectory) {
  const std::string dir = root_ + "/wd";
  ASSERT_EQ(mkdir(dir.c_str(), 0755), 0);
  api::Task t =
      Sh("t1", R"(echo "$FOO|$(pwd)|$SHOAL_TASK_ID|$SHOAL_SERVICE_ID|$SHOAL_NODE_ID|$PATH")");
  t.mutable_spec()->mutable_container()->add_env("FOO=bar=baz");
  t.mutable_spec()->mutable_container()->set_dir(dir);
  TaskController c(t, *executor_);
  StepUntilFinished(c);
  EXPECT_EQ(c.state(), api::TASK_STATE_COMPLETE);
  EXPECT_EQ(ReadAll(LogsOf(*executor_, "t1").stdout_path),
            absl::StrCat("bar=baz|", dir, "|t1|svc1|node1|",
                         "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\n"));

  // Without a dir: the task's own; HOME is set; the task's PATH finds its command.
  const std::string bin = root_ + "/bin";
  ASSERT_EQ(mkdir(bin.c_str(), 0755), 0);
  std::ofstream(bin + "/mytool") << "#!/bin/sh\necho \"tool in $(pwd) home=${HOME:+set}\"\n";
  ASSERT_EQ(chmod((bin + "/mytool").c_str(), 0755), 0);
  api::Task t2 = MakeTask("t2", {"mytool"});
  t2.mutable_spec()->mutable_container()->add_env(absl::StrCat("PATH=", bin, ":/usr/bin:/bin"));
  TaskController c2(t2, *executor_);
  StepUntilFinished(c2);
  EXPECT_EQ(c2.state(), api::TASK_STATE_COMPLETE) << c2.task().status().err();
  EXPECT_EQ(ReadAll(LogsOf(*executor_, "t2").stdout_path),
            absl::StrCat("tool in ", TaskDir("t2"), "/work home=set\n"));
}

TEST_F(ProcessExecutorTest, ArgsAloneAreTheCommand) {
  api::Task t = MakeTask("t1", {});
  t.mutable_spec()->mutable_container()->add_args("/bin/echo");
  t.mutable_spec()->mutable_container()->add_args("hi");
  TaskController c(t, *executor_);
  StepUntilFinished(c);
  EXPECT_EQ(c.state(), api::TASK_STATE_COMPLETE);
  EXPECT_EQ(ReadAll(LogsOf(*executor_, "t1").stdout_path), "hi\n");
}

TEST_F(ProcessExecutorTest, ACommandNotFoundFailsTheStartWithTheExecError) {
  TaskController c(MakeTask("t1", {"no-such-command-7f3a", "x"}), *executor_);
  const auto out = c.Step(kNow);
  ASSERT_EQ(c.state(), api::TASK_STATE_FAILED);
  EXPECT_EQ(out.back().message(), "starting failed");
  EXPECT_EQ(out.back().err(), "exec \"no-such-command-7f3a\": No such file or directory");

  const std::string file = root_ + "/not-executable";
  std::ofstream(file) << "echo\n";
  TaskController d(MakeTask("t2", {file}), *executor_);
  EXPECT_EQ(d.Step(kNow).back().err(), absl::StrCat("exec \"", file, "\": Permission denied"));
}

TEST_F(ProcessExecutorTest, SpecsItCannotRunAreRejected) {
  TaskController none(MakeTask("t1", {}), *executor_);
  auto out = none.Step(kNow);
  EXPECT_EQ(out.back().state(), api::TASK_STATE_REJECTED);
  EXPECT_EQ(out.back().err(),
            "task t1: the process executor needs a command (--entrypoint/command or args)");

  api::Task env = Sh("t2", "true");
  env.mutable_spec()->mutable_container()->add_env("NOEQUALS");
  EXPECT_EQ(executor_->Runner(env).status().message(),
            "task t2: env entry \"NOEQUALS\" is not KEY=value");

  api::Task sig = Sh("t3", "true");
  sig.mutable_spec()->mutable_container()->set_stop_signal("SIGNOPE");
  TaskController bad_signal(sig, *executor_);
  out = bad_signal.Step(kNow);
  EXPECT_EQ(out.back().state(), api::TASK_STATE_REJECTED);
  EXPECT_EQ(out.back().err(),
            "task t3: unknown stop signal \"SIGNOPE\" (a name such as SIGINT or INT, or a number)");
  for (const char* ok : {"SIGINT", "INT", "2", "sigusr1", "15"}) {
    sig.mutable_spec()->mutable_container()->set_stop_signal(ok);
    EXPECT_TRUE(executor_->Runner(sig).ok()) << ok;
  }
  for (const char* bad : {"0", "999", "SIG", "-2"}) {
    sig.mutable_spec()->mutable_container()->set_stop_signal(bad);
    EXPECT_FALSE(executor_->Runner(sig).ok()) << bad;
  }

  api::Task dir = Sh("t4", "true");
  dir.mutable_spec()->mutable_container()->set_dir(root_ + "/missing");
  TaskController missing(dir, *executor_);
  out = missing.Step(kNow);
  EXPECT_EQ(out.back().state(), api::TASK_STATE_REJECTED);
  EXPECT_EQ(out.back().err(), absl::StrCat("task t4: working directory \"", root_,
                                           "/missing\": No such file or directory"));

  api::Task no_container = Sh("t5", "true");
  no_container.mutable_spec()->clear_container();
  EXPECT_EQ(executor_->Runner(no_container).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(executor_->Runner(Sh("../x", "true")).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST_F(ProcessExecutorTest, AnotherUserNeedsRoot) {
  auto as_user = NewExecutor("", /*euid=*/1000);
  api::Task t = Sh("t1", "true");
  t.mutable_spec()->mutable_container()->set_user("nobody");
  TaskController c(t, *as_user);
  const auto out = c.Step(kNow);
  EXPECT_EQ(out.back().state(), api::TASK_STATE_REJECTED);
  EXPECT_EQ(out.back().err(),
            "task t1: running as user \"nobody\" needs a worker running as root (it runs as uid "
            "1000)");

  api::Task unknown = Sh("t2", "true");
  unknown.mutable_spec()->mutable_container()->set_user("no-such-user-x");
  TaskController d(unknown, *executor_);
  EXPECT_EQ(d.Step(kNow).back().err(), "task t2: no user \"no-such-user-x\"");
}

TEST_F(ProcessExecutorTest, RunsAsTheSpecsUserWhenRoot) {
  if (geteuid() != 0) GTEST_SKIP() << "switching users needs root";
  struct passwd* nobody = getpwnam("nobody");
  if (nobody == nullptr) GTEST_SKIP() << "no user nobody";
  // The test's own directory sits under /root (mode 0700): the user could not reach its
  // working directory there.
  char dir[] = "/tmp/shoal-process-test-XXXXXX";
  ASSERT_NE(mkdtemp(dir), nullptr);
  ASSERT_EQ(chmod(dir, 0755), 0);
  ProcessExecutor::Options o;
  o.state_dir = dir;
  o.cgroup_root = "";
  auto executor = *ProcessExecutor::Create(o);

  api::Task t = Sh("t1", "id -u; id -g; touch file-in-work-dir");
  t.mutable_spec()->mutable_container()->set_user("nobody");
  {
    TaskController c(t, *executor);
    StepUntilFinished(c);
    EXPECT_EQ(c.state(), api::TASK_STATE_COMPLETE)
        << c.task().status().err() << ReadAll(LogsOf(*executor, "t1").stderr_path);
    EXPECT_EQ(ReadAll(LogsOf(*executor, "t1").stdout_path),
              absl::StrCat(nobody->pw_uid, "\n", nobody->pw_gid, "\n"));
  }

  api::Task g = Sh("t2", "id -u; id -g");
  g.mutable_spec()->mutable_container()->set_user(absl::StrCat(nobody->pw_uid, ":12345"));
  {
    TaskController d(g, *executor);
    StepUntilFinished(d);
    EXPECT_EQ(d.state(), api::TASK_STATE_COMPLETE) << d.task().status().err();
    EXPECT_EQ(ReadAll(LogsOf(*executor, "t2").stdout_path),
              absl::StrCat(nobody->pw_uid, "\n12345\n"));
  }
  std::error_code ec;
  std::filesystem::remove_all(dir, ec);
}

TEST_F(ProcessExecutorTest, StoppingASleepingTaskWithSigtermEndsItPromptly) {
  TaskController c(MakeTask("t1", {"sleep", "1000"}), *executor_);
  c.Step(kNow);
  ASSERT_EQ(c.state(), api::TASK_STATE_RUNNING);
  const Pids pids = ReadPids("t1");
  EXPECT_EQ(StateOf(pids.task, pids.task_start), ProcState::kRunning);

  c.Update(MakeTask("t1", {"sleep", "1000"}, api::TASK_STATE_SHUTDOWN));
  const absl::Time start = absl::Now();
  const auto out = c.Step(kNow);
  EXPECT_LT(absl::Now() - start, absl::Seconds(5)) << "the default grace is 10s";
  EXPECT_EQ(out.back().state(), api::TASK_STATE_SHUTDOWN);
  EXPECT_EQ(ReadAll(TaskDir("t1") + "/exit"), "143\nkilled by signal 15 (SIGTERM)\n");
  EXPECT_NE(StateOf(pids.task, pids.task_start), ProcState::kRunning);
  EXPECT_NE(StateOf(pids.supervisor, pids.supervisor_start), ProcState::kRunning);
}

TEST_F(ProcessExecutorTest, StopSendsTheSpecsStopSignal) {
  api::Task t = MakeTask("t1", {"sleep", "1000"});
  t.mutable_spec()->mutable_container()->set_stop_signal("INT");
  auto runner = Started(t);
  ASSERT_NE(runner, nullptr);
  EXPECT_TRUE(runner->Stop(absl::Seconds(10)).ok());
  const std::optional<Exit> exit = runner->Poll();
  ASSERT_TRUE(exit.has_value());
  EXPECT_EQ(exit->code, 130);
  EXPECT_EQ(exit->error, "killed by signal 2 (SIGINT)");
  EXPECT_TRUE(runner->Remove().ok());
}

TEST_F(ProcessExecutorTest, ATaskIgnoringTheStopSignalIsKilledAfterTheGracePeriod) {
  auto runner = Started(Sh("t1", "trap '' TERM; echo ready; exec sleep 1000"));
  ASSERT_NE(runner, nullptr);
  // The trap must be in place before the signal, or SIGTERM would simply end it.
  ASSERT_TRUE(WaitForFileContaining(LogsOf(*executor_, "t1").stdout_path, "ready"));

  const absl::Time start = absl::Now();
  EXPECT_TRUE(runner->Stop(absl::Milliseconds(200)).ok());
  const absl::Duration took = absl::Now() - start;
  EXPECT_GE(took, absl::Milliseconds(200));
  EXPECT_LT(took, absl::Seconds(5));
  const std::optional<Exit> exit = runner->Poll();
  ASSERT_TRUE(exit.has_value());
  EXPECT_EQ(exit->code, 137);
  EXPECT_EQ(exit->error, "killed by signal 9 (SIGKILL)");
  EXPECT_TRUE(runner->Remove().ok());
}

TEST_F(ProcessExecutorTest, ARestartedDaemonAdoptsARunningTaskAndSeesItsExit) {
  const std::string fifo = root_ + "/go";
  ASSERT_EQ(mkfifo(fifo.c_str(), 0600), 0);
  api::Task t = Sh("t1", "read line < \"$GO\"; exit 7");
  t.mutable_spec()->mutable_container()->add_env("GO=" + fifo);
  auto runner = Started(t);
  ASSERT_NE(runner, nullptr);
  const Pids pids = ReadPids("t1");

  // The daemon forgets its runner, as a restart would: the task must go on.
  runner.reset();
  EXPECT_EQ(StateOf(pids.task, pids.task_start), ProcState::kRunning);
  EXPECT_EQ(StateOf(pids.supervisor, pids.supervisor_start), ProcState::kRunning);

  auto adopted = executor_->Adopt(t);
  ASSERT_TRUE(adopted.ok()) << adopted.status();
  EXPECT_FALSE((*adopted)->Poll().has_value());

  // Opens once the task waits on the fifo (ENXIO until then).
  int go = -1;
  for (const absl::Time deadline = absl::Now() + kPatience; go < 0 && absl::Now() < deadline;) {
    go = open(fifo.c_str(), O_WRONLY | O_NONBLOCK | O_CLOEXEC);
    if (go < 0) absl::SleepFor(absl::Milliseconds(5));
  }
  ASSERT_GE(go, 0) << strerror(errno);
  ASSERT_EQ(write(go, "go\n", 3), 3);
  close(go);
  const std::optional<Exit> exit = WaitForExit(**adopted);
  ASSERT_TRUE(exit.has_value());
  EXPECT_EQ(exit->code, 7);
  EXPECT_EQ(exit->error, "");
  EXPECT_TRUE((*adopted)->Remove().ok());
  EXPECT_FALSE(Exists(TaskDir("t1") + "/pid"));
  EXPECT_TRUE(Exists(LogsOf(*executor_, "t1").stdout_path)) << "logs outlive Remove";
  EXPECT_EQ(executor_->Adopt(t).status().code(), absl::StatusCode::kNotFound);
}

TEST_F(ProcessExecutorTest, AnAdoptedTaskCanBeStopped) {
  const api::Task t = MakeTask("t1", {"sleep", "1000"});
  auto runner = Started(t);
  ASSERT_NE(runner, nullptr);
  runner.reset();
  auto adopted = executor_->Adopt(t);
  ASSERT_TRUE(adopted.ok()) << adopted.status();
  EXPECT_TRUE((*adopted)->Stop(absl::Seconds(10)).ok());
  const std::optional<Exit> exit = (*adopted)->Poll();
  ASSERT_TRUE(exit.has_value());
  EXPECT_EQ(exit->code, 143);
  EXPECT_TRUE((*adopted)->Remove().ok());
}

TEST_F(ProcessExecutorTest, ATaskWhoseProcessesDiedWithoutAnExitStatusIsLost) {
  const api::Task t = MakeTask("t1", {"sleep", "1000"});
  auto runner = Started(t);
  ASSERT_NE(runner, nullptr);
  const Pids pids = ReadPids("t1");
  runner.reset();
  // Nobody is left to record the task's end.
  ASSERT_EQ(kill(pids.supervisor, SIGKILL), 0);
  ASSERT_EQ(waitpid(pids.supervisor, nullptr, 0), pids.supervisor);

  auto adopted = executor_->Adopt(t);
  ASSERT_TRUE(adopted.ok()) << adopted.status();
  EXPECT_FALSE((*adopted)->Poll().has_value()) << "the task itself still runs";
  ASSERT_EQ(kill(pids.task, SIGKILL), 0);
  const std::optional<Exit> exit = WaitForExit(**adopted);
  ASSERT_TRUE(exit.has_value());
  EXPECT_EQ(exit->code, 255);
  EXPECT_EQ(exit->error, "lost: the process is gone and left no exit status");
  EXPECT_TRUE((*adopted)->Remove().ok());
}

TEST_F(ProcessExecutorTest, APidNowUsedByAnotherProcessIsNeitherTheTaskNorSignalled) {
  // A process that took the task's pid after the daemon went down.
  const pid_t other = fork();
  ASSERT_GE(other, 0);
  if (other == 0) {
    execl("/bin/sleep", "sleep", "1000", nullptr);
    _exit(127);
  }
  uint64_t start = 0;
  char state = 0;
  ASSERT_TRUE(process_internal::ReadStartTime(other, &start, &state));
  ASSERT_EQ(mkdir(TaskDir("t1").c_str(), 0755), 0);
  std::ofstream(TaskDir("t1") + "/pid") << other << " " << start - 1 << "\n"
                                        << other << " " << start - 1 << "\n";

  auto adopted = executor_->Adopt(MakeTask("t1", {"sleep", "1000"}));
  ASSERT_TRUE(adopted.ok()) << adopted.status();
  const std::optional<Exit> exit = (*adopted)->Poll();
  ASSERT_TRUE(exit.has_value());
  EXPECT_EQ(exit->error, "lost: the process is gone and left no exit status");
  EXPECT_TRUE((*adopted)->Stop(absl::ZeroDuration()).ok());
  EXPECT_TRUE((*adopted)->Remove().ok());
  EXPECT_EQ(StateOf(other, start), ProcState::kRunning) << "never signalled";

  kill(other, SIGKILL);
  waitpid(other, nullptr, 0);
}

TEST_F(ProcessExecutorTest, AdoptNeedsAPidFile) {
  EXPECT_EQ(executor_->Adopt(Sh("t1", "true")).status().code(), absl::StatusCode::kNotFound);
  ASSERT_EQ(mkdir(TaskDir("t2").c_str(), 0755), 0);
  std::ofstream(TaskDir("t2") + "/pid") << "garbage\n";
  EXPECT_EQ(executor_->Adopt(Sh("t2", "true")).status().code(), absl::StatusCode::kDataLoss);
}

TEST_F(ProcessExecutorTest, RemoveKillsWhatRunsAndKeepsTheLogsUntilTheTaskFilesAreDeleted) {
  auto runner = Started(Sh("t1", "echo hello; exec sleep 1000"));
  ASSERT_NE(runner, nullptr);
  const Pids pids = ReadPids("t1");
  ASSERT_TRUE(WaitForFileContaining(LogsOf(*executor_, "t1").stdout_path, "hello"));
  EXPECT_TRUE(runner->Remove().ok());
  EXPECT_NE(StateOf(pids.task, pids.task_start), ProcState::kRunning);
  EXPECT_TRUE(runner->Remove().ok()) << "idempotent";
  EXPECT_EQ(ReadAll(LogsOf(*executor_, "t1").stdout_path), "hello\n");
  EXPECT_EQ(executor_->Logs("../t1").status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(executor_->DeleteTaskFiles("t1").ok());
  EXPECT_FALSE(Exists(TaskDir("t1")));
}

TEST_F(ProcessExecutorTest, WithoutCgroupsTasksRunWithoutLimitsAndItIsLoggedOnce) {
  std::unique_ptr<ProcessExecutor> executor;
  {
    log::ScopedCapture capture;
    executor = NewExecutor(root_ + "/not-a-cgroup/shoal");
    EXPECT_TRUE(absl::StrContains(capture.Text(), "cgroups v2 unavailable")) << capture.Text();
  }
  ASSERT_NE(executor, nullptr);
  EXPECT_FALSE(executor->cgroups_enabled());
  api::Task t = Sh("t1", "exit 0");
  t.mutable_spec()->mutable_resources()->mutable_limits()->set_memory_bytes(64 << 20);
  t.mutable_spec()->mutable_resources()->mutable_limits()->set_nano_cpus(500000000);
  TaskController c(t, *executor);
  StepUntilFinished(c);
  EXPECT_EQ(c.state(), api::TASK_STATE_COMPLETE);
}

// The cgroup2 hierarchy to test in: /sys/fs/cgroup, or a hybrid system's unified one.
std::string WritableCgroup2() {
  for (const char* dir : {"/sys/fs/cgroup", "/sys/fs/cgroup/unified"}) {
    struct statfs fs;
    if (statfs(dir, &fs) == 0 && fs.f_type == CGROUP2_SUPER_MAGIC && access(dir, W_OK) == 0) {
      return dir;
    }
  }
  return "";
}

TEST_F(ProcessExecutorTest, TasksRunInTheirOwnCgroupWithTheirLimits) {
  const std::string base = WritableCgroup2();
  if (base.empty()) GTEST_SKIP() << "no writable cgroup2 hierarchy (not root, or cgroups v1)";
  const std::string name = absl::StrCat("shoal-test-", getpid());
  const std::string root = absl::StrCat(base, "/", name);
  auto executor = NewExecutor(root);
  ASSERT_NE(executor, nullptr);
  if (!executor->cgroups_enabled()) {
    rmdir(root.c_str());
    GTEST_SKIP() << base << " is cgroup2 but does not take new cgroups";
  }

  auto runner = *executor->Runner(Sh("t1", "cat /proc/self/cgroup"));
  ASSERT_TRUE(runner->Prepare().ok());
  ASSERT_TRUE(runner->Start().ok());
  ASSERT_TRUE(WaitForExit(*runner).has_value());
  EXPECT_TRUE(absl::StrContains(ReadAll(LogsOf(*executor, "t1").stdout_path),
                                absl::StrCat("0::/", name, "/t1\n")))
      << ReadAll(LogsOf(*executor, "t1").stdout_path);
  EXPECT_TRUE(Exists(root + "/t1"));
  EXPECT_TRUE(runner->Remove().ok());
  EXPECT_FALSE(Exists(root + "/t1"));

  api::Task limited = Sh("t2", "exit 0");
  limited.mutable_spec()->mutable_resources()->mutable_limits()->set_memory_bytes(64 << 20);
  limited.mutable_spec()->mutable_resources()->mutable_limits()->set_nano_cpus(500000000);
  auto limited_runner = *executor->Runner(limited);
  const absl::Status prepared = limited_runner->Prepare();
  const std::string controllers = ReadAll(root + "/cgroup.subtree_control");
  if (absl::StrContains(controllers, "memory") && absl::StrContains(controllers, "cpu")) {
    ASSERT_TRUE(prepared.ok()) << prepared;
    EXPECT_EQ(ReadAll(root + "/t2/memory.max"), "67108864\n");
    EXPECT_EQ(ReadAll(root + "/t2/cpu.max"), "50000 100000\n");
  } else {
    // Limits were asked for, cgroups exist, and they cannot take them: refused, never ignored.
    EXPECT_FALSE(prepared.ok());
    EXPECT_TRUE(absl::StrContains(prepared.message(), "memory.max")) << prepared;
  }
  EXPECT_TRUE(limited_runner->Remove().ok());
  EXPECT_FALSE(Exists(root + "/t2"));
  EXPECT_EQ(rmdir(root.c_str()), 0) << strerror(errno);
}

// ---- Reading the output back (OpenLogs) ----

// Everything a reader has now; "E:" marks stderr lines. Fails the test if it errs.
std::vector<std::string> ReadLines(LogReader& reader, bool* more = nullptr,
                                   std::vector<absl::Time>* times = nullptr) {
  std::vector<LogLine> lines;
  absl::StatusOr<bool> m = true;
  while (true) {
    const size_t before = lines.size();
    m = reader.Read(2, &lines);  // small batches: the merge carries over between reads
    EXPECT_TRUE(m.ok()) << m.status();
    if (!m.ok() || !*m || lines.size() == before) break;
  }
  if (more != nullptr) *more = m.ok() && *m;
  std::vector<std::string> out;
  for (const LogLine& l : lines) {
    out.push_back(absl::StrCat(l.is_stderr ? "E:" : "", l.data));
    if (times != nullptr) times->push_back(l.time);
  }
  return out;
}

// A task directory written by hand: each stream's lines with their times (seconds after kNow).
void WriteTaskOutput(const std::string& dir, const std::string& stream,
                     const std::vector<std::pair<std::string, int>>& lines) {
  mkdir(dir.c_str(), 0755);
  std::ofstream log(dir + "/" + stream + ".log", std::ios::binary);
  std::ofstream idx(dir + "/" + stream + ".idx", std::ios::binary);
  uint64_t end = 0;
  for (const auto& [text, second] : lines) {
    log << text;
    end += text.size();
    char record[process_internal::kIndexRecordSize];
    process_internal::EncodeIndexRecord(end, absl::ToUnixNanos(kNow + absl::Seconds(second)),
                                        record);
    idx.write(record, sizeof(record));
  }
}

absl::StatusOr<std::vector<std::string>> LinesOf(ProcessExecutor& executor, const std::string& id,
                                                 const LogOptions& o) {
  auto reader = executor.OpenLogs(id, o);
  if (!reader.ok()) return reader.status();
  bool more = true;
  std::vector<std::string> lines = ReadLines(**reader, &more);
  EXPECT_FALSE(more) << "without follow, a reader ends";
  return lines;
}

TEST_F(ProcessExecutorTest, OpenLogsMergesTheStreamsByTimeAndTakesTailAndSince) {
  WriteTaskOutput(TaskDir("t1"), "stdout", {{"a\n", 1}, {"c\n", 3}, {"e\n", 5}});
  WriteTaskOutput(TaskDir("t1"), "stderr", {{"b\n", 2}, {"d\n", 4}});
  LogOptions o;
  EXPECT_THAT(*LinesOf(*executor_, "t1", o), ElementsAre("a\n", "E:b\n", "c\n", "E:d\n", "e\n"));
  o.tail = 2;
  EXPECT_THAT(*LinesOf(*executor_, "t1", o), ElementsAre("E:d\n", "e\n"))
      << "the last lines of both streams together";
  o.tail = 0;
  EXPECT_THAT(*LinesOf(*executor_, "t1", o), IsEmpty());
  o.tail = 100;
  EXPECT_EQ(LinesOf(*executor_, "t1", o)->size(), 5u);
  o.tail = -1;
  o.since = kNow + absl::Seconds(3);
  EXPECT_THAT(*LinesOf(*executor_, "t1", o), ElementsAre("c\n", "E:d\n", "e\n"))
      << "from the line written at `since` on";
  o.tail = 2;
  EXPECT_THAT(*LinesOf(*executor_, "t1", o), ElementsAre("E:d\n", "e\n"));
  o = LogOptions();
  o.include_stderr = false;
  EXPECT_THAT(*LinesOf(*executor_, "t1", o), ElementsAre("a\n", "c\n", "e\n"));
  o = LogOptions();
  o.include_stdout = false;
  o.tail = 1;
  EXPECT_THAT(*LinesOf(*executor_, "t1", o), ElementsAre("E:d\n"));

  EXPECT_EQ(executor_->OpenLogs("never-ran", LogOptions()).status().code(),
            absl::StatusCode::kNotFound);
  EXPECT_EQ(executor_->OpenLogs("../t1", LogOptions()).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST_F(ProcessExecutorTest, OutputWithoutAnIndexHasTheLogFilesTime) {
  // As an earlier version of the executor left it: the log alone.
  ASSERT_EQ(mkdir(TaskDir("t1").c_str(), 0755), 0);
  std::ofstream(TaskDir("t1") + "/stdout.log") << "one\ntwo\nthree";
  struct stat st;
  ASSERT_EQ(stat((TaskDir("t1") + "/stdout.log").c_str(), &st), 0);
  const absl::Time mtime = absl::TimeFromTimespec(st.st_mtim);
  auto reader = executor_->OpenLogs("t1", LogOptions());
  ASSERT_TRUE(reader.ok()) << reader.status();
  std::vector<absl::Time> times;
  EXPECT_THAT(ReadLines(**reader, nullptr, &times), ElementsAre("one\n", "two\n", "three"));
  EXPECT_THAT(times, Each(mtime));
  LogOptions o;
  o.tail = 1;
  EXPECT_THAT(*LinesOf(*executor_, "t1", o), ElementsAre("three"));
  o.since = mtime + absl::Seconds(1);
  EXPECT_THAT(*LinesOf(*executor_, "t1", o), IsEmpty());
}

// A task that writes "before", waits on a FIFO the test writes to, then writes "after" on
// both streams: the test knows a time between the two.
class TaskLogTimesTest : public ProcessExecutorTest {
 protected:
  void SetUp() override {
    ProcessExecutorTest::SetUp();
    fifo_ = root_ + "/go";
    ASSERT_EQ(mkfifo(fifo_.c_str(), 0600), 0);
  }
  std::string Script() const {
    return absl::StrCat("echo before; read x < ", fifo_, "; echo after; echo oops >&2; ",
                        "exec sleep 1000");
  }
  void Release() {
    const int fd = open(fifo_.c_str(), O_WRONLY | O_CLOEXEC);
    ASSERT_GE(fd, 0);
    ASSERT_EQ(write(fd, "\n", 1), 1);
    close(fd);
  }
  std::string fifo_;
};

TEST_F(TaskLogTimesTest, EveryLineHasTheTimeItWasWrittenAndSinceSelectsByIt) {
  auto runner = Started(Sh("t1", Script()));
  ASSERT_NE(runner, nullptr);
  ASSERT_TRUE(WaitForFileContaining(TaskDir("t1") + "/stdout.log", "before"));
  const absl::Time between = absl::Now();
  ASSERT_NO_FATAL_FAILURE(Release());
  ASSERT_TRUE(WaitForFileContaining(TaskDir("t1") + "/stderr.log", "oops"));

  // Everything, in order, with times on either side of `between`. Lines are indexed right
  // after they are copied: wait for the last one's record.
  std::vector<std::string> lines;
  std::vector<absl::Time> times;
  const absl::Time deadline = absl::Now() + kPatience;
  while (lines.size() < 3 && absl::Now() < deadline) {
    lines.clear();
    times.clear();
    auto reader = executor_->OpenLogs("t1", LogOptions());
    ASSERT_TRUE(reader.ok()) << reader.status();
    lines = ReadLines(**reader, nullptr, &times);
    if (lines.size() < 3) absl::SleepFor(absl::Milliseconds(5));  // another process's writes
  }
  ASSERT_THAT(lines, ElementsAre("before\n", "after\n", "E:oops\n"));
  EXPECT_LT(times[0], between);
  EXPECT_GT(times[1], between);
  EXPECT_LE(times[1], times[2]);

  LogOptions o;
  o.since = between;
  EXPECT_THAT(*LinesOf(*executor_, "t1", o), ElementsAre("after\n", "E:oops\n"));
  o.include_stderr = false;
  o.since = absl::InfinitePast();
  o.tail = 1;
  EXPECT_THAT(*LinesOf(*executor_, "t1", o), ElementsAre("after\n"));
  EXPECT_TRUE(runner->Remove().ok());
  // The logs stay after the task is removed, and so do their times.
  EXPECT_THAT(*LinesOf(*executor_, "t1", o), ElementsAre("after\n"));
}

TEST_F(TaskLogTimesTest, FollowingSeesTheLinesWrittenLater) {
  auto runner = Started(Sh("t1", Script()));
  ASSERT_NE(runner, nullptr);
  ASSERT_TRUE(WaitForFileContaining(TaskDir("t1") + "/stdout.log", "before"));
  LogOptions o;
  o.follow = true;
  auto reader = executor_->OpenLogs("t1", o);
  ASSERT_TRUE(reader.ok()) << reader.status();
  std::vector<std::string> seen;
  bool more = false;
  const absl::Time deadline = absl::Now() + kPatience;
  while (seen.empty() && absl::Now() < deadline) seen = ReadLines(**reader, &more);
  EXPECT_TRUE(more) << "a follow never ends by itself";
  ASSERT_THAT(seen, ElementsAre("before\n"));
  ASSERT_NO_FATAL_FAILURE(Release());
  // The reader has no notification: look again until the new lines are there (bounded).
  while (seen.size() < 3 && absl::Now() < deadline) {
    for (std::string& l : ReadLines(**reader)) seen.push_back(std::move(l));
    if (seen.size() < 3) absl::SleepFor(absl::Milliseconds(5));
  }
  EXPECT_THAT(seen, ElementsAre("before\n", "after\n", "E:oops\n"));
  EXPECT_TRUE(runner->Remove().ok());
}

TEST_F(ProcessExecutorTest, ALongLineComesInPiecesAndAnUnfinishedOneAtTheEnd) {
  TaskController c(Sh("t1", "head -c 40000 /dev/zero | tr '\\0' x; echo; printf tail"), *executor_);
  StepUntilFinished(c);
  ASSERT_EQ(c.state(), api::TASK_STATE_COMPLETE);
  auto reader = executor_->OpenLogs("t1", LogOptions());
  ASSERT_TRUE(reader.ok()) << reader.status();
  const std::vector<std::string> lines = ReadLines(**reader);
  ASSERT_GE(lines.size(), 4u);
  std::string joined;
  for (size_t i = 0; i + 1 < lines.size(); ++i) {
    EXPECT_LE(lines[i].size(), 16u * 1024) << i;
    joined += lines[i];
  }
  EXPECT_EQ(joined, std::string(40000, 'x') + "\n");
  EXPECT_EQ(lines.back(), "tail") << "the last line, without its newline, once the stream ended";
}

}  // namespace
}  // namespace shoal::worker
