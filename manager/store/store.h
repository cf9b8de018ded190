// The manager's replicated store: every cluster object (nodes, services, tasks, secrets,
// configs, networks, the cluster) in memory, with indexes, read and write transactions and
// watches. A write transaction becomes one Raft entry (api::StoreTransaction) and is applied,
// on commit, on every manager in the same order, so every manager holds the same objects.
//
//   Store store(proposer);
//   absl::StatusOr<uint64_t> index = store.Update([&](WriteTx& tx) {
//     const api::Service* s = tx.Get<api::Service>(id);
//     if (s == nullptr) return absl::NotFoundError(...);
//     api::Service changed = *s;            // meta.version as read: the update is a CAS
//     changed.mutable_spec()->...;
//     return tx.Update(changed);
//   });
//
// Rules:
//   - An object's meta.version.index is the Raft index of its last write, set on apply. An
//     update or removal names the version it read; if the object changed since, the whole
//     transaction fails with ABORTED (callers re-read and retry) and changes nothing.
//   - Names of services, secrets, configs, networks and the cluster are unique per kind,
//     compared case-insensitively (as SwarmKit does); a clash fails with ALREADY_EXISTS.
//   - A transaction holds at most 200 changes and 1.5 MiB (SwarmKit's limits): more is
//     refused with RESOURCE_EXHAUSTED before anything is proposed. `Batch` spreads many changes
//     over as many transactions as they need.
//   - Apply checks every change against the state the entry meets, so it is deterministic:
//     writes proposed concurrently are each applied or refused whole, in log order.
//   - Watchers see each applied transaction's changes in order, then a commit event; a watcher
//     that falls too far behind is closed (its owner re-lists, as level-triggered code does).
//     A snapshot restore closes every watcher.
//
// Thread-safety: every method is thread-safe. Apply, SnapshotLater and Restore come from the
// Raft node's thread; reads and writes from any other (Update blocks until applied here, so
// never call it from the node's thread). A transaction's function must not call the store
// itself (it runs under the store's lock): it reads through its transaction.
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/clock.h"
#include "proto/objects.pb.h"
#include "proto/store.pb.h"

namespace shoal::manager::store {

enum class Kind { kNode, kService, kTask, kSecret, kConfig, kNetwork, kCluster };

// "node", "service", ...
const char* KindName(Kind kind);

template <typename T>
struct KindOf;
template <>
struct KindOf<api::Node> {
  static constexpr Kind value = Kind::kNode;
};
template <>
struct KindOf<api::Service> {
  static constexpr Kind value = Kind::kService;
};
template <>
struct KindOf<api::Task> {
  static constexpr Kind value = Kind::kTask;
};
template <>
struct KindOf<api::Secret> {
  static constexpr Kind value = Kind::kSecret;
};
template <>
struct KindOf<api::Config> {
  static constexpr Kind value = Kind::kConfig;
};
template <>
struct KindOf<api::Network> {
  static constexpr Kind value = Kind::kNetwork;
};
template <>
struct KindOf<api::Cluster> {
  static constexpr Kind value = Kind::kCluster;
};

using Object = google::protobuf::Message;
using ObjectPtr = std::shared_ptr<const Object>;

// SwarmKit's limits on one transaction.
inline constexpr size_t kMaxChangesPerTransaction = 200;
inline constexpr size_t kMaxTransactionBytes = 1536 * 1024;

// Where a write transaction goes: one Raft entry. Implemented over raft::Node by the manager,
// and by tests.
class Proposer {
 public:
  virtual ~Proposer() = default;
  // Proposes `data` as one entry. `done` is called once: OK after the entry was applied here
  // (Store::Apply returned), or the error (not the leader, stopped, ...). `leader_term`, when
  // not 0, proposes only as the leader of that term (raft::Node::ProposeAsLeader).
  virtual void Propose(std::string data, uint64_t leader_term,
                       std::function<void(absl::Status)> done) = 0;
};

// A change seen by a watcher.
struct Event {
  enum class Type { kCreate, kUpdate, kRemove, kCommit };
  Type type = Type::kCommit;
  Kind kind = Kind::kNode;
  // The object as written (as it was, for kRemove); null for kCommit.
  ObjectPtr object;
  // The Raft index of the transaction.
  uint64_t index = 0;

  // The object as T, or null when it is another kind.
  template <typename T>
  const T* As() const {
    return dynamic_cast<const T*>(object.get());
  }
};

class Store;

// A consistent view of the store (the state after some applied index). Pointers returned stay
// valid for the life of the transaction.
class ReadTx {
 public:
  // The Raft index of the last applied transaction.
  uint64_t index() const;

  template <typename T>
  const T* Get(absl::string_view id) const {
    return static_cast<const T*>(Find(KindOf<T>::value, id));
  }
  // By unique name (services, secrets, configs, networks, the cluster), case-insensitively.
  template <typename T>
  const T* GetByName(absl::string_view name) const {
    return static_cast<const T*>(FindByName(KindOf<T>::value, name));
  }
  // Every object of the kind, by id.
  template <typename T>
  std::vector<const T*> List() const {
    return Cast<T>(ListAll(KindOf<T>::value, nullptr));
  }
  // Objects whose labels (a node's spec labels, others' annotations) carry `key` (with
  // `value`, when given), by id.
  template <typename T>
  std::vector<const T*> ListByLabel(absl::string_view key,
                                    std::optional<absl::string_view> value = std::nullopt) const {
    return Cast<T>(ListAll(KindOf<T>::value, [&](const Object& o) {
      const auto& labels = LabelsOf(KindOf<T>::value, o);
      auto it = labels.find(std::string(key));
      return it != labels.end() && (!value || it->second == *value);
    }));
  }

  // Type-erased forms.
  virtual const Object* Find(Kind kind, absl::string_view id) const;
  virtual const Object* FindByName(Kind kind, absl::string_view name) const;
  std::vector<const Object*> ListAll(Kind kind,
                                     const std::function<bool(const Object&)>& keep) const;
  static const google::protobuf::Map<std::string, std::string>& LabelsOf(Kind kind,
                                                                         const Object& o);

  std::vector<const api::Task*> TasksOfService(absl::string_view service_id) const;
  std::vector<const api::Task*> TasksOnNode(absl::string_view node_id) const;
  std::vector<const api::Task*> TasksInSlot(absl::string_view service_id, uint64_t slot) const;
  std::vector<const api::Task*> TasksWithDesiredState(api::TaskState state) const;

 protected:
  friend class Store;
  explicit ReadTx(const Store& store) : store_(store) {}
  virtual ~ReadTx() = default;
  template <typename T>
  static std::vector<const T*> Cast(const std::vector<const Object*>& in) {
    std::vector<const T*> out;
    out.reserve(in.size());
    for (const Object* o : in) out.push_back(static_cast<const T*>(o));
    return out;
  }
  const Store& store_;
};

// A write transaction: reads see its own changes. Create, Update and Remove check what they
// can at once (INVALID_ARGUMENT for an object without id, NOT_FOUND, ALREADY_EXISTS,
// ABORTED for a stale version); apply checks again against the state the entry meets.
class WriteTx : public ReadTx {
 public:
  // meta.id must be set; meta.version and the times are set by the store.
  template <typename T>
  absl::Status Create(const T& object) {
    return Change(api::StoreAction::KIND_CREATE, KindOf<T>::value, object);
  }
  // `object.meta().version()` must be the stored one (as read).
  template <typename T>
  absl::Status Update(const T& object) {
    return Change(api::StoreAction::KIND_UPDATE, KindOf<T>::value, object);
  }
  template <typename T>
  absl::Status Remove(absl::string_view id) {
    return RemoveById(KindOf<T>::value, id);
  }

  size_t changes() const { return static_cast<size_t>(tx_.actions_size()); }
  size_t bytes() const { return bytes_; }

  // Reads see the transaction's own changes (List and the task indexes do not).
  const Object* Find(Kind kind, absl::string_view id) const override;
  const Object* FindByName(Kind kind, absl::string_view name) const override;

 private:
  friend class Store;
  WriteTx(const Store& store, absl::Time now) : ReadTx(store), now_(now) {}
  absl::Status Change(api::StoreAction::Kind action, Kind kind, const Object& object);
  absl::Status RemoveById(Kind kind, absl::string_view id);
  absl::Status Append(api::StoreAction action, Kind kind, const std::string& id,
                      ObjectPtr written);

  absl::Time now_;
  // A batch's open transaction, which this one reads through.
  const WriteTx* parent_ = nullptr;
  api::StoreTransaction tx_;
  size_t bytes_ = 0;
  // The latest write of each (kind, id) in this transaction; null for a removal.
  std::map<std::pair<Kind, std::string>, ObjectPtr> own_;
  // Names taken (lowercased -> id) or freed ("" id) by this transaction.
  std::map<std::pair<Kind, std::string>, std::string> own_names_;
};

// A watcher's queue of events.
class Watcher {
 public:
  using Filter = std::function<bool(const Event&)>;

  // The next event, waiting until `deadline`; nullopt when none came; the reason once closed
  // (UNAVAILABLE: the store restored a snapshot or stopped; RESOURCE_EXHAUSTED: it fell too
  // far behind; CANCELLED: Close).
  absl::StatusOr<std::optional<Event>> Next(absl::Time deadline = absl::InfinitePast());
  void Close();
  bool closed() const;

 private:
  friend class Store;
  Watcher(Filter filter, size_t limit) : filter_(std::move(filter)), limit_(limit) {}
  void Push(const Event& e);
  void CloseWith(absl::Status why);

  const Filter filter_;
  const size_t limit_;
  mutable absl::Mutex mu_;
  absl::CondVar cv_;
  std::deque<Event> queue_ ABSL_GUARDED_BY(mu_);
  absl::Status closed_ ABSL_GUARDED_BY(mu_);
};

class Store {
 private:
  struct Pending;

 public:
  struct Options {
    // Stamps created_at and updated_at (the proposer's clock, carried in the entry).
    const Clock* clock = nullptr;  // default RealClock()
    // Events a watcher may hold before it is closed.
    size_t watch_queue_limit = 100000;
    // Proposal ids are (nonce << 32 | counter); a fixed nonce makes them deterministic.
    std::optional<uint32_t> proposal_nonce;
  };

  explicit Store(Proposer* proposer) : Store(proposer, Options()) {}
  Store(Proposer* proposer, Options options);
  ~Store();

  // Runs `read` on a consistent view.
  void View(const std::function<void(const ReadTx&)>& read) const;

  // Runs `write`; if it returns OK and changed something, proposes the changes as one entry
  // and waits until it was applied here. Returns the entry's Raft index (0 when nothing
  // changed), `write`'s error, the transaction's (RESOURCE_EXHAUSTED when too large), apply's
  // (ABORTED, ALREADY_EXISTS, NOT_FOUND) or the proposal's (UNAVAILABLE, FAILED_PRECONDITION).
  absl::StatusOr<uint64_t> Update(const std::function<absl::Status(WriteTx&)>& write,
                                  uint64_t leader_term = 0);

  // Many changes over as many transactions as they need: each `Add` runs its function on the
  // open transaction, and when that would pass a limit, proposes the transaction so far and
  // runs it again on a fresh one. Proposals leave as they fill and are waited for together.
  class Batch {
   public:
    absl::Status Add(const std::function<absl::Status(WriteTx&)>& write);
    // Proposes what is left and waits for every proposal: the first error, or OK.
    absl::Status Finish();
    // Transactions proposed so far.
    size_t transactions() const { return proposed_; }

   private:
    friend class Store;
    Batch(Store& store, uint64_t leader_term);
    void Flush();
    Store& store_;
    const uint64_t leader_term_;
    std::unique_ptr<WriteTx> tx_;
    size_t proposed_ = 0;
    std::vector<std::shared_ptr<Pending>> pending_;
    absl::Status first_error_;
  };
  std::unique_ptr<Batch> StartBatch(uint64_t leader_term = 0);

  // Registers a watcher for events that pass `filter` (all when null), after running `read`
  // (when given) on the state it starts from: nothing applied between the two is missed.
  std::shared_ptr<Watcher> Watch(Watcher::Filter filter,
                                 const std::function<void(const ReadTx&)>& read = nullptr);

  // Raft's side (the state machine).
  void Apply(uint64_t index, absl::string_view data);
  // Captures the state now; the function serializes it (api::StoreSnapshot) on any thread.
  std::function<std::string()> SnapshotLater();
  // Replaces the state with a snapshot's; closes every watcher. INVALID_ARGUMENT for data that
  // does not parse, FAILED_PRECONDITION for a newer format; the state is unchanged then.
  absl::Status Restore(absl::string_view data);

  // Counts, for tests and metrics.
  uint64_t applied_index() const;
  uint64_t refused_transactions() const;

 private:
  friend class ReadTx;
  friend class WriteTx;
  struct Table {
    std::map<std::string, ObjectPtr, std::less<>> by_id;
    absl::flat_hash_map<std::string, std::string> by_name;  // lowercased name -> id
  };
  static constexpr int kKinds = 7;
  using TaskSet = std::set<std::string, std::less<>>;

  std::shared_ptr<Pending> Propose(WriteTx& tx, uint64_t leader_term);
  static absl::StatusOr<uint64_t> Wait(Pending& p);
  absl::Status Check(const api::StoreTransaction& tx) const ABSL_SHARED_LOCKS_REQUIRED(mu_);
  const Table& table(Kind kind) const ABSL_SHARED_LOCKS_REQUIRED(mu_) {
    return tables_[static_cast<int>(kind)];
  }
  Table& table(Kind kind) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return tables_[static_cast<int>(kind)];
  }
  void ApplyAction(const api::StoreAction& action, uint64_t index, std::vector<Event>& events)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void IndexTask(const api::Task& t, bool add) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void Publish(const std::vector<Event>& events) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_)
      ABSL_LOCKS_EXCLUDED(watchers_mu_);
  void Clear() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  Proposer* const proposer_;
  const Options options_;
  const Clock& clock_;
  const uint32_t nonce_;

  mutable absl::Mutex mu_;
  Table tables_[kKinds] ABSL_GUARDED_BY(mu_);
  // Task indexes: by service, by node, by (service, slot), by desired state.
  absl::flat_hash_map<std::string, TaskSet> tasks_by_service_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<std::string, TaskSet> tasks_by_node_ ABSL_GUARDED_BY(mu_);
  std::map<std::pair<std::string, uint64_t>, TaskSet> tasks_by_slot_ ABSL_GUARDED_BY(mu_);
  std::map<int, TaskSet> tasks_by_desired_ ABSL_GUARDED_BY(mu_);
  uint64_t applied_index_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t refused_ ABSL_GUARDED_BY(mu_) = 0;
  // Its own lock: Watch registers under the store's shared lock (so that no apply comes
  // between its read and its registration).
  absl::Mutex watchers_mu_ ABSL_ACQUIRED_AFTER(mu_);
  std::vector<std::shared_ptr<Watcher>> watchers_ ABSL_GUARDED_BY(watchers_mu_);

  absl::Mutex pending_mu_;
  uint32_t next_proposal_ ABSL_GUARDED_BY(pending_mu_) = 0;
  absl::flat_hash_map<uint64_t, std::shared_ptr<Pending>> pending_ ABSL_GUARDED_BY(pending_mu_);
};

}  // namespace shoal::manager::store
