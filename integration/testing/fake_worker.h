// A fake worker over the real Dispatcher API (gRPC with its own worker certificate): it opens
// a session with whichever manager leads (following the "shoal-leader-addr" trailer of the
// others), heartbeats at the period it is given, reads its assignments, and reports its tasks
// as a worker whose containers start at once would: RUNNING for a task wanted running
// (FAILED for an image named "broken", COMPLETE for "oneshot"), SHUTDOWN for a task asked to
// stop. Kill stops it
// dead, as a machine that loses power: no goodbye, its heartbeats just stop.
//
// Thread-safety: Start, Kill and the accessors from the test thread.
#pragma once

#include <grpcpp/grpcpp.h>

#include <atomic>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "proto/dispatcher.grpc.pb.h"

namespace shoal::integration {

class FakeWorker {
 public:
  // `managers`: the managers' API addresses; `tls_dir`: the worker's certificate (CN = id).
  FakeWorker(std::string id, std::vector<std::string> managers, std::string tls_dir,
             std::string cluster_id);
  ~FakeWorker();

  void Start();
  void Kill();

  const std::string& id() const { return id_; }
  // Tasks it runs now (reported RUNNING and not asked to stop).
  size_t running() const;
  // Sessions opened so far (a reconnection after a leader change opens another).
  int sessions() const { return sessions_.load(); }

 private:
  void Run();
  // One session with `addr` until it fails; returns the address to try next.
  std::string Serve(const std::string& addr);
  void Report(api::Dispatcher::Stub& stub, const std::string& session,
              const api::AssignmentsMessage& m);

  const std::string id_;
  const std::vector<std::string> managers_;
  const std::string tls_dir_;
  const std::string cluster_id_;
  std::atomic<bool> stop_{false};
  std::atomic<int> sessions_{0};
  std::thread thread_;

  mutable absl::Mutex mu_;
  std::map<std::string, api::Task> tasks_ ABSL_GUARDED_BY(mu_);
  // Contexts of the open calls, to cancel them on Kill.
  std::vector<grpc::ClientContext*> open_ ABSL_GUARDED_BY(mu_);
};

}  // namespace shoal::integration
