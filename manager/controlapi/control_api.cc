#include "manager/controlapi/control_api.h"

#include <algorithm>
#include <iterator>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "google/protobuf/util/message_differencer.h"
#include "manager/controlapi/validation.h"
#include "pki/join_token.h"

namespace shoal::manager::controlapi {

using store::Kind;
using store::KindOf;
using store::ReadTx;
using store::WriteTx;

namespace {

// How long a removed node without a certificate record is refused: the longest a node
// certificate lives by default (pki::kDefaultNodeCertValidity).
constexpr absl::Duration kRemovedNodeCertificateLifetime = absl::Hours(24 * 90);

const std::string& NameOf(const api::Node& n) { return n.description().hostname(); }
const std::string& NameOf(const api::Task&) {
  static const std::string* none = new std::string();
  return *none;
}
template <typename T>
const std::string& NameOf(const T& o) {
  return o.spec().annotations().name();
}

template <typename T>
const char* KindText() {
  return store::KindName(KindOf<T>::value);
}

// An object by id, name (hostname for nodes) or unique id prefix.
template <typename T>
absl::StatusOr<const T*> Resolve(const ReadTx& tx, const std::string& ref) {
  if (ref.empty()) {
    return absl::InvalidArgumentError(absl::StrCat("a ", KindText<T>(), " id or name is required"));
  }
  if (const T* o = tx.Get<T>(ref)) return o;
  std::vector<const T*> named;
  if constexpr (std::is_same_v<T, api::Node>) {
    for (const T* o : tx.List<T>()) {
      if (NameOf(*o) == ref) named.push_back(o);
    }
  } else if constexpr (!std::is_same_v<T, api::Task>) {
    if (const T* o = tx.GetByName<T>(ref)) named.push_back(o);
  }
  if (named.size() == 1) return named[0];
  if (named.size() > 1) {
    return absl::InvalidArgumentError(absl::StrCat(named.size(), " ", KindText<T>(),
                                                   "s are named \"", ref, "\": use an id"));
  }
  std::vector<const T*> prefixed;
  for (const T* o : tx.List<T>()) {
    if (absl::StartsWith(o->meta().id(), ref)) prefixed.push_back(o);
  }
  if (prefixed.size() == 1) return prefixed[0];
  if (prefixed.size() > 1) {
    return absl::InvalidArgumentError(absl::StrCat(KindText<T>(), " id prefix \"", ref,
                                                   "\" is ambiguous (", prefixed.size(),
                                                   " match)"));
  }
  return absl::NotFoundError(absl::StrCat(KindText<T>(), " ", ref, " not found"));
}

template <typename T>
bool MatchCommon(const T& o, const api::ListFilters& f) {
  const std::string& name = NameOf(o);
  if (!f.names().empty() && std::find(f.names().begin(), f.names().end(), name) == f.names().end()) {
    return false;
  }
  if (!f.name_prefixes().empty() &&
      std::none_of(f.name_prefixes().begin(), f.name_prefixes().end(),
                   [&](const std::string& p) { return absl::StartsWith(name, p); })) {
    return false;
  }
  if (!f.id_prefixes().empty() &&
      std::none_of(f.id_prefixes().begin(), f.id_prefixes().end(),
                   [&](const std::string& p) { return absl::StartsWith(o.meta().id(), p); })) {
    return false;
  }
  const auto& labels = ReadTx::LabelsOf(KindOf<T>::value, o);
  for (const auto& [k, v] : f.labels()) {
    auto it = labels.find(k);
    if (it == labels.end() || (!v.empty() && it->second != v)) return false;
  }
  return true;
}

template <typename T, typename F>
std::vector<T> ListMatching(store::Store& store, const F& keep) {
  std::vector<T> out;
  store.View([&](const ReadTx& tx) {
    for (const T* o : tx.List<T>()) {
      if (keep(*o)) out.push_back(*o);
    }
  });
  return out;
}

template <typename T>
void SortByName(std::vector<T>& v) {
  std::stable_sort(v.begin(), v.end(),
                   [](const T& a, const T& b) { return NameOf(a) < NameOf(b); });
}

bool ServiceUses(const api::Service& s, Kind kind, const std::string& id) {
  const api::TaskSpec& t = s.spec().task();
  switch (kind) {
    case Kind::kSecret:
      return std::any_of(t.container().secrets().begin(), t.container().secrets().end(),
                         [&](const api::SecretReference& r) { return r.secret_id() == id; });
    case Kind::kConfig:
      return std::any_of(t.container().configs().begin(), t.container().configs().end(),
                         [&](const api::ConfigReference& r) { return r.config_id() == id; });
    case Kind::kNetwork:
      return std::any_of(t.networks().begin(), t.networks().end(),
                         [&](const api::NetworkAttachmentConfig& n) { return n.target() == id; });
    default:
      return false;
  }
}

// FAILED_PRECONDITION naming the services that use `id`, or OK.
absl::Status NotInUse(const ReadTx& tx, Kind kind, const std::string& id,
                      const std::string& name) {
  std::vector<std::string> users;
  for (const api::Service* s : tx.List<api::Service>()) {
    if (ServiceUses(*s, kind, id)) users.push_back(s->spec().annotations().name());
  }
  if (users.empty()) return absl::OkStatus();
  std::sort(users.begin(), users.end());
  return absl::FailedPreconditionError(absl::StrCat(store::KindName(kind), " ", name,
                                                    " is in use by service",
                                                    users.size() > 1 ? "s " : " ",
                                                    absl::StrJoin(users, ", ")));
}

absl::Status CheckVersion(const api::Meta& stored, const api::Version& given, const char* kind,
                          const std::string& id) {
  if (stored.version().index() != given.index()) {
    return absl::AbortedError(absl::StrCat(
        "update out of sequence: ", kind, " ", id, " is at version ", stored.version().index(),
        ", not ", given.index(), " (read it again and retry)"));
  }
  return absl::OkStatus();
}

api::Cluster Redacted(api::Cluster c) {
  c.mutable_root_ca()->clear_ca_key();
  c.clear_unlock_keys();
  c.clear_network_bootstrap_keys();
  return c;
}

api::Secret Redacted(api::Secret s) {
  s.mutable_spec()->clear_data();
  return s;
}

bool IsManager(const api::Node& n) {
  return n.role() == api::NODE_ROLE_MANAGER || n.spec().desired_role() == api::NODE_ROLE_MANAGER;
}

}  // namespace

ControlApi::ControlApi(Options options)
    : options_(std::move(options)),
      clock_(options_.clock != nullptr ? *options_.clock : RealClock()),
      own_ids_(options_.ids == nullptr ? std::make_unique<IdGenerator>() : nullptr),
      ids_(options_.ids != nullptr ? *options_.ids : *own_ids_) {}

template <typename T>
absl::StatusOr<T> ControlApi::Read(const std::string& ref) {
  absl::StatusOr<T> out = absl::InternalError("unset");
  options_.store->View([&](const ReadTx& tx) {
    auto o = Resolve<T>(tx, ref);
    out = o.ok() ? absl::StatusOr<T>(**o) : absl::StatusOr<T>(o.status());
  });
  return out;
}

template <typename T>
absl::StatusOr<T> ControlApi::Written(const std::string& id) {
  absl::StatusOr<T> out = absl::NotFoundError(absl::StrCat(KindText<T>(), " ", id, " not found"));
  options_.store->View([&](const ReadTx& tx) {
    if (const T* o = tx.Get<T>(id)) out = *o;
  });
  return out;
}

// --- Nodes ---

// Docker's MANAGER STATUS comes from Raft when asked, not from the store: who leads and who
// answers change without a write. A manager whose Raft member is gone (removed, or lost in a
// forced new cluster) is unreachable.
void ControlApi::FillManagerStatus(std::vector<api::Node*> nodes) const {
  if (!options_.members) return;
  const auto members = options_.members();
  if (members.empty()) return;
  for (api::Node* n : nodes) {
    if (!n->has_manager_status() || n->manager_status().raft_id() == 0) continue;
    api::ManagerStatus& ms = *n->mutable_manager_status();
    auto it = members.find(ms.raft_id());
    ms.set_leader(it != members.end() && it->second.leader);
    ms.set_reachability(it != members.end() && it->second.reachable
                            ? api::ManagerStatus::REACHABILITY_REACHABLE
                            : api::ManagerStatus::REACHABILITY_UNREACHABLE);
  }
}

absl::StatusOr<api::GetNodeResponse> ControlApi::GetNode(const api::GetNodeRequest& r) {
  auto n = Read<api::Node>(r.node_id());
  if (!n.ok()) return n.status();
  api::GetNodeResponse out;
  *out.mutable_node() = *std::move(n);
  FillManagerStatus({out.mutable_node()});
  return out;
}

absl::StatusOr<api::ListNodesResponse> ControlApi::ListNodes(const api::ListNodesRequest& r) {
  const auto& f = r.filters();
  auto nodes = ListMatching<api::Node>(*options_.store, [&](const api::Node& n) {
    if (!MatchCommon(n, f.common())) return false;
    if (!f.roles().empty() &&
        std::find(f.roles().begin(), f.roles().end(), n.role()) == f.roles().end()) {
      return false;
    }
    if (!f.memberships().empty() && std::find(f.memberships().begin(), f.memberships().end(),
                                              n.spec().membership()) == f.memberships().end()) {
      return false;
    }
    if (!f.availabilities().empty() &&
        std::find(f.availabilities().begin(), f.availabilities().end(),
                  n.spec().availability()) == f.availabilities().end()) {
      return false;
    }
    return true;
  });
  api::ListNodesResponse out;
  std::vector<api::Node*> filled;
  for (auto& n : nodes) {
    api::Node* added = out.add_nodes();
    *added = std::move(n);
    filled.push_back(added);
  }
  FillManagerStatus(std::move(filled));
  return out;
}

absl::StatusOr<api::UpdateNodeResponse> ControlApi::UpdateNode(const api::UpdateNodeRequest& r) {
  std::string id;
  auto written = options_.store->Update([&](WriteTx& tx) -> absl::Status {
    auto n = Resolve<api::Node>(tx, r.node_id());
    if (!n.ok()) return n.status();
    const api::Node& node = **n;
    id = node.meta().id();
    if (auto s = CheckVersion(node.meta(), r.node_version(), "node", id); !s.ok()) return s;
    if (node.spec().desired_role() == api::NODE_ROLE_MANAGER &&
        r.spec().desired_role() == api::NODE_ROLE_WORKER) {
      // Demotion: never the last manager, nor below a quorum of reachable managers.
      size_t managers = 0, reachable_others = 0;
      for (const api::Node* m : tx.List<api::Node>()) {
        if (!IsManager(*m)) continue;
        ++managers;
        if (m->meta().id() != id && m->status().state() == api::NodeStatus::NODE_STATE_READY) {
          ++reachable_others;
        }
      }
      if (managers <= 1) {
        return absl::FailedPreconditionError(absl::StrCat(
            "node ", id, " is the last manager of the cluster and cannot be demoted"));
      }
      const size_t remaining = managers - 1;
      if (reachable_others < remaining / 2 + 1) {
        return absl::FailedPreconditionError(absl::StrCat(
            "demoting node ", id, " would leave ", reachable_others, " reachable of ",
            remaining, " managers, short of a quorum of ", remaining / 2 + 1));
      }
    }
    api::Node u = node;
    *u.mutable_spec() = r.spec();
    // Membership is the CA's to decide, not the operator's.
    u.mutable_spec()->set_membership(node.spec().membership());
    return tx.Update(u);
  });
  if (!written.ok()) return written.status();
  auto n = Written<api::Node>(id);
  if (!n.ok()) return n.status();
  api::UpdateNodeResponse out;
  *out.mutable_node() = *std::move(n);
  return out;
}

absl::StatusOr<api::RemoveNodeResponse> ControlApi::RemoveNode(const api::RemoveNodeRequest& r) {
  auto written = options_.store->Update([&](WriteTx& tx) -> absl::Status {
    auto n = Resolve<api::Node>(tx, r.node_id());
    if (!n.ok()) return n.status();
    const api::Node& node = **n;
    const std::string& id = node.meta().id();
    if (IsManager(node)) {
      return absl::FailedPreconditionError(absl::StrCat(
          "node ", id, " is a manager: demote it first (swarmctl node demote ", id, ")"));
    }
    const auto state = node.status().state();
    if (!r.force() && state != api::NodeStatus::NODE_STATE_DOWN &&
        state != api::NodeStatus::NODE_STATE_DISCONNECTED) {
      return absl::FailedPreconditionError(absl::StrCat(
          "node ", id, " is not down and can't be removed: stop it first, or use --force"));
    }
    // Its certificate is refused from now on (until it would have expired anyway): a removed
    // node that comes back cannot report, fetch secrets or renew.
    const absl::Time now = clock_.Now();
    absl::Time expiry = now + kRemovedNodeCertificateLifetime;
    if (node.certificate().has_not_after()) {
      expiry = absl::FromUnixSeconds(node.certificate().not_after().seconds());
    }
    for (const api::Cluster* c : tx.List<api::Cluster>()) {
      api::Cluster u = *c;
      auto& removed = *u.mutable_removed_nodes();
      for (auto it = removed.begin(); it != removed.end();) {
        it = absl::FromUnixSeconds(it->second.seconds()) < now ? removed.erase(it) : std::next(it);
      }
      removed[id].set_seconds(absl::ToUnixSeconds(expiry));
      if (auto s = tx.Update(u); !s.ok()) return s;
    }
    return tx.Remove<api::Node>(id);
  });
  if (!written.ok()) return written.status();
  return api::RemoveNodeResponse();
}

// --- Tasks ---

absl::StatusOr<api::GetTaskResponse> ControlApi::GetTask(const api::GetTaskRequest& r) {
  auto t = Read<api::Task>(r.task_id());
  if (!t.ok()) return t.status();
  api::GetTaskResponse out;
  *out.mutable_task() = *std::move(t);
  return out;
}

absl::StatusOr<api::ListTasksResponse> ControlApi::ListTasks(const api::ListTasksRequest& r) {
  const auto& f = r.filters();
  api::ListTasksResponse out;
  options_.store->View([&](const ReadTx& tx) {
    auto in = [](const auto& list, const auto& v) {
      return list.empty() || std::find(list.begin(), list.end(), v) != list.end();
    };
    for (const api::Task* t : tx.List<api::Task>()) {
      if (!MatchCommon(*t, f.common()) || !in(f.service_ids(), t->service_id()) ||
          !in(f.node_ids(), t->node_id()) || !in(f.desired_states(), t->desired_state()) ||
          !in(f.states(), t->status().state()) || !in(f.slots(), t->slot())) {
        continue;
      }
      if (f.up_to_date_only()) {
        const api::Service* s = tx.Get<api::Service>(t->service_id());
        if (s == nullptr || s->spec_version().index() != t->spec_version().index()) continue;
      }
      *out.add_tasks() = *t;
    }
  });
  return out;
}

absl::StatusOr<api::RemoveTaskResponse> ControlApi::RemoveTask(const api::RemoveTaskRequest& r) {
  auto written = options_.store->Update([&](WriteTx& tx) -> absl::Status {
    auto t = Resolve<api::Task>(tx, r.task_id());
    if (!t.ok()) return t.status();
    return tx.Remove<api::Task>((*t)->meta().id());
  });
  if (!written.ok()) return written.status();
  return api::RemoveTaskResponse();
}

// --- Services ---

absl::Status ControlApi::ResolveReferences(const ReadTx& tx, api::ServiceSpec& spec) {
  auto* c = spec.mutable_task()->mutable_container();
  for (int i = 0; i < c->secrets_size(); ++i) {
    auto* ref = c->mutable_secrets(i);
    const std::string& by = ref->secret_name().empty() ? ref->secret_id() : ref->secret_name();
    auto s = Resolve<api::Secret>(tx, by);
    if (!s.ok()) {
      return absl::NotFoundError(
          absl::StrCat("task.container.secrets[", i, "]: ", s.status().message()));
    }
    ref->set_secret_id((*s)->meta().id());
    ref->set_secret_name((*s)->spec().annotations().name());
  }
  for (int i = 0; i < c->configs_size(); ++i) {
    auto* ref = c->mutable_configs(i);
    const std::string& by = ref->config_name().empty() ? ref->config_id() : ref->config_name();
    auto s = Resolve<api::Config>(tx, by);
    if (!s.ok()) {
      return absl::NotFoundError(
          absl::StrCat("task.container.configs[", i, "]: ", s.status().message()));
    }
    ref->set_config_id((*s)->meta().id());
    ref->set_config_name((*s)->spec().annotations().name());
  }
  auto* task = spec.mutable_task();
  for (int i = 0; i < task->networks_size(); ++i) {
    auto n = Resolve<api::Network>(tx, task->networks(i).target());
    if (!n.ok()) {
      return absl::NotFoundError(absl::StrCat("task.networks[", i, "]: ", n.status().message()));
    }
    task->mutable_networks(i)->set_target((*n)->meta().id());
  }
  return absl::OkStatus();
}

absl::StatusOr<api::CreateServiceResponse> ControlApi::CreateService(
    const api::CreateServiceRequest& r) {
  if (auto s = ValidateServiceSpec(r.spec()); !s.ok()) return s;
  const std::string id = ids_.Next();
  auto written = options_.store->Update([&](WriteTx& tx) -> absl::Status {
    api::Service s;
    s.mutable_meta()->set_id(id);
    *s.mutable_spec() = r.spec();
    if (s.spec().mode_case() == api::ServiceSpec::MODE_NOT_SET) {
      s.mutable_spec()->mutable_replicated()->set_replicas(1);
    }
    if (auto st = ResolveReferences(tx, *s.mutable_spec()); !st.ok()) return st;
    *s.mutable_endpoint()->mutable_spec() = s.spec().endpoint();
    *s.mutable_endpoint()->mutable_ports() = s.spec().endpoint().ports();
    if (s.spec().has_replicated_job() || s.spec().has_global_job()) {
      s.mutable_job_status()->mutable_last_execution()->set_seconds(
          absl::ToUnixSeconds(clock_.Now()));
    }
    return tx.Create(s);
  });
  if (!written.ok()) return written.status();
  auto s = Written<api::Service>(id);
  if (!s.ok()) return s.status();
  api::CreateServiceResponse out;
  *out.mutable_service() = *std::move(s);
  return out;
}

absl::StatusOr<api::GetServiceResponse> ControlApi::GetService(const api::GetServiceRequest& r) {
  auto s = Read<api::Service>(r.service_id());
  if (!s.ok()) return s.status();
  api::GetServiceResponse out;
  *out.mutable_service() = *std::move(s);
  return out;
}

absl::StatusOr<api::UpdateServiceResponse> ControlApi::UpdateService(
    const api::UpdateServiceRequest& r) {
  const bool rollback = r.rollback() == api::UpdateServiceRequest::ROLLBACK_PREVIOUS;
  if (!rollback) {
    if (auto s = ValidateServiceSpec(r.spec()); !s.ok()) return s;
  }
  std::string id;
  const absl::Time now = clock_.Now();
  auto written = options_.store->Update([&](WriteTx& tx) -> absl::Status {
    auto found = Resolve<api::Service>(tx, r.service_id());
    if (!found.ok()) return found.status();
    const api::Service& cur = **found;
    id = cur.meta().id();
    if (auto s = CheckVersion(cur.meta(), r.service_version(), "service", id); !s.ok()) return s;
    api::Service u = cur;
    if (rollback) {
      if (!cur.has_previous_spec()) {
        return absl::FailedPreconditionError(
            absl::StrCat("service ", cur.spec().annotations().name(),
                         " has no previous spec to roll back to"));
      }
      *u.mutable_spec() = cur.previous_spec();
      *u.mutable_spec_version() = cur.previous_spec_version();
      *u.mutable_previous_spec() = cur.spec();
      *u.mutable_previous_spec_version() = cur.spec_version();
      u.mutable_update_status()->set_state(api::UpdateStatus::UPDATE_STATE_ROLLBACK_STARTED);
      u.mutable_update_status()->set_message("manually requested rollback");
      const int64_t ns = absl::ToUnixNanos(now);
      u.mutable_update_status()->mutable_started_at()->set_seconds(ns / 1000000000);
      u.mutable_update_status()->mutable_started_at()->set_nanos(
          static_cast<int32_t>(ns % 1000000000));
      u.mutable_update_status()->clear_completed_at();
    } else {
      api::ServiceSpec spec = r.spec();
      if (spec.mode_case() == api::ServiceSpec::MODE_NOT_SET) {
        spec.mutable_replicated()->set_replicas(1);
      }
      if (spec.mode_case() != cur.spec().mode_case()) {
        return absl::InvalidArgumentError("mode: a service's mode cannot be changed");
      }
      if (spec.annotations().name() != cur.spec().annotations().name()) {
        return absl::InvalidArgumentError("name: renaming services is not supported");
      }
      if (auto st = ResolveReferences(tx, spec); !st.ok()) return st;
      if (google::protobuf::util::MessageDifferencer::Equals(spec, cur.spec())) {
        return absl::OkStatus();  // nothing changes
      }
      const bool is_job = spec.has_replicated_job() || spec.has_global_job();
      // Whether the tasks change (what they run, or the ports they publish): only then is
      // there a new spec version, which the orchestrator rolls out by replacing tasks. A
      // scale, new labels or new update settings replace nothing, as in Docker.
      const bool tasks_change =
          is_job ||
          !google::protobuf::util::MessageDifferencer::Equals(spec.task(), cur.spec().task()) ||
          !google::protobuf::util::MessageDifferencer::Equals(spec.endpoint(),
                                                               cur.spec().endpoint());
      *u.mutable_previous_spec() = cur.spec();
      *u.mutable_previous_spec_version() = cur.spec_version();
      *u.mutable_spec() = std::move(spec);
      if (tasks_change) {
        // A new spec version: the index of the write this spec replaces, unique and
        // increasing.
        u.mutable_spec_version()->set_index(cur.meta().version().index());
        u.clear_update_status();
      }
      if (is_job) {
        // A job updated runs again, as a new iteration.
        u.mutable_job_status()->mutable_job_iteration()->set_index(cur.meta().version().index());
        const int64_t ns = absl::ToUnixNanos(now);
        u.mutable_job_status()->mutable_last_execution()->set_seconds(ns / 1000000000);
      }
      *u.mutable_endpoint()->mutable_spec() = u.spec().endpoint();
      *u.mutable_endpoint()->mutable_ports() = u.spec().endpoint().ports();
    }
    return tx.Update(u);
  });
  if (!written.ok()) return written.status();
  auto s = Written<api::Service>(id);
  if (!s.ok()) return s.status();
  api::UpdateServiceResponse out;
  *out.mutable_service() = *std::move(s);
  return out;
}

absl::StatusOr<api::RemoveServiceResponse> ControlApi::RemoveService(
    const api::RemoveServiceRequest& r) {
  auto written = options_.store->Update([&](WriteTx& tx) -> absl::Status {
    auto s = Resolve<api::Service>(tx, r.service_id());
    if (!s.ok()) return s.status();
    return tx.Remove<api::Service>((*s)->meta().id());
  });
  if (!written.ok()) return written.status();
  return api::RemoveServiceResponse();
}

absl::StatusOr<api::ListServicesResponse> ControlApi::ListServices(
    const api::ListServicesRequest& r) {
  const auto& f = r.filters();
  auto services = ListMatching<api::Service>(*options_.store, [&](const api::Service& s) {
    if (!MatchCommon(s, f.common())) return false;
    if (f.modes().empty()) return true;
    const char* mode = s.spec().has_global()           ? "global"
                       : s.spec().has_replicated_job() ? "replicated-job"
                       : s.spec().has_global_job()     ? "global-job"
                                                       : "replicated";
    return std::find(f.modes().begin(), f.modes().end(), mode) != f.modes().end();
  });
  SortByName(services);
  api::ListServicesResponse out;
  for (auto& s : services) *out.add_services() = std::move(s);
  return out;
}

absl::StatusOr<api::ListServiceStatusesResponse> ControlApi::ListServiceStatuses(
    const api::ListServiceStatusesRequest& r) {
  api::ListServiceStatusesResponse out;
  absl::Status error;
  options_.store->View([&](const ReadTx& tx) {
    std::vector<const api::Service*> services;
    if (r.services().empty()) {
      services = tx.List<api::Service>();
    } else {
      for (const std::string& ref : r.services()) {
        auto s = Resolve<api::Service>(tx, ref);
        if (!s.ok()) {
          error = s.status();
          return;
        }
        services.push_back(*s);
      }
    }
    for (const api::Service* s : services) {
      auto* st = out.add_statuses();
      st->set_service_id(s->meta().id());
      uint64_t runnable = 0;
      for (const api::Task* t : tx.TasksOfService(s->meta().id())) {
        if (t->desired_state() <= api::TASK_STATE_RUNNING) ++runnable;
        if (t->desired_state() == api::TASK_STATE_RUNNING &&
            t->status().state() == api::TASK_STATE_RUNNING) {
          st->set_running_tasks(st->running_tasks() + 1);
        }
        if (t->status().state() == api::TASK_STATE_COMPLETE) {
          st->set_completed_tasks(st->completed_tasks() + 1);
        }
      }
      uint64_t desired = runnable;
      if (s->spec().has_replicated()) desired = s->spec().replicated().replicas();
      if (s->spec().has_replicated_job()) {
        const auto& job = s->spec().replicated_job();
        desired = job.has_total_completions()
                      ? job.total_completions()
                      : (job.has_max_concurrent() ? job.max_concurrent() : 1);
      }
      st->set_desired_tasks(desired);
    }
  });
  if (!error.ok()) return error;
  return out;
}

// --- Networks ---

absl::StatusOr<api::CreateNetworkResponse> ControlApi::CreateNetwork(
    const api::CreateNetworkRequest& r) {
  if (auto s = ValidateNetworkSpec(r.spec()); !s.ok()) return s;
  const std::string id = ids_.Next();
  auto written = options_.store->Update([&](WriteTx& tx) {
    api::Network n;
    n.mutable_meta()->set_id(id);
    *n.mutable_spec() = r.spec();
    if (n.spec().driver_config().name().empty()) {
      n.mutable_spec()->mutable_driver_config()->set_name("overlay");
    }
    return tx.Create(n);
  });
  if (!written.ok()) return written.status();
  auto n = Written<api::Network>(id);
  if (!n.ok()) return n.status();
  api::CreateNetworkResponse out;
  *out.mutable_network() = *std::move(n);
  return out;
}

absl::StatusOr<api::GetNetworkResponse> ControlApi::GetNetwork(const api::GetNetworkRequest& r) {
  auto n = Read<api::Network>(r.network_id());
  if (!n.ok()) return n.status();
  api::GetNetworkResponse out;
  *out.mutable_network() = *std::move(n);
  return out;
}

absl::StatusOr<api::ListNetworksResponse> ControlApi::ListNetworks(
    const api::ListNetworksRequest& r) {
  auto networks = ListMatching<api::Network>(
      *options_.store, [&](const api::Network& n) { return MatchCommon(n, r.filters().common()); });
  SortByName(networks);
  api::ListNetworksResponse out;
  for (auto& n : networks) *out.add_networks() = std::move(n);
  return out;
}

absl::StatusOr<api::RemoveNetworkResponse> ControlApi::RemoveNetwork(
    const api::RemoveNetworkRequest& r) {
  auto written = options_.store->Update([&](WriteTx& tx) -> absl::Status {
    auto n = Resolve<api::Network>(tx, r.network_id());
    if (!n.ok()) return n.status();
    const std::string& id = (*n)->meta().id();
    if ((*n)->spec().ingress()) {
      return absl::FailedPreconditionError("the ingress network cannot be removed");
    }
    if (auto s = NotInUse(tx, Kind::kNetwork, id, (*n)->spec().annotations().name()); !s.ok()) {
      return s;
    }
    return tx.Remove<api::Network>(id);
  });
  if (!written.ok()) return written.status();
  return api::RemoveNetworkResponse();
}

// --- Cluster ---

absl::StatusOr<api::GetClusterResponse> ControlApi::GetCluster(const api::GetClusterRequest& r) {
  auto c = Read<api::Cluster>(r.cluster_id());
  if (!c.ok()) return c.status();
  api::GetClusterResponse out;
  *out.mutable_cluster() = Redacted(*std::move(c));
  return out;
}

absl::StatusOr<api::ListClustersResponse> ControlApi::ListClusters(
    const api::ListClustersRequest& r) {
  auto clusters = ListMatching<api::Cluster>(
      *options_.store, [&](const api::Cluster& c) { return MatchCommon(c, r.filters().common()); });
  api::ListClustersResponse out;
  for (auto& c : clusters) *out.add_clusters() = Redacted(std::move(c));
  return out;
}

absl::StatusOr<api::UpdateClusterResponse> ControlApi::UpdateCluster(
    const api::UpdateClusterRequest& r) {
  if (auto s = ValidateName("name", r.spec().annotations().name()); !s.ok()) return s;
  std::string id;
  auto written = options_.store->Update([&](WriteTx& tx) -> absl::Status {
    auto found = Resolve<api::Cluster>(tx, r.cluster_id());
    if (!found.ok()) return found.status();
    const api::Cluster& cur = **found;
    id = cur.meta().id();
    if (auto s = CheckVersion(cur.meta(), r.cluster_version(), "cluster", id); !s.ok()) return s;
    api::Cluster u = cur;
    *u.mutable_spec() = r.spec();
    if (r.rotation().worker_join_token() || r.rotation().manager_join_token()) {
      auto digest = pki::CaDigest(cur.root_ca().ca_cert());
      if (!digest.ok()) {
        return absl::FailedPreconditionError(
            absl::StrCat("the cluster's root CA is unreadable: ", digest.status().message()));
      }
      const RandomBytesFn random = options_.random ? options_.random : RandomBytesFn(SystemRandomBytes);
      if (r.rotation().worker_join_token()) {
        u.mutable_root_ca()->mutable_join_tokens()->set_worker(
            pki::GenerateJoinToken(*digest, random).ToString());
      }
      if (r.rotation().manager_join_token()) {
        u.mutable_root_ca()->mutable_join_tokens()->set_manager(
            pki::GenerateJoinToken(*digest, random).ToString());
      }
    }
    return tx.Update(u);
  });
  if (!written.ok()) return written.status();
  auto c = Written<api::Cluster>(id);
  if (!c.ok()) return c.status();
  api::UpdateClusterResponse out;
  *out.mutable_cluster() = Redacted(*std::move(c));
  return out;
}

// --- Secrets ---

absl::StatusOr<api::CreateSecretResponse> ControlApi::CreateSecret(
    const api::CreateSecretRequest& r) {
  if (auto s = ValidateSecretSpec(r.spec()); !s.ok()) return s;
  const std::string id = ids_.Next();
  auto written = options_.store->Update([&](WriteTx& tx) {
    api::Secret s;
    s.mutable_meta()->set_id(id);
    *s.mutable_spec() = r.spec();
    return tx.Create(s);
  });
  if (!written.ok()) return written.status();
  auto s = Written<api::Secret>(id);
  if (!s.ok()) return s.status();
  api::CreateSecretResponse out;
  *out.mutable_secret() = Redacted(*std::move(s));
  return out;
}

absl::StatusOr<api::GetSecretResponse> ControlApi::GetSecret(const api::GetSecretRequest& r) {
  auto s = Read<api::Secret>(r.secret_id());
  if (!s.ok()) return s.status();
  api::GetSecretResponse out;
  *out.mutable_secret() = Redacted(*std::move(s));
  return out;
}

absl::StatusOr<api::UpdateSecretResponse> ControlApi::UpdateSecret(
    const api::UpdateSecretRequest& r) {
  std::string id;
  auto written = options_.store->Update([&](WriteTx& tx) -> absl::Status {
    auto found = Resolve<api::Secret>(tx, r.secret_id());
    if (!found.ok()) return found.status();
    const api::Secret& cur = **found;
    id = cur.meta().id();
    if (auto s = CheckVersion(cur.meta(), r.secret_version(), "secret", id); !s.ok()) return s;
    if (!r.spec().data().empty() && r.spec().data() != cur.spec().data()) {
      return absl::InvalidArgumentError(
          "data: a secret's data cannot be changed; create a new secret and rotate services to "
          "it");
    }
    if (r.spec().annotations().name() != cur.spec().annotations().name()) {
      return absl::InvalidArgumentError("name: only a secret's labels can be updated");
    }
    api::Secret u = cur;
    *u.mutable_spec()->mutable_annotations()->mutable_labels() = r.spec().annotations().labels();
    return tx.Update(u);
  });
  if (!written.ok()) return written.status();
  auto s = Written<api::Secret>(id);
  if (!s.ok()) return s.status();
  api::UpdateSecretResponse out;
  *out.mutable_secret() = Redacted(*std::move(s));
  return out;
}

absl::StatusOr<api::ListSecretsResponse> ControlApi::ListSecrets(
    const api::ListSecretsRequest& r) {
  auto secrets = ListMatching<api::Secret>(
      *options_.store, [&](const api::Secret& s) { return MatchCommon(s, r.filters().common()); });
  SortByName(secrets);
  api::ListSecretsResponse out;
  for (auto& s : secrets) *out.add_secrets() = Redacted(std::move(s));
  return out;
}

absl::StatusOr<api::RemoveSecretResponse> ControlApi::RemoveSecret(
    const api::RemoveSecretRequest& r) {
  auto written = options_.store->Update([&](WriteTx& tx) -> absl::Status {
    auto s = Resolve<api::Secret>(tx, r.secret_id());
    if (!s.ok()) return s.status();
    const std::string& id = (*s)->meta().id();
    if (auto u = NotInUse(tx, Kind::kSecret, id, (*s)->spec().annotations().name()); !u.ok()) {
      return u;
    }
    return tx.Remove<api::Secret>(id);
  });
  if (!written.ok()) return written.status();
  return api::RemoveSecretResponse();
}

// --- Configs ---

absl::StatusOr<api::CreateConfigResponse> ControlApi::CreateConfig(
    const api::CreateConfigRequest& r) {
  if (auto s = ValidateConfigSpec(r.spec()); !s.ok()) return s;
  const std::string id = ids_.Next();
  auto written = options_.store->Update([&](WriteTx& tx) {
    api::Config c;
    c.mutable_meta()->set_id(id);
    *c.mutable_spec() = r.spec();
    return tx.Create(c);
  });
  if (!written.ok()) return written.status();
  auto c = Written<api::Config>(id);
  if (!c.ok()) return c.status();
  api::CreateConfigResponse out;
  *out.mutable_config() = *std::move(c);
  return out;
}

absl::StatusOr<api::GetConfigResponse> ControlApi::GetConfig(const api::GetConfigRequest& r) {
  auto c = Read<api::Config>(r.config_id());
  if (!c.ok()) return c.status();
  api::GetConfigResponse out;
  *out.mutable_config() = *std::move(c);
  return out;
}

absl::StatusOr<api::UpdateConfigResponse> ControlApi::UpdateConfig(
    const api::UpdateConfigRequest& r) {
  std::string id;
  auto written = options_.store->Update([&](WriteTx& tx) -> absl::Status {
    auto found = Resolve<api::Config>(tx, r.config_id());
    if (!found.ok()) return found.status();
    const api::Config& cur = **found;
    id = cur.meta().id();
    if (auto s = CheckVersion(cur.meta(), r.config_version(), "config", id); !s.ok()) return s;
    if (!r.spec().data().empty() && r.spec().data() != cur.spec().data()) {
      return absl::InvalidArgumentError(
          "data: a config's data cannot be changed; create a new config and rotate services to "
          "it");
    }
    if (r.spec().annotations().name() != cur.spec().annotations().name()) {
      return absl::InvalidArgumentError("name: only a config's labels can be updated");
    }
    api::Config u = cur;
    *u.mutable_spec()->mutable_annotations()->mutable_labels() = r.spec().annotations().labels();
    return tx.Update(u);
  });
  if (!written.ok()) return written.status();
  auto c = Written<api::Config>(id);
  if (!c.ok()) return c.status();
  api::UpdateConfigResponse out;
  *out.mutable_config() = *std::move(c);
  return out;
}

absl::StatusOr<api::ListConfigsResponse> ControlApi::ListConfigs(
    const api::ListConfigsRequest& r) {
  auto configs = ListMatching<api::Config>(
      *options_.store, [&](const api::Config& c) { return MatchCommon(c, r.filters().common()); });
  SortByName(configs);
  api::ListConfigsResponse out;
  for (auto& c : configs) *out.add_configs() = std::move(c);
  return out;
}

absl::StatusOr<api::RemoveConfigResponse> ControlApi::RemoveConfig(
    const api::RemoveConfigRequest& r) {
  auto written = options_.store->Update([&](WriteTx& tx) -> absl::Status {
    auto c = Resolve<api::Config>(tx, r.config_id());
    if (!c.ok()) return c.status();
    const std::string& id = (*c)->meta().id();
    if (auto u = NotInUse(tx, Kind::kConfig, id, (*c)->spec().annotations().name()); !u.ok()) {
      return u;
    }
    return tx.Remove<api::Config>(id);
  });
  if (!written.ok()) return written.status();
  return api::RemoveConfigResponse();
}

}  // namespace shoal::manager::controlapi
