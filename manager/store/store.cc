#include "manager/store/store.h"

#include <algorithm>

#include "absl/random/random.h"
#include "google/protobuf/io/coded_stream.h"
#include "google/protobuf/io/zero_copy_stream_impl_lite.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"

namespace shoal::manager::store {
namespace {

constexpr uint32_t kSnapshotFormat = 1;

google::protobuf::Timestamp ToProto(absl::Time t) {
  google::protobuf::Timestamp ts;
  const int64_t nanos = absl::ToUnixNanos(t);
  ts.set_seconds(nanos / 1000000000);
  ts.set_nanos(static_cast<int32_t>(nanos % 1000000000));
  return ts;
}

// Every stored object has its meta as field 1 (proto/api_test checks it), and StoreObject
// and StoreSnapshot list the kinds in Kind's order: reflection spares a switch per use.
const api::Meta& MetaOf(Kind, const Object& o) {
  return static_cast<const api::Meta&>(
      o.GetReflection()->GetMessage(o, o.GetDescriptor()->FindFieldByNumber(1)));
}

api::Meta* MutableMeta(Kind, Object& o) {
  return static_cast<api::Meta*>(
      o.GetReflection()->MutableMessage(&o, o.GetDescriptor()->FindFieldByNumber(1)));
}

// StoreObject's field for `kind` (node = 1 ... cluster = 7).
const google::protobuf::FieldDescriptor* ObjectField(Kind kind) {
  return api::StoreObject::descriptor()->FindFieldByNumber(static_cast<int>(kind) + 1);
}

// StoreSnapshot's repeated field for `kind` (nodes = 2 ... clusters = 8).
const google::protobuf::FieldDescriptor* SnapshotField(Kind kind) {
  return api::StoreSnapshot::descriptor()->FindFieldByNumber(static_cast<int>(kind) + 2);
}

// The unique name, lowercased, for the kinds that have one; nullopt for the others.
std::optional<std::string> NameKey(Kind kind, const Object& o) {
  const api::Annotations* a = nullptr;
  switch (kind) {
    case Kind::kService:
      a = &static_cast<const api::Service&>(o).spec().annotations();
      break;
    case Kind::kSecret:
      a = &static_cast<const api::Secret&>(o).spec().annotations();
      break;
    case Kind::kConfig:
      a = &static_cast<const api::Config&>(o).spec().annotations();
      break;
    case Kind::kNetwork:
      a = &static_cast<const api::Network&>(o).spec().annotations();
      break;
    case Kind::kCluster:
      a = &static_cast<const api::Cluster&>(o).spec().annotations();
      break;
    case Kind::kNode:
    case Kind::kTask:
      return std::nullopt;
  }
  return absl::AsciiStrToLower(a->name());
}

void Pack(Kind kind, const Object& o, api::StoreObject* out) {
  out->GetReflection()->MutableMessage(out, ObjectField(kind))->CopyFrom(o);
}

// The object in `in` and its kind; nullopt when none is set.
std::optional<std::pair<Kind, std::unique_ptr<Object>>> Unpack(const api::StoreObject& in) {
  const int number = static_cast<int>(in.object_case());
  if (number < 1 || number > 7) return std::nullopt;
  const Kind kind = static_cast<Kind>(number - 1);
  const Object& o = in.GetReflection()->GetMessage(in, ObjectField(kind));
  std::unique_ptr<Object> copy(o.New());
  copy->CopyFrom(o);
  return std::make_pair(kind, std::move(copy));
}

}  // namespace

const char* KindName(Kind kind) {
  switch (kind) {
    case Kind::kNode:
      return "node";
    case Kind::kService:
      return "service";
    case Kind::kTask:
      return "task";
    case Kind::kSecret:
      return "secret";
    case Kind::kConfig:
      return "config";
    case Kind::kNetwork:
      return "network";
    case Kind::kCluster:
      return "cluster";
  }
  return "?";
}

// ---------------------------------------------------------------------------------------------
// Reads. The store's mutex is held (shared, or exclusive while applying) by whoever made the
// transaction.

uint64_t ReadTx::index() const {
  store_.mu_.AssertReaderHeld();
  return store_.applied_index_;
}

const Object* ReadTx::Find(Kind kind, absl::string_view id) const {
  store_.mu_.AssertReaderHeld();
  const auto& t = store_.table(kind).by_id;
  auto it = t.find(id);
  return it == t.end() ? nullptr : it->second.get();
}

const Object* ReadTx::FindByName(Kind kind, absl::string_view name) const {
  store_.mu_.AssertReaderHeld();
  const auto& names = store_.table(kind).by_name;
  auto it = names.find(absl::AsciiStrToLower(name));
  return it == names.end() ? nullptr : ReadTx::Find(kind, it->second);
}

std::vector<const Object*> ReadTx::ListAll(Kind kind,
                                           const std::function<bool(const Object&)>& keep) const {
  store_.mu_.AssertReaderHeld();
  std::vector<const Object*> out;
  for (const auto& [id, o] : store_.table(kind).by_id) {
    if (!keep || keep(*o)) out.push_back(o.get());
  }
  return out;
}

const google::protobuf::Map<std::string, std::string>& ReadTx::LabelsOf(Kind kind,
                                                                        const Object& o) {
  switch (kind) {
    case Kind::kNode:
      return static_cast<const api::Node&>(o).spec().annotations().labels();
    case Kind::kService:
      return static_cast<const api::Service&>(o).spec().annotations().labels();
    case Kind::kTask:
      return static_cast<const api::Task&>(o).annotations().labels();
    case Kind::kSecret:
      return static_cast<const api::Secret&>(o).spec().annotations().labels();
    case Kind::kConfig:
      return static_cast<const api::Config&>(o).spec().annotations().labels();
    case Kind::kNetwork:
      return static_cast<const api::Network&>(o).spec().annotations().labels();
    case Kind::kCluster:
      return static_cast<const api::Cluster&>(o).spec().annotations().labels();
  }
  return api::Annotations::default_instance().labels();
}

namespace {

std::vector<const api::Task*> TasksIn(const ReadTx& tx, const std::set<std::string, std::less<>>* ids) {
  std::vector<const api::Task*> out;
  if (ids == nullptr) return out;
  out.reserve(ids->size());
  for (const std::string& id : *ids) {
    if (const auto* t = tx.Get<api::Task>(id)) out.push_back(t);
  }
  return out;
}

template <typename Map, typename Key>
const typename Map::mapped_type* Lookup(const Map& m, const Key& k) {
  auto it = m.find(k);
  return it == m.end() ? nullptr : &it->second;
}

}  // namespace

std::vector<const api::Task*> ReadTx::TasksOfService(absl::string_view service_id) const {
  store_.mu_.AssertReaderHeld();
  return TasksIn(*this, Lookup(store_.tasks_by_service_, service_id));
}

std::vector<const api::Task*> ReadTx::TasksOnNode(absl::string_view node_id) const {
  store_.mu_.AssertReaderHeld();
  return TasksIn(*this, Lookup(store_.tasks_by_node_, node_id));
}

std::vector<const api::Task*> ReadTx::TasksInSlot(absl::string_view service_id,
                                                  uint64_t slot) const {
  store_.mu_.AssertReaderHeld();
  return TasksIn(*this, Lookup(store_.tasks_by_slot_,
                               std::make_pair(std::string(service_id), slot)));
}

std::vector<const api::Task*> ReadTx::TasksWithDesiredState(api::TaskState state) const {
  store_.mu_.AssertReaderHeld();
  return TasksIn(*this, Lookup(store_.tasks_by_desired_, static_cast<int>(state)));
}

// ---------------------------------------------------------------------------------------------
// Write transactions.

const Object* WriteTx::Find(Kind kind, absl::string_view id) const {
  auto it = own_.find({kind, std::string(id)});
  if (it != own_.end()) return it->second.get();
  if (parent_ != nullptr) return parent_->Find(kind, id);
  return ReadTx::Find(kind, id);
}

const Object* WriteTx::FindByName(Kind kind, absl::string_view name) const {
  const std::string key = absl::AsciiStrToLower(name);
  for (const WriteTx* t = this; t != nullptr; t = t->parent_) {
    auto it = t->own_names_.find({kind, key});
    if (it != t->own_names_.end()) return it->second.empty() ? nullptr : Find(kind, it->second);
  }
  const Object* stored = ReadTx::FindByName(kind, name);
  if (stored == nullptr) return nullptr;
  // As this transaction left it (renamed or removed: not under this name any more).
  const Object* now = Find(kind, MetaOf(kind, *stored).id());
  if (now == nullptr || NameKey(kind, *now) != key) return nullptr;
  return now;
}

absl::Status WriteTx::Append(api::StoreAction action, Kind kind, const std::string& id,
                             ObjectPtr written) {
  if (changes() >= kMaxChangesPerTransaction) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "transaction too large: a transaction holds at most ", kMaxChangesPerTransaction,
        " changes"));
  }
  const size_t size = action.ByteSizeLong();
  if (bytes_ + size > kMaxTransactionBytes) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "transaction too large: ", bytes_ + size, " bytes with this ", KindName(kind),
        "; a transaction holds at most ", kMaxTransactionBytes, " bytes"));
  }
  bytes_ += size;
  *tx_.add_actions() = std::move(action);
  own_[{kind, id}] = std::move(written);
  return absl::OkStatus();
}

absl::Status WriteTx::Change(api::StoreAction::Kind action, Kind kind, const Object& object) {
  const api::Meta& meta = MetaOf(kind, object);
  const std::string& id = meta.id();
  if (id.empty()) {
    return absl::InvalidArgumentError(absl::StrCat("a ", KindName(kind), " needs an id"));
  }
  const Object* current = Find(kind, id);
  std::unique_ptr<Object> written(object.New());
  written->CopyFrom(object);
  api::Meta* m = MutableMeta(kind, *written);
  const std::optional<std::string> name = NameKey(kind, object);
  if (name && name->empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat(KindName(kind), " ", id, " has no name"));
  }
  if (action == api::StoreAction::KIND_CREATE) {
    if (current != nullptr) {
      return absl::AlreadyExistsError(absl::StrCat(KindName(kind), " ", id, " exists"));
    }
    m->clear_version();
    *m->mutable_created_at() = ToProto(now_);
    *m->mutable_updated_at() = m->created_at();
  } else {
    if (current == nullptr) {
      return absl::NotFoundError(absl::StrCat(KindName(kind), " ", id, " not found"));
    }
    const api::Meta& stored = MetaOf(kind, *current);
    if (stored.version().index() != meta.version().index()) {
      return absl::AbortedError(absl::StrCat(
          KindName(kind), " ", id, " changed since it was read (version ",
          meta.version().index(), ", now ", stored.version().index(), "): read it again"));
    }
    *m->mutable_created_at() = stored.created_at();
    *m->mutable_updated_at() = ToProto(now_);
  }
  if (name) {
    const Object* holder = FindByName(kind, *name);
    if (holder != nullptr && MetaOf(kind, *holder).id() != id) {
      return absl::AlreadyExistsError(absl::StrCat(KindName(kind), " name \"", *name,
                                                   "\" is taken by ", KindName(kind), " ",
                                                   MetaOf(kind, *holder).id()));
    }
  }
  api::StoreAction a;
  a.set_kind(action);
  Pack(kind, *written, a.mutable_target());
  const std::optional<std::string> old_name =
      current != nullptr ? NameKey(kind, *current) : std::nullopt;
  absl::Status appended = Append(std::move(a), kind, id, ObjectPtr(std::move(written)));
  if (!appended.ok()) return appended;
  if (name) {
    if (old_name && *old_name != *name) own_names_[{kind, *old_name}] = "";
    own_names_[{kind, *name}] = id;
  }
  return absl::OkStatus();
}

absl::Status WriteTx::RemoveById(Kind kind, absl::string_view id) {
  const Object* current = Find(kind, id);
  if (current == nullptr) {
    return absl::NotFoundError(absl::StrCat(KindName(kind), " ", id, " not found"));
  }
  api::StoreAction a;
  a.set_kind(api::StoreAction::KIND_REMOVE);
  // The removal carries the object as read: its version is checked on apply.
  Pack(kind, *current, a.mutable_target());
  const std::optional<std::string> name = NameKey(kind, *current);
  absl::Status appended = Append(std::move(a), kind, std::string(id), nullptr);
  if (!appended.ok()) return appended;
  if (name) own_names_[{kind, *name}] = "";
  return absl::OkStatus();
}

// ---------------------------------------------------------------------------------------------
// Watchers.

absl::StatusOr<std::optional<Event>> Watcher::Next(absl::Time deadline) {
  absl::MutexLock lock(&mu_);
  while (queue_.empty() && closed_.ok()) {
    if (cv_.WaitWithDeadline(&mu_, deadline)) break;
  }
  if (!queue_.empty()) {
    Event e = std::move(queue_.front());
    queue_.pop_front();
    return std::optional<Event>(std::move(e));
  }
  if (!closed_.ok()) return closed_;
  return std::optional<Event>();
}

void Watcher::Close() { CloseWith(absl::CancelledError("watch closed")); }

bool Watcher::closed() const {
  absl::MutexLock lock(&mu_);
  return !closed_.ok();
}

void Watcher::Push(const Event& e) {
  absl::MutexLock lock(&mu_);
  if (!closed_.ok()) return;
  if (queue_.size() >= limit_) {
    queue_.clear();
    closed_ = absl::ResourceExhaustedError(absl::StrCat(
        "watch closed: it fell ", limit_, " events behind; list again and watch anew"));
    cv_.SignalAll();
    return;
  }
  queue_.push_back(e);
  cv_.Signal();
}

void Watcher::CloseWith(absl::Status why) {
  absl::MutexLock lock(&mu_);
  if (!closed_.ok()) return;
  queue_.clear();
  closed_ = std::move(why);
  cv_.SignalAll();
}

// ---------------------------------------------------------------------------------------------
// The store.

struct Store::Pending {
  absl::Mutex mu;
  bool done ABSL_GUARDED_BY(mu) = false;
  absl::StatusOr<uint64_t> result ABSL_GUARDED_BY(mu) = 0;

  void Complete(absl::StatusOr<uint64_t> r) {
    absl::MutexLock lock(&mu);
    if (done) return;
    done = true;
    result = std::move(r);
  }
};

Store::Store(Proposer* proposer, Options options)
    : proposer_(proposer),
      options_(std::move(options)),
      clock_(options_.clock != nullptr ? *options_.clock : RealClock()),
      nonce_(options_.proposal_nonce ? *options_.proposal_nonce
                                     : absl::Uniform<uint32_t>(absl::BitGen())) {}

Store::~Store() {
  absl::MutexLock lock(&watchers_mu_);
  for (auto& w : watchers_) w->CloseWith(absl::UnavailableError("the store stopped"));
  watchers_.clear();
}

void Store::View(const std::function<void(const ReadTx&)>& read) const {
  absl::ReaderMutexLock lock(&mu_);
  read(ReadTx(*this));
}

std::shared_ptr<Store::Pending> Store::Propose(WriteTx& tx, uint64_t leader_term) {
  auto p = std::make_shared<Pending>();
  uint64_t id;
  {
    absl::MutexLock lock(&pending_mu_);
    id = (static_cast<uint64_t>(nonce_) << 32) | ++next_proposal_;
    pending_[id] = p;
  }
  tx.tx_.set_id(id);
  std::string data = tx.tx_.SerializeAsString();
  proposer_->Propose(std::move(data), leader_term, [this, id, p](absl::Status s) {
    if (!s.ok()) {
      p->Complete(s);
    } else {
      // Applied: Apply completed it already, unless the entry failed to parse.
      p->Complete(absl::InternalError("the transaction was applied but not recognised"));
    }
    absl::MutexLock lock(&pending_mu_);
    pending_.erase(id);
  });
  return p;
}

absl::StatusOr<uint64_t> Store::Wait(Pending& p) {
  absl::MutexLock lock(&p.mu);
  p.mu.Await(absl::Condition(&p.done));
  return p.result;
}

absl::StatusOr<uint64_t> Store::Update(const std::function<absl::Status(WriteTx&)>& write,
                                       uint64_t leader_term) {
  WriteTx tx(*this, clock_.Now());
  {
    absl::ReaderMutexLock lock(&mu_);
    absl::Status s = write(tx);
    if (!s.ok()) return s;
  }
  if (tx.changes() == 0) return uint64_t{0};
  std::shared_ptr<Pending> p = Propose(tx, leader_term);
  return Wait(*p);
}

Store::Batch::Batch(Store& store, uint64_t leader_term)
    : store_(store), leader_term_(leader_term) {}

std::unique_ptr<Store::Batch> Store::StartBatch(uint64_t leader_term) {
  return std::unique_ptr<Batch>(new Batch(*this, leader_term));
}

void Store::Batch::Flush() {
  if (tx_ == nullptr || tx_->changes() == 0) return;
  pending_.push_back(store_.Propose(*tx_, leader_term_));
  ++proposed_;
  tx_.reset();
}

absl::Status Store::Batch::Add(const std::function<absl::Status(WriteTx&)>& write) {
  const absl::Time now = store_.clock_.Now();
  if (tx_ == nullptr) tx_.reset(new WriteTx(store_, now));
  // Run on a scratch transaction that reads through the open one; merge it when both fit in
  // one transaction, else propose the open one and let the scratch take its place.
  WriteTx scratch(store_, now);
  scratch.parent_ = tx_.get();
  {
    absl::ReaderMutexLock lock(&store_.mu_);
    absl::Status s = write(scratch);
    if (!s.ok()) return s;
  }
  if (tx_->changes() + scratch.changes() > kMaxChangesPerTransaction ||
      tx_->bytes() + scratch.bytes() > kMaxTransactionBytes) {
    Flush();
    tx_.reset(new WriteTx(store_, now));
  }
  for (auto& a : *scratch.tx_.mutable_actions()) *tx_->tx_.add_actions() = std::move(a);
  tx_->bytes_ += scratch.bytes_;
  for (auto& [key, o] : scratch.own_) tx_->own_[key] = std::move(o);
  for (auto& [key, id] : scratch.own_names_) tx_->own_names_[key] = std::move(id);
  return absl::OkStatus();
}

absl::Status Store::Batch::Finish() {
  Flush();
  absl::Status first;
  for (auto& p : pending_) {
    absl::StatusOr<uint64_t> r = Store::Wait(*p);
    if (!r.ok() && first.ok()) first = r.status();
  }
  pending_.clear();
  return first;
}

std::shared_ptr<Watcher> Store::Watch(Watcher::Filter filter,
                                      const std::function<void(const ReadTx&)>& read) {
  std::shared_ptr<Watcher> w(new Watcher(std::move(filter), options_.watch_queue_limit));
  absl::ReaderMutexLock lock(&mu_);
  if (read) read(ReadTx(*this));
  {
    // Registering needs the list itself: a second, exclusive section would let an apply in.
    // The list has its own small lock for that reason.
    absl::MutexLock wl(&watchers_mu_);
    watchers_.push_back(w);
  }
  return w;
}

absl::Status Store::Check(const api::StoreTransaction& tx) const {
  if (tx.actions_size() == 0) return absl::OkStatus();
  // Replay the changes on a transaction over the state as it is now: the same checks the
  // proposer made, against what the entry meets.
  WriteTx replay(*this, absl::UnixEpoch());
  for (const api::StoreAction& a : tx.actions()) {
    auto unpacked = Unpack(a.target());
    if (!unpacked) return absl::InvalidArgumentError("a change without an object");
    const auto& [kind, object] = *unpacked;
    absl::Status s;
    switch (a.kind()) {
      case api::StoreAction::KIND_CREATE:
      case api::StoreAction::KIND_UPDATE:
        s = replay.Change(a.kind(), kind, *object);
        break;
      case api::StoreAction::KIND_REMOVE: {
        const std::string& id = MetaOf(kind, *object).id();
        const Object* current = replay.Find(kind, id);
        if (current != nullptr &&
            MetaOf(kind, *current).version().index() != MetaOf(kind, *object).version().index()) {
          return absl::AbortedError(absl::StrCat(KindName(kind), " ", id,
                                                 " changed since it was read: read it again"));
        }
        s = replay.RemoveById(kind, id);
        break;
      }
      default:
        return absl::InvalidArgumentError("a change of unknown kind");
    }
    if (!s.ok()) return s;
  }
  return absl::OkStatus();
}

void Store::IndexTask(const api::Task& t, bool add) {
  const std::string& id = t.meta().id();
  auto edit = [&](TaskSet& set) {
    if (add) {
      set.insert(id);
    } else {
      set.erase(id);
    }
  };
  auto edit_map = [&](auto& map, const auto& key) {
    if (add) {
      map[key].insert(id);
      return;
    }
    auto it = map.find(key);
    if (it == map.end()) return;
    edit(it->second);
    if (it->second.empty()) map.erase(it);
  };
  edit_map(tasks_by_service_, t.service_id());
  if (!t.node_id().empty()) edit_map(tasks_by_node_, t.node_id());
  edit_map(tasks_by_slot_, std::make_pair(t.service_id(), t.slot()));
  edit_map(tasks_by_desired_, static_cast<int>(t.desired_state()));
}

void Store::ApplyAction(const api::StoreAction& action, uint64_t index,
                        std::vector<Event>& events) {
  auto unpacked = Unpack(action.target());
  auto& [kind, object] = *unpacked;
  Table& t = table(kind);
  const std::string id = MetaOf(kind, *object).id();
  ObjectPtr before;
  if (auto it = t.by_id.find(id); it != t.by_id.end()) before = it->second;
  if (before != nullptr) {
    if (auto name = NameKey(kind, *before)) t.by_name.erase(*name);
    if (kind == Kind::kTask) IndexTask(static_cast<const api::Task&>(*before), false);
  }
  Event e;
  e.kind = kind;
  e.index = index;
  if (action.kind() == api::StoreAction::KIND_REMOVE) {
    t.by_id.erase(id);
    e.type = Event::Type::kRemove;
    e.object = before;
  } else {
    MutableMeta(kind, *object)->mutable_version()->set_index(index);
    ObjectPtr after(std::move(object));
    t.by_id[id] = after;
    if (auto name = NameKey(kind, *after)) t.by_name[*name] = id;
    if (kind == Kind::kTask) IndexTask(static_cast<const api::Task&>(*after), true);
    e.type = action.kind() == api::StoreAction::KIND_CREATE ? Event::Type::kCreate
                                                            : Event::Type::kUpdate;
    e.object = std::move(after);
  }
  events.push_back(std::move(e));
}

void Store::Publish(const std::vector<Event>& events) {
  absl::MutexLock wl(&watchers_mu_);
  std::vector<std::shared_ptr<Watcher>> live;
  for (auto& w : watchers_) {
    if (w->closed()) continue;
    bool any = false;
    for (const Event& e : events) {
      if (e.type == Event::Type::kCommit) {
        if (any) w->Push(e);
        continue;
      }
      if (!w->filter_ || w->filter_(e)) {
        w->Push(e);
        any = true;
      }
    }
    if (!w->closed()) live.push_back(std::move(w));
  }
  watchers_ = std::move(live);
}

void Store::Apply(uint64_t index, absl::string_view data) {
  api::StoreTransaction tx;
  const bool parsed = tx.ParseFromArray(data.data(), static_cast<int>(data.size()));
  absl::StatusOr<uint64_t> result = index;
  {
    absl::MutexLock lock(&mu_);
    applied_index_ = index;
    absl::Status s = parsed ? Check(tx)
                            : absl::InvalidArgumentError("the entry is not a store transaction");
    if (s.ok()) {
      std::vector<Event> events;
      for (const api::StoreAction& a : tx.actions()) ApplyAction(a, index, events);
      Event commit;
      commit.type = Event::Type::kCommit;
      commit.index = index;
      events.push_back(std::move(commit));
      Publish(events);
    } else {
      ++refused_;
      result = std::move(s);
    }
  }
  if (!parsed) return;
  std::shared_ptr<Pending> p;
  {
    absl::MutexLock lock(&pending_mu_);
    auto it = pending_.find(tx.id());
    if (it == pending_.end()) return;
    p = it->second;
  }
  p->Complete(std::move(result));
}

std::function<std::string()> Store::SnapshotLater() {
  std::vector<std::pair<Kind, ObjectPtr>> objects;
  uint64_t index;
  {
    absl::ReaderMutexLock lock(&mu_);
    index = applied_index_;
    for (int k = 0; k < kKinds; ++k) {
      for (const auto& [id, o] : tables_[k].by_id) objects.emplace_back(static_cast<Kind>(k), o);
    }
  }
  // The objects are immutable (a write replaces the pointer), so serializing them later reads
  // exactly this state.
  return [objects = std::move(objects), index]() {
    api::StoreSnapshot snap;
    snap.set_format(kSnapshotFormat);
    snap.set_index(index);
    for (const auto& [kind, o] : objects) {
      snap.GetReflection()->AddMessage(&snap, SnapshotField(kind))->CopyFrom(*o);
    }
    // Deterministic (map fields in key order): members holding the same state write the
    // same bytes.
    std::string out;
    {
      google::protobuf::io::StringOutputStream stream(&out);
      google::protobuf::io::CodedOutputStream coded(&stream);
      coded.SetSerializationDeterministic(true);
      snap.SerializeToCodedStream(&coded);
    }
    return out;
  };
}

void Store::Clear() {
  for (Table& t : tables_) {
    t.by_id.clear();
    t.by_name.clear();
  }
  tasks_by_service_.clear();
  tasks_by_node_.clear();
  tasks_by_slot_.clear();
  tasks_by_desired_.clear();
}

absl::Status Store::Restore(absl::string_view data) {
  api::StoreSnapshot snap;
  if (!snap.ParseFromArray(data.data(), static_cast<int>(data.size()))) {
    return absl::InvalidArgumentError("the snapshot is not a store snapshot");
  }
  if (snap.format() > kSnapshotFormat) {
    return absl::FailedPreconditionError(absl::StrCat(
        "the snapshot's format is ", snap.format(), "; this manager reads up to ",
        kSnapshotFormat, ": upgrade it"));
  }
  absl::MutexLock lock(&mu_);
  Clear();
  auto put = [&](Kind kind, auto& list) {
    Table& t = table(kind);
    for (auto& o : list) {
      using T = std::decay_t<decltype(o)>;
      auto p = std::make_shared<const T>(std::move(o));
      if (auto name = NameKey(kind, *p)) t.by_name[*name] = p->meta().id();
      if constexpr (std::is_same_v<T, api::Task>) IndexTask(*p, true);
      t.by_id[p->meta().id()] = std::move(p);
    }
  };
  put(Kind::kNode, *snap.mutable_nodes());
  put(Kind::kService, *snap.mutable_services());
  put(Kind::kTask, *snap.mutable_tasks());
  put(Kind::kSecret, *snap.mutable_secrets());
  put(Kind::kConfig, *snap.mutable_configs());
  put(Kind::kNetwork, *snap.mutable_networks());
  put(Kind::kCluster, *snap.mutable_clusters());
  applied_index_ = snap.index();
  absl::MutexLock wl(&watchers_mu_);
  for (auto& w : watchers_) {
    w->CloseWith(absl::UnavailableError(
        "watch closed: the store was replaced by a snapshot; list again and watch anew"));
  }
  watchers_.clear();
  return absl::OkStatus();
}

uint64_t Store::applied_index() const {
  absl::ReaderMutexLock lock(&mu_);
  return applied_index_;
}

uint64_t Store::refused_transactions() const {
  absl::ReaderMutexLock lock(&mu_);
  return refused_;
}

}  // namespace shoal::manager::store
