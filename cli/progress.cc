#include "cli/progress.h"

#include <algorithm>
#include <tuple>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "cli/format.h"

namespace shoal::cli {
namespace {

bool Runnable(const api::Task& t) { return t.desired_state() <= api::TASK_STATE_RUNNING; }

bool Newer(const api::Task* a, const api::Task* b) {
  const auto ka = std::make_tuple(a->meta().created_at().seconds(), a->meta().created_at().nanos(),
                                  a->meta().version().index());
  const auto kb = std::make_tuple(b->meta().created_at().seconds(), b->meta().created_at().nanos(),
                                  b->meta().version().index());
  return ka > kb;
}

// The task to show for one slot (or node): the newest of the current spec that should run;
// else the newest of the current spec (a failed one, say); else the newest that should run.
const api::Task* Current(std::vector<const api::Task*> group, uint64_t target) {
  std::sort(group.begin(), group.end(), Newer);
  for (const api::Task* t : group) {
    if (t->spec_version().index() == target && Runnable(*t)) return t;
  }
  for (const api::Task* t : group) {
    if (t->spec_version().index() == target) return t;
  }
  for (const api::Task* t : group) {
    if (Runnable(*t)) return t;
  }
  return nullptr;
}

SlotProgress Describe(std::string label, const api::Task* t, uint64_t target, api::TaskState goal) {
  SlotProgress p;
  p.label = std::move(label);
  if (t == nullptr) return p;
  p.state = t->status().state();
  if (!t->status().err().empty()) {
    p.message = t->status().err();
  } else if (p.state == api::TASK_STATE_PENDING) {
    p.message = t->status().message();
  } else if (p.state == api::TASK_STATE_FAILED || p.state == api::TASK_STATE_REJECTED) {
    p.message = "no error reported";
  }
  p.done = t->spec_version().index() == target && t->status().state() == goal &&
           (goal == api::TASK_STATE_COMPLETE || Runnable(*t));
  return p;
}

}  // namespace

Progress ComputeProgress(const api::Service& service, const std::vector<api::Task>& tasks,
                         const std::map<std::string, std::string>& hostnames, Waiting waiting) {
  Progress p;
  const uint64_t target = service.spec_version().index();
  const auto& status = service.update_status();
  using U = api::UpdateStatus;
  if (waiting == Waiting::kUpdate) {
    if (status.state() == U::UPDATE_STATE_PAUSED) {
      p.failure = status.message().empty() ? "update paused" : status.message();
    } else if (status.state() == U::UPDATE_STATE_ROLLBACK_STARTED ||
               status.state() == U::UPDATE_STATE_ROLLBACK_PAUSED ||
               status.state() == U::UPDATE_STATE_ROLLBACK_COMPLETED) {
      p.failure = status.message().empty() ? "update rolled back" : status.message();
    }
  } else if (waiting == Waiting::kRollback && status.state() == U::UPDATE_STATE_ROLLBACK_PAUSED) {
    p.failure = status.message().empty() ? "rollback paused" : status.message();
  }

  p.job = service.spec().has_replicated_job() || service.spec().has_global_job();
  const uint64_t iteration = service.job_status().job_iteration().index();
  const api::TaskState goal = p.job ? api::TASK_STATE_COMPLETE : api::TASK_STATE_RUNNING;
  std::vector<const api::Task*> mine;
  for (const api::Task& t : tasks) {
    if (p.job && t.job_iteration().index() != iteration) continue;
    mine.push_back(&t);
  }

  if (service.spec().has_replicated() || service.spec().has_replicated_job() ||
      service.spec().mode_case() == api::ServiceSpec::MODE_NOT_SET) {
    uint64_t n = 1;
    if (service.spec().has_replicated()) {
      n = service.spec().replicated().replicas();
    } else if (service.spec().has_replicated_job()) {
      const auto& job = service.spec().replicated_job();
      n = job.has_total_completions() ? job.total_completions()
                                      : (job.has_max_concurrent() ? job.max_concurrent() : 1);
    }
    std::map<uint64_t, std::vector<const api::Task*>> slots;
    for (const api::Task* t : mine) slots[t->slot()].push_back(t);
    bool extra = false;
    for (const auto& [slot, group] : slots) {
      const size_t runnable = static_cast<size_t>(std::count_if(
          group.begin(), group.end(), [](const api::Task* t) { return Runnable(*t); }));
      if (!p.job && ((slot < 1 || slot > n) ? runnable > 0 : runnable > 1)) extra = true;
    }
    if (p.job) {
      // A job's slots are its completions: count them, show the ones at work.
      for (const api::Task* t : mine) p.done += t->status().state() == api::TASK_STATE_COMPLETE;
      p.done = std::min<uint64_t>(p.done, n);
    }
    for (uint64_t s = 1; s <= n; ++s) {
      auto it = slots.find(s);
      SlotProgress sp =
          Describe(absl::StrCat(s, "/", n),
                   it == slots.end() ? nullptr : Current(it->second, target), target, goal);
      if (!p.job) p.done += sp.done;
      p.slots.push_back(std::move(sp));
    }
    p.total = n;
    p.converged = p.done == n && !extra;
    return p;
  }

  // Global modes: one task per node.
  std::map<std::string, std::vector<const api::Task*>> nodes;
  for (const api::Task* t : mine) {
    if (t->node_id().empty()) continue;
    if (!p.job && !Runnable(*t)) continue;
    nodes[t->node_id()].push_back(t);
  }
  for (const auto& [node, group] : nodes) {
    auto h = hostnames.find(node);
    std::string label = h != hostnames.end() && !h->second.empty() ? h->second : ShortId(node);
    SlotProgress sp = Describe(label, Current(group, target), target, goal);
    p.done += sp.done;
    p.slots.push_back(std::move(sp));
  }
  p.total = p.slots.size();
  p.converged = p.total > 0 && p.done == p.total;
  return p;
}

std::string SlotLine(const SlotProgress& slot) {
  const std::string state = TaskStateName(slot.state);
  if (slot.state == api::TASK_STATE_FAILED || slot.state == api::TASK_STATE_REJECTED ||
      (!slot.message.empty() && slot.state == api::TASK_STATE_PENDING)) {
    return absl::StrFormat("%s: %-10s%s", slot.label, state, slot.message);
  }
  // docker's 50-character bar; NEW..RUNNING (COMPLETE for jobs) fill it.
  static const api::TaskState kSteps[] = {
      api::TASK_STATE_NEW,      api::TASK_STATE_PENDING,   api::TASK_STATE_ASSIGNED,
      api::TASK_STATE_ACCEPTED, api::TASK_STATE_PREPARING, api::TASK_STATE_READY,
      api::TASK_STATE_STARTING, api::TASK_STATE_RUNNING,   api::TASK_STATE_COMPLETE};
  constexpr int kWidth = 50;
  constexpr int kFull = 8;  // RUNNING (and beyond) is a full bar
  int step = 0;
  for (int i = 0; i < 9; ++i) {
    if (slot.state >= kSteps[i]) step = i;
  }
  const int filled = std::min(kWidth, kWidth * std::min(step + 1, kFull) / kFull);
  return absl::StrFormat("%s: %-10s[%s>%s]", slot.label, state, std::string(filled, '='),
                         std::string(kWidth - filled, ' '));
}

std::string OverallLine(const Progress& p) {
  if (p.job) return absl::StrCat("job progress: ", p.done, " out of ", p.total, " complete");
  return absl::StrCat("overall progress: ", p.done, " out of ", p.total, " tasks");
}

void ProgressPrinter::Show(const Progress& p) {
  std::vector<std::pair<std::string, std::string>> lines;
  lines.emplace_back("", OverallLine(p));
  for (const SlotProgress& s : p.slots) lines.emplace_back(s.label, SlotLine(s));
  if (tty_) {
    if (drawn_ > 0) out_ << "\x1b[" << drawn_ << "A\x1b[J";
    for (const auto& [label, line] : lines) out_ << "\x1b[2K" << line << "\n";
    drawn_ = lines.size();
    out_.flush();
    return;
  }
  for (const auto& [label, line] : lines) {
    if (label.empty()) {
      if (line != last_overall_) out_ << line << "\n";
      last_overall_ = line;
      continue;
    }
    auto& last = last_lines_[label];
    if (line != last) out_ << line << "\n";
    last = line;
  }
  out_.flush();
}

}  // namespace shoal::cli
