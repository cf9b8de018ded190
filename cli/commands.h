// Private to cli/: what the command groups share. Each Add*Commands registers its
// subcommands on the CLI11 tree and, for each leaf, a handler run after parsing succeeds.
// Handlers return the exit code (0, 1 failed, 2 usage) and print errors through Context.
#pragma once

#include <CLI/CLI.hpp>
#include <functional>
#include <map>
#include <memory>
#include <ostream>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "cli/connection.h"
#include "cli/swarmctl.h"
#include "google/protobuf/message.h"
#include "proto/control.grpc.pb.h"
#include "proto/node_control.grpc.pb.h"

namespace shoal::cli {

// Global flags.
struct Globals {
  std::string host;
  std::string tls_dir;
  std::string socket = kDefaultSocket;
  std::string connect_timeout = "5s";
};

class Context {
 public:
  Context(std::ostream& out, std::ostream& err, const RunOptions& options)
      : out(out), err(err), options(options) {}

  std::ostream& out;
  std::ostream& err;
  const RunOptions& options;
  Globals globals;

  // The Control client of the global flags, made on first use.
  absl::StatusOr<ControlClient*> Control();
  // NodeControl on the local socket; INVALID_ARGUMENT with --host (these commands act on the
  // machine swarmctl runs on).
  absl::StatusOr<std::unique_ptr<api::NodeControl::Stub>> NodeControl(const std::string& command);
  // The id of the node behind the local socket, when swarmctl talks to it ("" otherwise).
  std::string SelfNodeId();
  absl::Time Now() const { return options.now(); }

  // "Error: <message>" on err; returns 1.
  int Fail(const absl::Status& status);
  // "Error: <message>" on err; returns 2.
  int Usage(const absl::Status& status);
  // Fail, or Usage for INVALID_ARGUMENT raised before anything was sent.
  int FailOrUsage(const absl::Status& status, bool sent);
  // `rm`-style commands: `op` on each of `refs` in turn, printing each ref done as docker
  // does, and one error line for each that fails (the others still run). 1 if any failed.
  int ForEachRef(const std::vector<std::string>& refs,
                 const std::function<absl::Status(ControlClient&, const std::string&)>& op);

 private:
  std::unique_ptr<ControlClient> control_;
};

using Handlers = std::map<const CLI::App*, std::function<int()>>;

void AddSwarmCommands(CLI::App& app, Context& ctx, Handlers& handlers);
void AddNodeCommands(CLI::App& app, Context& ctx, Handlers& handlers);
void AddServiceCommands(CLI::App& app, Context& ctx, Handlers& handlers);
void AddTaskCommands(CLI::App& app, Context& ctx, Handlers& handlers);
void AddSecretConfigCommands(CLI::App& app, Context& ctx, Handlers& handlers);
void AddClusterCommands(CLI::App& app, Context& ctx, Handlers& handlers);

// `service logs` (service_logs.cc).
struct ServiceLogsFlags {
  // Services or tasks (by name, id or id prefix).
  std::vector<std::string> refs;
  bool follow = false;
  bool timestamps = false;
  bool no_task_ids = false;
  bool no_resolve = false;
  bool no_trunc = false;
  bool raw = false;
  std::string tail = "all";
  std::string since;
};
int ServiceLogs(Context& ctx, const ServiceLogsFlags& flags);

// A bash completion script for every command, subcommand and flag of `app`.
std::string BashCompletion(const CLI::App& app);

// Messages as one JSON array, indented as docker's inspect output (protobuf's JSON mapping,
// lowerCamelCase names, defaults included).
std::string JsonArray(const std::vector<const google::protobuf::Message*>& messages);
template <typename T>
std::string JsonArray(const std::vector<T>& messages) {
  std::vector<const google::protobuf::Message*> ptrs;
  for (const T& m : messages) ptrs.push_back(&m);
  return JsonArray(ptrs);
}

// --format: "" (table), "table" or "json"; INVALID_ARGUMENT otherwise.
absl::StatusOr<bool> WantJson(const std::string& format);

// `<kind> ls`: the objects `list` returns, as one JSON array (--format json), their ids (-q;
// through `show_id` when given), or the table `table` makes (which may ask the manager more: its
// error ends the command).
template <typename Obj>
int ListObjects(
    Context& ctx, const std::string& format, bool quiet,
    const std::function<absl::Status(ControlClient&, std::vector<Obj>*)>& list,
    const std::function<absl::StatusOr<std::string>(ControlClient&, const std::vector<Obj>&)>&
        table,
    const std::function<std::string(const std::string&)>& show_id = nullptr) {
  auto json = WantJson(format);
  if (!json.ok()) return ctx.Usage(json.status());
  auto control = ctx.Control();
  if (!control.ok()) return ctx.FailOrUsage(control.status(), false);
  std::vector<Obj> objects;
  if (absl::Status s = list(**control, &objects); !s.ok()) return ctx.Fail(s);
  if (*json) {
    ctx.out << JsonArray(objects);
  } else if (quiet) {
    for (const Obj& o : objects) {
      ctx.out << (show_id ? show_id(o.meta().id()) : o.meta().id()) << "\n";
    }
  } else {
    absl::StatusOr<std::string> t = table(**control, objects);
    if (!t.ok()) return ctx.Fail(t.status());
    ctx.out << *t;
  }
  return 0;
}

// `<kind> inspect REF...`: each object fetched with `get` (the first error ends the command),
// printed as one JSON array, or with a `pretty` printer as each one's summary.
template <typename Obj>
int InspectRefs(Context& ctx, const std::vector<std::string>& refs,
                const std::function<absl::Status(ControlClient&, const std::string&, Obj*)>& get,
                const std::function<std::string(const Obj&)>& pretty = nullptr) {
  auto control = ctx.Control();
  if (!control.ok()) return ctx.FailOrUsage(control.status(), false);
  std::vector<Obj> objects;
  for (const std::string& ref : refs) {
    Obj o;
    if (absl::Status s = get(**control, ref, &o); !s.ok()) return ctx.Fail(s);
    objects.push_back(std::move(o));
  }
  if (pretty) {
    for (size_t i = 0; i < objects.size(); ++i) ctx.out << (i ? "\n" : "") << pretty(objects[i]);
  } else {
    ctx.out << JsonArray(objects);
  }
  return 0;
}

// The service's tasks, by service id or name (NOT_FOUND as the manager says it).
absl::Status ListTasksOf(ControlClient& control, const std::string& service_id,
                         std::vector<api::Task>* tasks);
// Node id -> hostname of every node.
std::map<std::string, std::string> Hostnames(ControlClient& control);

}  // namespace shoal::cli
