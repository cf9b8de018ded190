// Managers' stores on real Raft members (RocksDB logs under a directory, gRPC on loopback),
// for tests: start, kill and restart members, write through any of them, and wait (on the
// stores' own events) until a member applied an index.
#pragma once

#include <grpcpp/grpcpp.h>

#include <atomic>
#include <filesystem>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "manager/store/raft_binding.h"
#include "manager/store/store.h"
#include "raft/grpc_transport.h"
#include "raft/node.h"
#include "raft/rocksdb_log_store.h"

namespace shoal::manager::store::testing {

class CountingStateMachine : public StoreStateMachine {
 public:
  using StoreStateMachine::StoreStateMachine;
  absl::Status Restore(absl::string_view data) override {
    ++restores;
    return StoreStateMachine::Restore(data);
  }
  std::atomic<int> restores{0};
};

struct Member {
  uint64_t id = 0;
  std::string dir;
  std::string addr;
  std::unique_ptr<raft::RocksDbLogStore> log;
  std::unique_ptr<grpc::Server> server;  // destroyed after the transport
  std::unique_ptr<raft::GrpcTransport> transport;
  RaftProposer proposer;
  std::unique_ptr<Store> store;
  std::unique_ptr<CountingStateMachine> sm;
  std::unique_ptr<raft::Node> node;
  bool up = false;
};

class RaftCluster {
 public:
  struct Options {
    std::filesystem::path base;
    uint64_t snapshot_interval = 10000;
    // Called with each member's store as it starts (before Raft replays into it), and with
    // leadership changes (on the node thread: must not block). Optional.
    std::function<void(Member&)> on_start;
    std::function<void(Member&, bool leading, uint64_t term)> on_leadership;
    // Called before a member is killed, while everything still runs. Optional.
    std::function<void(Member&)> on_kill;
    const Clock* clock = nullptr;
    // Mutual TLS between the members, when set (plain gRPC on loopback otherwise): member
    // id's credentials, and the server name its peers' certificates carry.
    std::function<std::shared_ptr<grpc::ChannelCredentials>(uint64_t id)> channel_credentials;
    std::function<std::shared_ptr<grpc::ServerCredentials>(uint64_t id)> server_credentials;
    std::string tls_server_name;
  };

  explicit RaftCluster(Options options) : options_(std::move(options)) {}
  ~RaftCluster();

  // Bootstraps n members and starts them.
  void Bootstrap(int n);
  void Start(uint64_t id);
  // A new member `id` (the next after the others) with an empty store, started: it waits to
  // be added to the group, and learns everything from the leader.
  void StartJoining(uint64_t id);
  void Kill(uint64_t id);

  Member& M(uint64_t id) { return *members_[id - 1]; }
  size_t size() const { return members_.size(); }
  // The leader as some live member sees it (waiting up to `wait`), 0 when none.
  uint64_t Leader(absl::Duration wait = absl::Seconds(30));
  // Waits until member `id` applied `index`; false after `wait`.
  bool WaitApplied(uint64_t id, uint64_t index, absl::Duration wait = absl::Seconds(30));
  // Update through member `via`, retrying through leader changes (a write lost with one may
  // have been applied: `write` must be idempotent).
  absl::StatusOr<uint64_t> Write(uint64_t via, const std::function<absl::Status(WriteTx&)>& write,
                                 absl::Duration wait = absl::Seconds(30));

 private:
  Options options_;
  std::vector<std::unique_ptr<Member>> members_;
};

}  // namespace shoal::manager::store::testing
