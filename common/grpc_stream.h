// Server streams written from any thread, over gRPC's callback API: a long-lived stream that is
// mostly idle (a worker's session, assignments or log subscriptions) costs no thread.
//
//   auto* reactor = new WriteStreamReactor<api::SessionMessage>();   // gRPC deletes it (OnDone)
//   reactor->SetOnCancel([...] { forget the stream });
//   std::shared_ptr<StreamOutbox<api::SessionMessage>> box = reactor->box();
//   box->Send(message);       // from any thread, queued in order
//   box->End(status);         // Finish after what is queued
//   return reactor;
//
// An Outbox has at most one write in flight; Finish comes after the last write. Once Send has
// started a write, End defers Finish to that write's completion, so the reactor outlives every
// call made on it, and the outbox (shared) outlives the reactor: calls on it after the stream
// ended do nothing. The queue is not bounded: senders send little (assignments, subscriptions).
//
// Thread-safety: Send and End from any thread.
#pragma once

#include <grpcpp/grpcpp.h>

#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <utility>

#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "common/grpc_status.h"

namespace shoal {

template <typename Msg>
class StreamOutbox {
 public:
  explicit StreamOutbox(grpc::ServerWriteReactor<Msg>* reactor) : reactor_(reactor) {}

  void Send(const Msg& m) {
    const Msg* start = nullptr;
    {
      absl::MutexLock lock(&mu_);
      if (ending_) return;
      queue_.push_back(m);
      if (!writing_) {
        writing_ = true;
        current_ = std::move(queue_.front());
        queue_.pop_front();
        start = &current_;
      }
    }
    if (start != nullptr) reactor_->StartWrite(start);
  }

  void End(const grpc::Status& s) {
    {
      absl::MutexLock lock(&mu_);
      if (ending_) return;
      ending_ = true;
      end_ = s;
      if (writing_) return;  // OnWriteDone finishes
      finished_ = true;
    }
    reactor_->Finish(s);
  }

  void OnWriteDone(bool ok) {
    const Msg* start = nullptr;
    std::optional<grpc::Status> finish;
    {
      absl::MutexLock lock(&mu_);
      if (!ok) {
        ending_ = true;
        queue_.clear();
        if (!end_) end_ = grpc::Status(grpc::StatusCode::CANCELLED, "the client went away");
      }
      if (!queue_.empty()) {
        current_ = std::move(queue_.front());
        queue_.pop_front();
        start = &current_;
      } else {
        writing_ = false;
        if (ending_ && !finished_) {
          finished_ = true;
          finish = end_;
        }
      }
    }
    if (start != nullptr) reactor_->StartWrite(start);
    if (finish) reactor_->Finish(*finish);
  }

 private:
  grpc::ServerWriteReactor<Msg>* const reactor_;
  absl::Mutex mu_;
  std::deque<Msg> queue_ ABSL_GUARDED_BY(mu_);
  // The message being written; only the write in flight touches it.
  Msg current_;
  bool writing_ ABSL_GUARDED_BY(mu_) = false;
  bool ending_ ABSL_GUARDED_BY(mu_) = false;
  bool finished_ ABSL_GUARDED_BY(mu_) = false;
  std::optional<grpc::Status> end_ ABSL_GUARDED_BY(mu_);
};

// A component's sink interface (Send(const Msg&), End(const absl::Status&)) over an outbox.
template <typename Msg, typename SinkBase>
class OutboxSink final : public SinkBase {
 public:
  explicit OutboxSink(std::shared_ptr<StreamOutbox<Msg>> box) : box_(std::move(box)) {}
  void Send(const Msg& m) override { box_->Send(m); }
  void End(const absl::Status& why) override { box_->End(ToGrpcStatus(why)); }

 private:
  std::shared_ptr<StreamOutbox<Msg>> box_;
};

template <typename Msg>
class WriteStreamReactor : public grpc::ServerWriteReactor<Msg> {
 public:
  WriteStreamReactor() : box_(std::make_shared<StreamOutbox<Msg>>(this)) {}
  std::shared_ptr<StreamOutbox<Msg>> box() { return box_; }
  // Called when the client cancels (before the stream is ended as CANCELLED).
  void SetOnCancel(std::function<void()> f) { on_cancel_ = std::move(f); }

  void OnWriteDone(bool ok) override { box_->OnWriteDone(ok); }
  void OnCancel() override {
    if (on_cancel_) on_cancel_();
    box_->End(grpc::Status(grpc::StatusCode::CANCELLED, "cancelled by the client"));
  }
  void OnDone() override { delete this; }

 private:
  std::shared_ptr<StreamOutbox<Msg>> box_;
  std::function<void()> on_cancel_;
};

}  // namespace shoal
