#include "worker/task_controller.h"

#include "absl/strings/str_cat.h"

namespace shoal::worker {
namespace {

absl::Duration GracePeriod(const api::Task& t) {
  const auto& d = t.spec().container().stop_grace_period();
  if (d.seconds() == 0 && d.nanos() == 0) return absl::Seconds(10);  // Docker's default
  return absl::Seconds(d.seconds()) + absl::Nanoseconds(d.nanos());
}

}  // namespace

TaskController::TaskController(const api::Task& task, Executor& executor)
    : task_(task), executor_(executor) {
  // A task an earlier run of this worker started: find it again, or fail it at the first step.
  if (state() >= api::TASK_STATE_STARTING && !finished()) {
    auto runner = executor_.Adopt(task_);
    if (runner.ok()) {
      runner_ = *std::move(runner);
      started_ = true;
    } else {
      lost_ = std::string(runner.status().message());
    }
  }
}

TaskController::~TaskController() {
  if (runner_ != nullptr) (void)runner_->Remove();
}

void TaskController::Update(const api::Task& task) {
  // The manager's copy may lag behind what this worker reported: keep the observed state,
  // take the rest (desired state, spec).
  const api::TaskStatus observed = task_.status();
  task_ = task;
  if (observed.state() >= task_.status().state()) *task_.mutable_status() = observed;
}

void TaskController::Move(api::TaskState to, const std::string& message, const std::string& err,
                          absl::Time now, std::vector<api::TaskStatus>& out) {
  if (to <= state()) return;  // forward only
  api::TaskStatus& s = *task_.mutable_status();
  s.set_state(to);
  s.set_message(message);
  s.set_err(err);
  const int64_t ns = absl::ToUnixNanos(now);
  s.mutable_timestamp()->set_seconds(ns / 1000000000);
  s.mutable_timestamp()->set_nanos(static_cast<int32_t>(ns % 1000000000));
  out.push_back(s);
}

std::vector<api::TaskStatus> TaskController::Step(absl::Time now) {
  std::vector<api::TaskStatus> out;
  if (finished()) return out;
  if (!lost_.empty()) {
    Move(api::TASK_STATE_FAILED, "lost on worker restart", lost_, now, out);
    return out;
  }

  // Asked to stop: stop what runs; what never started just stops.
  if (task_.desired_state() > api::TASK_STATE_RUNNING) {
    if (started_ && runner_ != nullptr) {
      if (absl::Status s = runner_->Stop(GracePeriod(task_)); !s.ok()) {
        Move(api::TASK_STATE_FAILED, "stopping failed", std::string(s.message()), now, out);
        return out;
      }
    }
    Move(api::TASK_STATE_SHUTDOWN, "shutdown", "", now, out);
    return out;
  }

  if (state() < api::TASK_STATE_ACCEPTED) Move(api::TASK_STATE_ACCEPTED, "accepted", "", now, out);
  if (state() < api::TASK_STATE_PREPARING) {
    auto runner = executor_.Runner(task_);
    if (!runner.ok()) {
      Move(api::TASK_STATE_REJECTED, "rejected", std::string(runner.status().message()), now, out);
      return out;
    }
    runner_ = *std::move(runner);
    Move(api::TASK_STATE_PREPARING, "preparing", "", now, out);
  }
  if (state() < api::TASK_STATE_READY) {
    if (runner_ == nullptr) {
      // Adopted mid-way (a restarted worker): prepare again.
      auto runner = executor_.Runner(task_);
      if (!runner.ok()) {
        Move(api::TASK_STATE_REJECTED, "rejected", std::string(runner.status().message()), now,
             out);
        return out;
      }
      runner_ = *std::move(runner);
    }
    if (absl::Status s = runner_->Prepare(); !s.ok()) {
      Move(api::TASK_STATE_REJECTED, "preparing failed", std::string(s.message()), now, out);
      return out;
    }
    Move(api::TASK_STATE_READY, "prepared", "", now, out);
  }
  // A delayed start waits here until the manager wants it running.
  if (task_.desired_state() < api::TASK_STATE_RUNNING) return out;
  if (state() < api::TASK_STATE_STARTING) {
    Move(api::TASK_STATE_STARTING, "starting", "", now, out);
    if (absl::Status s = runner_->Start(); !s.ok()) {
      Move(api::TASK_STATE_FAILED, "starting failed", std::string(s.message()), now, out);
      return out;
    }
    started_ = true;
    Move(api::TASK_STATE_RUNNING, "started", "", now, out);
  }
  if (runner_ != nullptr) {
    if (std::optional<Exit> exit = runner_->Poll()) {
      if (exit->code == 0 && exit->error.empty()) {
        Move(api::TASK_STATE_COMPLETE, "finished", "", now, out);
      } else {
        Move(api::TASK_STATE_FAILED, "failed",
             exit->error.empty() ? absl::StrCat("task: non-zero exit (", exit->code, ")")
                                 : absl::StrCat("task: ", exit->error, " (exit ", exit->code, ")"),
             now, out);
      }
    }
  }
  return out;
}

}  // namespace shoal::worker
