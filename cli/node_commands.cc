// node ls | inspect | update | promote | demote | rm.
#include <optional>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "cli/commands.h"
#include "cli/format.h"
#include "cli/parse.h"

namespace shoal::cli {
namespace {

using Stub = api::Control::StubInterface;

// Reads the node, applies `edit` to its spec and writes it; retried when the node changed
// meanwhile (ABORTED).
absl::Status EditNode(ControlClient& control, const std::string& ref,
                      const std::function<absl::Status(api::NodeSpec&)>& edit) {
  absl::Status last;
  for (int attempt = 0; attempt < 5; ++attempt) {
    api::GetNodeRequest get;
    get.set_node_id(ref);
    api::GetNodeResponse node;
    if (auto s = control.Call(&Stub::GetNode, get, &node); !s.ok()) return s;
    api::UpdateNodeRequest req;
    req.set_node_id(node.node().meta().id());
    *req.mutable_node_version() = node.node().meta().version();
    *req.mutable_spec() = node.node().spec();
    if (auto s = edit(*req.mutable_spec()); !s.ok()) return s;
    api::UpdateNodeResponse resp;
    last = control.Call(&Stub::UpdateNode, req, &resp);
    if (last.code() != absl::StatusCode::kAborted) return last;
  }
  return last;
}

struct LsFlags {
  bool quiet = false;
  std::string format;
};

int Ls(Context& ctx, const LsFlags& f) {
  return ListObjects<api::Node>(
      ctx, f.format, f.quiet,
      [](ControlClient& control, std::vector<api::Node>* out) {
        api::ListNodesResponse resp;
        absl::Status s = control.Call(&Stub::ListNodes, api::ListNodesRequest(), &resp);
        out->assign(resp.nodes().begin(), resp.nodes().end());
        return s;
      },
      [&ctx](ControlClient& control,
             const std::vector<api::Node>& nodes) -> absl::StatusOr<std::string> {
        return NodeTable(nodes, control.local() ? ctx.SelfNodeId() : "");
      });
}

std::string Pretty(const api::Node& n) {
  std::ostringstream o;
  o << "ID:\t\t\t" << n.meta().id() << "\n";
  if (!n.spec().annotations().labels().empty()) {
    o << "Labels:\n";
    for (const auto& [k, v] : n.spec().annotations().labels()) o << " - " << k << "=" << v << "\n";
  }
  o << "Hostname:\t\t" << n.description().hostname() << "\n"
    << "Joined at:\t\t" << absl::FormatTime(FromProtoTime(n.meta().created_at())) << "\n"
    << "Status:\n"
    << " State:\t\t\t" << NodeStateName(n.status().state()) << "\n";
  if (!n.status().message().empty()) o << " Message:\t\t" << n.status().message() << "\n";
  o << " Availability:\t\t" << AvailabilityName(n.spec().availability()) << "\n"
    << " Address:\t\t" << n.status().addr() << "\n";
  if (n.has_manager_status()) {
    o << "Manager Status:\n"
      << " Address:\t\t" << n.manager_status().addr() << "\n"
      << " Raft Status:\t\t" << ManagerStatusName(n) << "\n"
      << " Leader:\t\t" << (n.manager_status().leader() ? "Yes" : "No") << "\n";
  }
  o << "Platform:\n"
    << " Operating System:\t" << n.description().platform().os() << "\n"
    << " Architecture:\t\t" << n.description().platform().architecture() << "\n"
    << "Resources:\n"
    << " CPUs:\t\t\t" << HumanCpus(n.description().resources().nano_cpus()) << "\n"
    << " Memory:\t\t" << HumanBytes(n.description().resources().memory_bytes()) << "\n";
  if (!n.description().engine_labels().empty()) {
    o << "Engine Labels:\n";
    for (const auto& [k, v] : n.description().engine_labels()) {
      o << " - " << k << "=" << v << "\n";
    }
  }
  o << "Engine Version:\t\t" << n.description().version() << "\n";
  return o.str();
}

struct InspectFlags {
  std::vector<std::string> nodes;
  bool pretty = false;
  std::string format;
};

int Inspect(Context& ctx, const InspectFlags& f) {
  auto json = WantJson(f.format);
  if (!json.ok()) return ctx.Usage(json.status());
  return InspectRefs<api::Node>(
      ctx, f.nodes,
      [&ctx](ControlClient& control, const std::string& ref, api::Node* out) {
        api::GetNodeRequest req;
        req.set_node_id(ref == "self" ? ctx.SelfNodeId() : ref);
        api::GetNodeResponse resp;
        absl::Status s = control.Call(&Stub::GetNode, req, &resp);
        *out = resp.node();
        return s;
      },
      f.pretty ? [](const api::Node& n) { return Pretty(n); }
               : std::function<std::string(const api::Node&)>());
}

struct UpdateFlags {
  std::string availability, role;
  std::vector<std::string> label_add, label_rm;
  std::string node;
};

int Update(Context& ctx, const UpdateFlags& f) {
  std::optional<api::NodeSpec::Availability> availability;
  std::optional<api::NodeRole> role;
  std::vector<std::pair<std::string, std::string>> add;
  if (!f.availability.empty()) {
    auto a = ParseAvailability(f.availability);
    if (!a.ok()) return ctx.Usage(a.status());
    availability = *a;
  }
  if (!f.role.empty()) {
    auto r = ParseRole(f.role);
    if (!r.ok()) return ctx.Usage(r.status());
    role = *r;
  }
  for (const std::string& l : f.label_add) {
    auto kv = ParseKeyValue("--label-add", l);
    if (!kv.ok()) return ctx.Usage(kv.status());
    add.push_back(*kv);
  }
  auto control = ctx.Control();
  if (!control.ok()) return ctx.FailOrUsage(control.status(), false);
  auto s = EditNode(**control, f.node, [&](api::NodeSpec& spec) {
    if (availability) spec.set_availability(*availability);
    if (role) spec.set_desired_role(*role);
    auto& labels = *spec.mutable_annotations()->mutable_labels();
    for (const std::string& k : f.label_rm) {
      if (labels.erase(k) == 0) {
        return absl::NotFoundError(absl::StrCat("key ", k, " doesn't exist in node's labels"));
      }
    }
    for (const auto& [k, v] : add) labels[k] = v;
    return absl::OkStatus();
  });
  if (!s.ok()) return ctx.Fail(s);
  ctx.out << f.node << "\n";
  return 0;
}

int SetRole(Context& ctx, const std::vector<std::string>& nodes, api::NodeRole role) {
  auto control = ctx.Control();
  if (!control.ok()) return ctx.FailOrUsage(control.status(), false);
  int code = 0;
  for (const std::string& node : nodes) {
    auto s = EditNode(**control, node, [&](api::NodeSpec& spec) {
      spec.set_desired_role(role);
      return absl::OkStatus();
    });
    if (!s.ok()) {
      code = ctx.Fail(s);
      continue;
    }
    if (role == api::NODE_ROLE_MANAGER) {
      ctx.out << "Node " << node << " promoted to a manager in the swarm.\n";
    } else {
      ctx.out << "Manager " << node << " demoted in the swarm.\n";
    }
  }
  return code;
}

int Rm(Context& ctx, const std::vector<std::string>& nodes, bool force) {
  return ctx.ForEachRef(nodes, [force](ControlClient& control, const std::string& node) {
    api::GetNodeRequest get;
    get.set_node_id(node);
    api::GetNodeResponse found;
    if (absl::Status s = control.Call(&Stub::GetNode, get, &found); !s.ok()) return s;
    api::RemoveNodeRequest req;
    req.set_node_id(found.node().meta().id());
    req.set_force(force);
    api::RemoveNodeResponse resp;
    return control.Call(&Stub::RemoveNode, req, &resp);
  });
}

}  // namespace

void AddNodeCommands(CLI::App& app, Context& ctx, Handlers& handlers) {
  auto* node = app.add_subcommand("node", "Manage swarm nodes");
  node->require_subcommand(1);
  {
    auto f = std::make_shared<LsFlags>();
    auto* c = node->add_subcommand("ls", "List nodes in the swarm");
    c->alias("list");
    c->add_flag("-q,--quiet", f->quiet, "Only display IDs");
    c->add_option("--format", f->format, "Output format: table or json");
    handlers[c] = [&ctx, f] { return Ls(ctx, *f); };
  }
  {
    auto f = std::make_shared<InspectFlags>();
    auto* c = node->add_subcommand("inspect", "Display detailed information on one or more nodes");
    c->add_flag("--pretty", f->pretty, "Print the information in a human friendly format");
    c->add_option("--format", f->format, "Output format: json (the default)");
    c->add_option("node", f->nodes, "Node id, id prefix, hostname or \"self\"")->required();
    handlers[c] = [&ctx, f] { return Inspect(ctx, *f); };
  }
  {
    auto f = std::make_shared<UpdateFlags>();
    auto* c = node->add_subcommand("update", "Update a node");
    c->add_option("--availability", f->availability,
                  "Availability of the node (active|pause|drain)");
    c->add_option("--role", f->role, "Role of the node (worker|manager)");
    c->add_option("--label-add", f->label_add, "Add or update a node label (key=value)")
        ->allow_extra_args(false);
    c->add_option("--label-rm", f->label_rm, "Remove a node label if exists")
        ->allow_extra_args(false);
    c->add_option("node", f->node, "Node")->required();
    handlers[c] = [&ctx, f] { return Update(ctx, *f); };
  }
  {
    auto nodes = std::make_shared<std::vector<std::string>>();
    auto* c = node->add_subcommand("promote", "Promote one or more nodes to manager in the swarm");
    c->add_option("node", *nodes, "Nodes")->required();
    handlers[c] = [&ctx, nodes] { return SetRole(ctx, *nodes, api::NODE_ROLE_MANAGER); };
  }
  {
    auto nodes = std::make_shared<std::vector<std::string>>();
    auto* c = node->add_subcommand("demote", "Demote one or more nodes from manager in the swarm");
    c->add_option("node", *nodes, "Nodes")->required();
    handlers[c] = [&ctx, nodes] { return SetRole(ctx, *nodes, api::NODE_ROLE_WORKER); };
  }
  {
    auto nodes = std::make_shared<std::vector<std::string>>();
    auto force = std::make_shared<bool>(false);
    auto* c = node->add_subcommand("rm", "Remove one or more nodes from the swarm");
    c->alias("remove");
    c->add_flag("-f,--force", *force, "Force remove a node from the swarm");
    c->add_option("node", *nodes, "Nodes")->required();
    handlers[c] = [&ctx, nodes, force] { return Rm(ctx, *nodes, *force); };
  }
}

}  // namespace shoal::cli
