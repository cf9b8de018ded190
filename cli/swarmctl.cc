#include "cli/swarmctl.h"

#include <google/protobuf/util/json_util.h>

#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "cli/commands.h"
#include "cli/parse.h"

namespace shoal::cli {

// --- Context ---

absl::StatusOr<ControlClient*> Context::Control() {
  if (control_ != nullptr) return control_.get();
  ConnectOptions o;
  for (absl::string_view h : absl::StrSplit(globals.host, ',')) {
    h = absl::StripAsciiWhitespace(h);
    if (!h.empty()) o.hosts.emplace_back(h);
  }
  o.tls_dir = globals.tls_dir;
  o.socket = globals.socket;
  auto timeout = ParseDuration("--connect-timeout", globals.connect_timeout);
  if (!timeout.ok()) return timeout.status();
  o.connect_timeout = *timeout;
  auto client = ControlClient::Create(o);
  if (!client.ok()) return client.status();
  control_ = std::move(*client);
  return control_.get();
}

absl::StatusOr<std::unique_ptr<api::NodeControl::Stub>> Context::NodeControl(
    const std::string& command) {
  if (!globals.host.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("`", command,
                     "` acts on the machine swarmctl runs on: run it there without --host "
                     "(it uses the local swarmd socket, --socket)"));
  }
  return NodeControlStub(globals.socket);
}

std::string Context::SelfNodeId() {
  if (!globals.host.empty()) return "";
  auto stub = NodeControlStub(globals.socket);
  grpc::ClientContext c;
  c.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
  api::InfoResponse info;
  if (!stub->Info(&c, api::InfoRequest(), &info).ok()) return "";
  return info.node_id();
}

int Context::Fail(const absl::Status& status) {
  err << "Error: " << status.message() << "\n";
  return 1;
}

int Context::Usage(const absl::Status& status) {
  err << "Error: " << status.message() << "\n";
  return 2;
}

int Context::ForEachRef(
    const std::vector<std::string>& refs,
    const std::function<absl::Status(ControlClient&, const std::string&)>& op) {
  auto control = Control();
  if (!control.ok()) return FailOrUsage(control.status(), false);
  int code = 0;
  for (const std::string& ref : refs) {
    if (absl::Status s = op(**control, ref); !s.ok()) {
      code = Fail(s);
      continue;
    }
    out << ref << "\n";
  }
  return code;
}

int Context::FailOrUsage(const absl::Status& status, bool sent) {
  if (!sent && status.code() == absl::StatusCode::kInvalidArgument) return Usage(status);
  return Fail(status);
}

// --- Shared helpers ---

std::string JsonArray(const std::vector<const google::protobuf::Message*>& messages) {
  google::protobuf::util::JsonPrintOptions o;
  o.always_print_primitive_fields = true;
  nlohmann::ordered_json array = nlohmann::ordered_json::array();
  for (const google::protobuf::Message* m : messages) {
    std::string text;
    if (!google::protobuf::util::MessageToJsonString(*m, &text, o).ok()) continue;
    try {
      array.push_back(nlohmann::ordered_json::parse(text));
    } catch (const nlohmann::json::exception&) {
      continue;  // protobuf's own output always parses
    }
  }
  return array.dump(4) + "\n";
}

absl::StatusOr<bool> WantJson(const std::string& format) {
  if (format.empty() || format == "table") return false;
  if (format == "json") return true;
  return absl::InvalidArgumentError(
      absl::StrCat("invalid --format \"", format, "\": expected table or json"));
}

absl::Status ListTasksOf(ControlClient& control, const std::string& service,
                         std::vector<api::Task>* tasks) {
  api::GetServiceRequest get;
  get.set_service_id(service);
  api::GetServiceResponse svc;
  if (auto s = control.Call(&api::Control::StubInterface::GetService, get, &svc); !s.ok()) {
    return s;
  }
  api::ListTasksRequest req;
  req.mutable_filters()->add_service_ids(svc.service().meta().id());
  api::ListTasksResponse resp;
  if (auto s = control.Call(&api::Control::StubInterface::ListTasks, req, &resp); !s.ok()) {
    return s;
  }
  tasks->assign(resp.tasks().begin(), resp.tasks().end());
  return absl::OkStatus();
}

std::map<std::string, std::string> Hostnames(ControlClient& control) {
  std::map<std::string, std::string> out;
  api::ListNodesResponse nodes;
  if (control.Call(&api::Control::StubInterface::ListNodes, api::ListNodesRequest(), &nodes).ok()) {
    for (const api::Node& n : nodes.nodes()) out[n.meta().id()] = n.description().hostname();
  }
  return out;
}

// --- Completion ---

namespace {

void CollectCompletion(const CLI::App& app, const std::string& path,
                       std::vector<std::pair<std::string, std::string>>& subs,
                       std::vector<std::pair<std::string, std::string>>& flags) {
  std::vector<std::string> names, options;
  for (const CLI::App* sub : app.get_subcommands([](const CLI::App*) { return true; })) {
    names.push_back(sub->get_name());
    CollectCompletion(*sub,
                      path.empty() ? sub->get_name() : absl::StrCat(path, " ", sub->get_name()),
                      subs, flags);
  }
  for (const CLI::Option* o : app.get_options()) {
    for (const std::string& l : o->get_lnames()) options.push_back(absl::StrCat("--", l));
    for (const std::string& s : o->get_snames()) options.push_back(absl::StrCat("-", s));
  }
  subs.emplace_back(path, absl::StrJoin(names, " "));
  flags.emplace_back(path, absl::StrJoin(options, " "));
}

}  // namespace

std::string BashCompletion(const CLI::App& app) {
  std::vector<std::pair<std::string, std::string>> subs, flags;
  CollectCompletion(app, "", subs, flags);
  std::string out =
      "# bash completion for swarmctl: source <(swarmctl completion bash)\n"
      "declare -gA _swarmctl_subs _swarmctl_flags\n";
  for (const auto& [path, names] : subs) {
    absl::StrAppend(&out, "_swarmctl_subs[\"", path.empty() ? "_" : path, "\"]=\"", names, "\"\n");
  }
  for (const auto& [path, names] : flags) {
    absl::StrAppend(&out, "_swarmctl_flags[\"", path.empty() ? "_" : path, "\"]=\"", names, "\"\n");
  }
  out +=
      "_swarmctl() {\n"
      "  local cur=\"${COMP_WORDS[COMP_CWORD]}\" path=\"\" key w i\n"
      "  for ((i = 1; i < COMP_CWORD; i++)); do\n"
      "    w=\"${COMP_WORDS[i]}\"\n"
      "    key=\"${path:-_}\"\n"
      "    case \" ${_swarmctl_subs[$key]} \" in\n"
      "      *\" $w \"*) path=\"${path:+$path }$w\" ;;\n"
      "    esac\n"
      "  done\n"
      "  key=\"${path:-_}\"\n"
      "  if [[ \"$cur\" == -* ]]; then\n"
      "    COMPREPLY=($(compgen -W \"${_swarmctl_flags[$key]} ${_swarmctl_flags[_]}\" -- "
      "\"$cur\"))\n"
      "  else\n"
      "    COMPREPLY=($(compgen -W \"${_swarmctl_subs[$key]}\" -- \"$cur\"))\n"
      "  fi\n"
      "}\n"
      "complete -F _swarmctl swarmctl\n";
  return out;
}

// --- Run ---

int Run(int argc, char** argv, std::ostream& out, std::ostream& err, const RunOptions& options) {
  Context ctx(out, err, options);
  CLI::App app("swarmctl: the operator CLI of a Shoal cluster (Docker Swarm's commands).",
               "swarmctl");
  app.require_subcommand(1);
  app.fallthrough();
  app.add_option("-H,--host", ctx.globals.host,
                 "Managers' gRPC addresses, comma-separated (mutual TLS with --tls-dir); "
                 "default: the local swarmd socket")
      ->envname("SWARMCTL_HOST");
  app.add_option("--tls-dir", ctx.globals.tls_dir,
                 "Directory with the operator certificate: key.pem, cert.pem, ca.pem")
      ->envname("SWARMCTL_TLS_DIR");
  app.add_option("--socket", ctx.globals.socket, "swarmd's local socket")
      ->envname("SWARMCTL_SOCKET")
      ->capture_default_str();
  app.add_option("--connect-timeout", ctx.globals.connect_timeout,
                 "How long to wait for each manager to connect before trying the next")
      ->capture_default_str();

  Handlers handlers;
  AddSwarmCommands(app, ctx, handlers);
  AddNodeCommands(app, ctx, handlers);
  AddServiceCommands(app, ctx, handlers);
  AddTaskCommands(app, ctx, handlers);
  AddSecretConfigCommands(app, ctx, handlers);
  AddClusterCommands(app, ctx, handlers);

  auto* version = app.add_subcommand("version", "Show swarmctl's version");
  handlers[version] = [&ctx] {
    ctx.out << "swarmctl version " << kVersion << "\n";
    return 0;
  };
  auto* completion = app.add_subcommand("completion", "Print a shell completion script");
  auto shell = std::make_shared<std::string>();
  completion->add_option("shell", *shell, "Shell: bash")->required();
  handlers[completion] = [&ctx, &app, shell] {
    if (*shell != "bash") {
      return ctx.Usage(absl::InvalidArgumentError(
          absl::StrCat("completion for \"", *shell, "\" is not available: only bash")));
    }
    ctx.out << BashCompletion(app);
    return 0;
  };

  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp&) {
    out << app.help();
    return 0;
  } catch (const CLI::CallForAllHelp&) {
    out << app.help("", CLI::AppFormatMode::All);
    return 0;
  } catch (const CLI::ParseError& e) {
    // The deepest command the words named, to say which one is missing its subcommand.
    const CLI::App* leaf = &app;
    std::string path = "swarmctl";
    while (!leaf->get_subcommands().empty()) {
      leaf = leaf->get_subcommands()[0];
      absl::StrAppend(&path, " ", leaf->get_name());
    }
    const auto children = leaf->get_subcommands([](const CLI::App*) { return true; });
    if (dynamic_cast<const CLI::RequiredError*>(&e) != nullptr && !children.empty() &&
        leaf->get_subcommands().empty() &&
        std::string(e.what()).find("subcommand") != std::string::npos) {
      std::vector<std::string> names;
      for (const CLI::App* c : children) names.push_back(c->get_name());
      err << "Error: `" << path << "` needs a subcommand: " << absl::StrJoin(names, ", ") << "\n";
    } else {
      err << "Error: " << path << ": " << e.what() << "\n";
    }
    return 2;
  }
  const CLI::App* leaf = &app;
  while (!leaf->get_subcommands().empty()) leaf = leaf->get_subcommands()[0];
  auto it = handlers.find(leaf);
  if (it == handlers.end()) {
    err << "Error: `" << leaf->get_name() << "` needs a subcommand\n";
    return 2;
  }
  return it->second();
}

int Run(const std::vector<std::string>& args, std::ostream& out, std::ostream& err,
        const RunOptions& options) {
  std::vector<std::string> storage;
  storage.reserve(args.size() + 1);
  storage.push_back("swarmctl");
  storage.insert(storage.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (std::string& s : storage) argv.push_back(s.data());
  argv.push_back(nullptr);
  return Run(static_cast<int>(storage.size()), argv.data(), out, err, options);
}

}  // namespace shoal::cli
