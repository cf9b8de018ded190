// cluster inspect | update and ca issue-operator.
#include <optional>

#include "absl/strings/str_cat.h"
#include "cli/commands.h"
#include "cli/parse.h"
#include "pki/operator_certificate.h"
#include "pki/tls_files.h"

namespace shoal::cli {
namespace {

using Stub = api::Control::StubInterface;

absl::StatusOr<api::Cluster> GetTheCluster(ControlClient& control) {
  api::ListClustersResponse resp;
  if (auto s = control.Call(&Stub::ListClusters, api::ListClustersRequest(), &resp); !s.ok()) {
    return s;
  }
  if (resp.clusters().empty()) return absl::NotFoundError("no cluster object found");
  return resp.clusters(0);
}

int Inspect(Context& ctx, const std::string& format) {
  auto json = WantJson(format.empty() ? "json" : format);
  if (!json.ok()) return ctx.Usage(json.status());
  auto control = ctx.Control();
  if (!control.ok()) return ctx.FailOrUsage(control.status(), false);
  auto cluster = GetTheCluster(**control);
  if (!cluster.ok()) return ctx.Fail(cluster.status());
  ctx.out << JsonArray(std::vector<api::Cluster>{*cluster});
  return 0;
}

struct UpdateFlags {
  std::string heartbeat_period, task_history_limit, cert_expiry, snapshot_interval;
};

int Update(Context& ctx, const UpdateFlags& f) {
  std::optional<absl::Duration> heartbeat, expiry;
  std::optional<int64_t> history;
  std::optional<uint64_t> snapshot;
  if (!f.heartbeat_period.empty()) {
    auto d = ParseDuration("--heartbeat-period", f.heartbeat_period);
    if (!d.ok()) return ctx.Usage(d.status());
    heartbeat = *d;
  }
  if (!f.cert_expiry.empty()) {
    auto d = ParseDuration("--cert-expiry", f.cert_expiry);
    if (!d.ok()) return ctx.Usage(d.status());
    expiry = *d;
  }
  if (!f.task_history_limit.empty()) {
    auto n = ParseUint("--task-history-limit", f.task_history_limit);
    if (!n.ok()) return ctx.Usage(n.status());
    history = static_cast<int64_t>(*n);
  }
  if (!f.snapshot_interval.empty()) {
    auto n = ParseUint("--snapshot-interval", f.snapshot_interval);
    if (!n.ok()) return ctx.Usage(n.status());
    snapshot = *n;
  }
  auto control = ctx.Control();
  if (!control.ok()) return ctx.FailOrUsage(control.status(), false);
  absl::Status last;
  for (int attempt = 0; attempt < 5; ++attempt) {
    auto cluster = GetTheCluster(**control);
    if (!cluster.ok()) return ctx.Fail(cluster.status());
    api::UpdateClusterRequest req;
    req.set_cluster_id(cluster->meta().id());
    *req.mutable_cluster_version() = cluster->meta().version();
    api::ClusterSpec& spec = *req.mutable_spec();
    spec = cluster->spec();
    if (heartbeat)
      *spec.mutable_dispatcher()->mutable_heartbeat_period() = DurationToProto(*heartbeat);
    if (expiry) *spec.mutable_ca_config()->mutable_node_cert_expiry() = DurationToProto(*expiry);
    if (history) spec.mutable_orchestration()->set_task_history_retention_limit(*history);
    if (snapshot) spec.mutable_raft()->set_snapshot_interval(*snapshot);
    api::UpdateClusterResponse resp;
    last = (*control)->Call(&Stub::UpdateCluster, req, &resp);
    if (last.code() != absl::StatusCode::kAborted) break;
  }
  if (!last.ok()) return ctx.Fail(last);
  ctx.out << "Cluster updated.\n";
  return 0;
}

struct IssueFlags {
  std::string out;
  std::string name = "operator";
};

int IssueOperator(Context& ctx, const IssueFlags& f) {
  if (auto s = pki::ValidateOperatorName(f.name); !s.ok()) {
    return ctx.Usage(
        absl::InvalidArgumentError(absl::StrCat("invalid --name \"", f.name, "\": ", s.message())));
  }
  auto control = ctx.Control();
  if (!control.ok()) return ctx.FailOrUsage(control.status(), false);
  // Any call picks a manager that answers; the CSR then goes to that one.
  if (auto c = GetTheCluster(**control); !c.ok()) return ctx.Fail(c.status());
  auto bundle = pki::RequestOperatorBundle((*control)->current_stub(), f.name);
  if (!bundle.ok()) return ctx.Fail(bundle.status());
  if (auto s = pki::WriteTlsDir(f.out, *bundle); !s.ok()) return ctx.Fail(s);
  ctx.out << "Operator certificate \"" << f.name << "\" written to " << f.out
          << " (key.pem, cert.pem, ca.pem).\nUse it with: swarmctl --host MANAGER:PORT --tls-dir "
          << f.out << " ...\n";
  return 0;
}

}  // namespace

void AddClusterCommands(CLI::App& app, Context& ctx, Handlers& handlers) {
  auto* cluster = app.add_subcommand("cluster", "Manage cluster settings");
  cluster->require_subcommand(1);
  {
    auto format = std::make_shared<std::string>();
    auto* c = cluster->add_subcommand("inspect", "Display the cluster object");
    c->add_option("--format", *format, "Output format: json (the default)");
    handlers[c] = [&ctx, format] { return Inspect(ctx, *format); };
  }
  {
    auto f = std::make_shared<UpdateFlags>();
    auto* c = cluster->add_subcommand("update", "Update cluster settings");
    c->add_option("--heartbeat-period", f->heartbeat_period, "Period of worker heartbeats");
    c->add_option("--task-history-limit", f->task_history_limit, "Task history retention limit");
    c->add_option("--cert-expiry", f->cert_expiry, "Validity period for node certificates");
    c->add_option("--snapshot-interval", f->snapshot_interval,
                  "Number of log entries between Raft snapshots");
    handlers[c] = [&ctx, f] { return Update(ctx, *f); };
  }
  auto* ca = app.add_subcommand("ca", "Manage the cluster's certificate authority");
  ca->require_subcommand(1);
  {
    auto f = std::make_shared<IssueFlags>();
    auto* c = ca->add_subcommand("issue-operator",
                                 "Issue an operator certificate (for --tls-dir) signed by the "
                                 "cluster's CA");
    c->add_option("--out", f->out, "Directory to write key.pem, cert.pem and ca.pem to")
        ->required();
    c->add_option("--name", f->name, "Common name of the certificate")->capture_default_str();
    handlers[c] = [&ctx, f] { return IssueOperator(ctx, *f); };
  }
}

}  // namespace shoal::cli
