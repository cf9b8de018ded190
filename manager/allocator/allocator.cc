#include "manager/allocator/allocator.h"

#include <vector>

#include "absl/strings/str_cat.h"

namespace shoal::manager::allocator {

using store::Event;
using store::Kind;
using store::ReadTx;
using store::WriteTx;

absl::Status CheckReferences(const api::Task& task, const ReadTx& tx) {
  const api::ContainerSpec& c = task.spec().container();
  for (const api::SecretReference& r : c.secrets()) {
    if (tx.Get<api::Secret>(r.secret_id()) == nullptr) {
      return absl::NotFoundError(
          absl::StrCat("secret ", r.secret_name(), " (id ", r.secret_id(), ") not found"));
    }
  }
  for (const api::ConfigReference& r : c.configs()) {
    if (tx.Get<api::Config>(r.config_id()) == nullptr) {
      return absl::NotFoundError(
          absl::StrCat("config ", r.config_name(), " (id ", r.config_id(), ") not found"));
    }
  }
  for (const api::NetworkAttachmentConfig& n : task.spec().networks()) {
    if (tx.Get<api::Network>(n.target()) == nullptr) {
      return absl::NotFoundError(absl::StrCat("network ", n.target(), " not found"));
    }
  }
  return absl::OkStatus();
}

std::optional<api::Task> Allocate(const api::Task& task, const ReadTx& tx) {
  if (task.status().state() != api::TASK_STATE_NEW ||
      task.desired_state() > api::TASK_STATE_RUNNING) {
    return std::nullopt;
  }
  api::Task out = task;
  const absl::Status refs = CheckReferences(task, tx);
  if (refs.ok()) {
    out.mutable_status()->set_state(api::TASK_STATE_PENDING);
    out.mutable_status()->set_message("pending task scheduling");
    out.mutable_status()->clear_err();
    return out;
  }
  const std::string err = absl::StrCat("cannot allocate: ", refs.message());
  if (task.status().err() == err) return std::nullopt;
  out.mutable_status()->set_err(err);
  return out;
}

AllocatorLoop::~AllocatorLoop() { Stop(); }

void AllocatorLoop::Resync() {
  loop_.set_watch(options_.store->Watch([](const Event& e) {
    return e.kind == Kind::kTask || e.kind == Kind::kSecret || e.kind == Kind::kConfig ||
           e.kind == Kind::kNetwork;
  }));
  all_dirty_ = true;
}

size_t AllocatorLoop::Step(absl::Time deadline) {
  if (loop_.watch() == nullptr) Resync();
  absl::Time wait_until = (all_dirty_ || !dirty_.empty()) ? absl::InfinitePast() : deadline;
  while (true) {
    auto e = loop_.watch()->Next(wait_until);
    if (!e.ok()) {
      Resync();
      break;
    }
    if (!e->has_value()) break;
    const Event& ev = **e;
    wait_until = absl::InfinitePast();
    if (ev.type == Event::Type::kCommit || ev.type == Event::Type::kRemove) continue;
    if (const auto* t = ev.As<api::Task>()) {
      if (t->status().state() == api::TASK_STATE_NEW) dirty_.insert(t->meta().id());
    } else {
      all_dirty_ = true;  // a reference may exist now
    }
  }
  if (!all_dirty_ && dirty_.empty()) return 0;
  std::vector<api::Task> writes;
  options_.store->View([&](const ReadTx& tx) {
    if (all_dirty_) {
      for (const api::Task* t : tx.List<api::Task>()) {
        if (t->status().state() == api::TASK_STATE_NEW) dirty_.insert(t->meta().id());
      }
    }
    for (const std::string& id : dirty_) {
      const api::Task* t = tx.Get<api::Task>(id);
      if (t == nullptr) continue;
      if (auto out = Allocate(*t, tx)) writes.push_back(std::move(*out));
    }
  });
  dirty_.clear();
  all_dirty_ = false;
  if (writes.empty()) return 0;
  auto batch = options_.store->StartBatch(options_.leader_term);
  for (const api::Task& t : writes) {
    (void)batch->Add([&](WriteTx& tx) { return tx.Update(t); });
  }
  const absl::Status s = batch->Finish();
  if (!s.ok()) {
    // Changed meanwhile: look at them again from the store.
    for (const api::Task& t : writes) dirty_.insert(t.meta().id());
    return 0;
  }
  return writes.size();
}

void AllocatorLoop::Start() {
  loop_.Start([this](absl::Time deadline) { Step(deadline); });
}

void AllocatorLoop::Stop() { loop_.Stop(); }

}  // namespace shoal::manager::allocator
