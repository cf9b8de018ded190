#include "manager/scheduling/scheduling_loop.h"

#include <utility>

#include "absl/strings/str_cat.h"

namespace shoal::manager::scheduling {

using store::Event;
using store::Kind;
using store::ReadTx;
using store::WriteTx;

namespace {

google::protobuf::Timestamp ToProto(absl::Time t) {
  google::protobuf::Timestamp ts;
  const int64_t nanos = absl::ToUnixNanos(t);
  ts.set_seconds(nanos / 1000000000);
  ts.set_nanos(static_cast<int32_t>(nanos % 1000000000));
  return ts;
}

}  // namespace

SchedulingLoop::SchedulingLoop(Options options)
    : options_(std::move(options)),
      clock_(options_.clock != nullptr ? *options_.clock : RealClock()) {}

SchedulingLoop::~SchedulingLoop() { Stop(); }

void SchedulingLoop::Resync() {
  scheduler_ = std::make_unique<scheduler::Scheduler>(clock_);
  loop_.set_watch(options_.store->Watch(
      [](const Event& e) { return e.kind == Kind::kNode || e.kind == Kind::kTask; },
      [&](const ReadTx& tx) {
        for (const api::Node* n : tx.List<api::Node>()) scheduler_->UpsertNode(*n);
        for (const api::Task* t : tx.List<api::Task>()) scheduler_->UpsertTask(*t);
      }));
  dirty_ = true;
}

void SchedulingLoop::Handle(const Event& e) {
  switch (e.type) {
    case Event::Type::kCommit:
      return;
    case Event::Type::kRemove:
      if (const auto* n = e.As<api::Node>()) scheduler_->RemoveNode(n->meta().id());
      if (const auto* t = e.As<api::Task>()) scheduler_->RemoveTask(t->meta().id());
      break;
    case Event::Type::kCreate:
    case Event::Type::kUpdate:
      if (const auto* n = e.As<api::Node>()) scheduler_->UpsertNode(*n);
      if (const auto* t = e.As<api::Task>()) scheduler_->UpsertTask(*t);
      break;
  }
  dirty_ = true;
}

size_t SchedulingLoop::Step(absl::Time deadline) {
  if (loop_.watch() == nullptr) Resync();
  // The first event may wait; the rest of the burst is taken without waiting.
  absl::Time wait_until = dirty_ ? absl::InfinitePast() : deadline;
  while (true) {
    auto e = loop_.watch()->Next(wait_until);
    if (!e.ok()) {
      Resync();
      break;
    }
    if (!e->has_value()) break;
    Handle(**e);
    wait_until = absl::InfinitePast();
  }
  if (!dirty_) return 0;
  dirty_ = false;
  return ScheduleAndWrite();
}

size_t SchedulingLoop::ScheduleAndWrite() {
  const std::vector<scheduler::Scheduler::Decision> decisions = scheduler_->Schedule();
  if (decisions.empty()) return 0;
  const absl::Time now = clock_.Now();
  auto batch = options_.store->StartBatch(options_.leader_term);
  size_t assigned = 0;
  for (const auto& d : decisions) {
    absl::Status s = batch->Add([&](WriteTx& tx) -> absl::Status {
      const api::Task* stored = tx.Get<api::Task>(d.task_id);
      // Changed since the scheduler saw it: the watch brings the change; nothing to write.
      if (stored == nullptr || stored->status().state() != api::TASK_STATE_PENDING ||
          stored->desired_state() > api::TASK_STATE_RUNNING) {
        return absl::OkStatus();
      }
      api::Task t = *stored;
      if (d.node_id.empty()) {
        if (t.status().err() == d.reason) return absl::OkStatus();
        t.mutable_status()->set_err(d.reason);
        t.mutable_status()->set_message("pending task scheduling");
      } else {
        t.set_node_id(d.node_id);
        t.mutable_status()->set_state(api::TASK_STATE_ASSIGNED);
        t.mutable_status()->set_message("scheduler assigned task to node");
        t.mutable_status()->clear_err();
        t.clear_assigned_generic_resources();
        for (const auto& g : d.generic) *t.add_assigned_generic_resources() = g;
        ++assigned;
      }
      *t.mutable_status()->mutable_timestamp() = ToProto(now);
      return tx.Update(t);
    });
    if (!s.ok()) ++write_failures_;
  }
  const absl::Status written = batch->Finish();
  if (!written.ok()) ++write_failures_;
  // Follow the store, whatever was written: each decided task, as stored now.
  assigned = 0;
  options_.store->View([&](const ReadTx& tx) {
    for (const auto& d : decisions) {
      const api::Task* t = tx.Get<api::Task>(d.task_id);
      if (t == nullptr) {
        scheduler_->RemoveTask(d.task_id);
        continue;
      }
      scheduler_->UpsertTask(*t);
      if (!d.node_id.empty() && t->node_id() == d.node_id &&
          t->status().state() == api::TASK_STATE_ASSIGNED) {
        ++assigned;
      }
    }
  });
  assigned_ += assigned;
  if (!written.ok()) {
    // Some assignments were not written (a conflict, or leadership lost): those tasks are
    // pending again in the scheduler; try again on the next step.
    dirty_ = true;
  }
  return assigned;
}

void SchedulingLoop::Start() {
  loop_.Start([this](absl::Time deadline) { Step(deadline); });
}

void SchedulingLoop::Stop() { loop_.Stop(); }

}  // namespace shoal::manager::scheduling
