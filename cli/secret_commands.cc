// secret create | ls | inspect | rm and config create | ls | inspect | rm.
#include <fstream>
#include <iostream>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "cli/commands.h"
#include "cli/format.h"
#include "cli/parse.h"

namespace shoal::cli {
namespace {

using Stub = api::Control::StubInterface;

absl::StatusOr<std::string> ReadData(Context& ctx, const std::string& file) {
  std::ostringstream data;
  if (file == "-") {
    std::istream& in = ctx.options.in != nullptr ? *ctx.options.in : std::cin;
    data << in.rdbuf();
    return data.str();
  }
  std::ifstream in(file, std::ios::binary);
  if (!in) {
    return absl::NotFoundError(absl::StrCat("reading ", file, ": ", std::strerror(errno)));
  }
  data << in.rdbuf();
  return data.str();
}

struct CreateFlags {
  std::string name, file;
  std::vector<std::string> labels;
};

template <typename Spec>
absl::Status FillSpec(Context& ctx, const CreateFlags& f, Spec* spec, bool* usage) {
  spec->mutable_annotations()->set_name(f.name);
  for (const std::string& l : f.labels) {
    auto kv = ParseKeyValue("--label", l);
    if (!kv.ok()) {
      *usage = true;
      return kv.status();
    }
    (*spec->mutable_annotations()->mutable_labels())[kv->first] = kv->second;
  }
  auto data = ReadData(ctx, f.file);
  if (!data.ok()) return data.status();
  spec->set_data(*data);
  return absl::OkStatus();
}

// What differs between secrets and configs.
struct SecretKind {
  using Object = api::Secret;
  static constexpr const char* kName = "secret";
  static absl::Status Create(ControlClient& c, const api::SecretSpec& spec, std::string* id) {
    api::CreateSecretRequest req;
    *req.mutable_spec() = spec;
    api::CreateSecretResponse resp;
    auto s = c.Call(&Stub::CreateSecret, req, &resp);
    *id = resp.secret().meta().id();
    return s;
  }
  static absl::Status List(ControlClient& c, std::vector<api::Secret>* out) {
    api::ListSecretsResponse resp;
    auto s = c.Call(&Stub::ListSecrets, api::ListSecretsRequest(), &resp);
    for (const api::Secret& x : resp.secrets()) {
      if (!x.internal()) out->push_back(x);
    }
    return s;
  }
  static absl::Status Get(ControlClient& c, const std::string& ref, api::Secret* out) {
    api::GetSecretRequest req;
    req.set_secret_id(ref);
    api::GetSecretResponse resp;
    auto s = c.Call(&Stub::GetSecret, req, &resp);
    *out = resp.secret();
    return s;
  }
  static absl::Status Remove(ControlClient& c, const std::string& id) {
    api::RemoveSecretRequest req;
    req.set_secret_id(id);
    api::RemoveSecretResponse resp;
    return c.Call(&Stub::RemoveSecret, req, &resp);
  }
  static std::string Table(const std::vector<api::Secret>& v, absl::Time now) {
    return SecretTable(v, now);
  }
};

struct ConfigKind {
  using Object = api::Config;
  static constexpr const char* kName = "config";
  static absl::Status Create(ControlClient& c, const api::ConfigSpec& spec, std::string* id) {
    api::CreateConfigRequest req;
    *req.mutable_spec() = spec;
    api::CreateConfigResponse resp;
    auto s = c.Call(&Stub::CreateConfig, req, &resp);
    *id = resp.config().meta().id();
    return s;
  }
  static absl::Status List(ControlClient& c, std::vector<api::Config>* out) {
    api::ListConfigsResponse resp;
    auto s = c.Call(&Stub::ListConfigs, api::ListConfigsRequest(), &resp);
    out->assign(resp.configs().begin(), resp.configs().end());
    return s;
  }
  static absl::Status Get(ControlClient& c, const std::string& ref, api::Config* out) {
    api::GetConfigRequest req;
    req.set_config_id(ref);
    api::GetConfigResponse resp;
    auto s = c.Call(&Stub::GetConfig, req, &resp);
    *out = resp.config();
    return s;
  }
  static absl::Status Remove(ControlClient& c, const std::string& id) {
    api::RemoveConfigRequest req;
    req.set_config_id(id);
    api::RemoveConfigResponse resp;
    return c.Call(&Stub::RemoveConfig, req, &resp);
  }
  static std::string Table(const std::vector<api::Config>& v, absl::Time now) {
    return ConfigTable(v, now);
  }
};

struct LsFlags {
  bool quiet = false;
  std::string format;
};

template <typename Kind>
void AddKind(CLI::App& app, Context& ctx, Handlers& handlers, const std::string& help) {
  auto* group = app.add_subcommand(Kind::kName, help);
  group->require_subcommand(1);
  {
    auto f = std::make_shared<CreateFlags>();
    auto* c = group->add_subcommand(
        "create", absl::StrCat("Create a ", Kind::kName, " from a file or STDIN as content"));
    c->add_option("-l,--label", f->labels, "Labels")->allow_extra_args(false);
    c->add_option("name", f->name, "Name")->required();
    c->add_option("file", f->file, "File, or - for STDIN")->required();
    handlers[c] = [&ctx, f] {
      using Spec =
          std::remove_reference_t<decltype(*std::declval<typename Kind::Object>().mutable_spec())>;
      Spec spec;
      bool usage = false;
      if (auto s = FillSpec(ctx, *f, &spec, &usage); !s.ok()) {
        return usage ? ctx.Usage(s) : ctx.Fail(s);
      }
      auto control = ctx.Control();
      if (!control.ok()) return ctx.FailOrUsage(control.status(), false);
      std::string id;
      if (auto s = Kind::Create(**control, spec, &id); !s.ok()) return ctx.Fail(s);
      ctx.out << id << "\n";
      return 0;
    };
  }
  {
    auto f = std::make_shared<LsFlags>();
    auto* c = group->add_subcommand("ls", absl::StrCat("List ", Kind::kName, "s"));
    c->alias("list");
    c->add_flag("-q,--quiet", f->quiet, "Only display IDs");
    c->add_option("--format", f->format, "Output format: table or json");
    handlers[c] = [&ctx, f] {
      using Object = typename Kind::Object;
      return ListObjects<Object>(
          ctx, f->format, f->quiet, &Kind::List,
          [&ctx](ControlClient&, const std::vector<Object>& v) -> absl::StatusOr<std::string> {
            return Kind::Table(v, ctx.Now());
          });
    };
  }
  {
    auto refs = std::make_shared<std::vector<std::string>>();
    auto* c = group->add_subcommand(
        "inspect", absl::StrCat("Display detailed information on ", Kind::kName, "s"));
    c->add_option(Kind::kName, *refs, "Names or ids")->required();
    handlers[c] = [&ctx, refs] {
      return InspectRefs<typename Kind::Object>(ctx, *refs, &Kind::Get);
    };
  }
  {
    auto refs = std::make_shared<std::vector<std::string>>();
    auto* c = group->add_subcommand("rm", absl::StrCat("Remove one or more ", Kind::kName, "s"));
    c->alias("remove");
    c->add_option(Kind::kName, *refs, "Names or ids")->required();
    handlers[c] = [&ctx, refs] {
      return ctx.ForEachRef(*refs, [](ControlClient& control, const std::string& ref) {
        typename Kind::Object o;
        if (absl::Status s = Kind::Get(control, ref, &o); !s.ok()) return s;
        return Kind::Remove(control, o.meta().id());
      });
    };
  }
}

}  // namespace

void AddSecretConfigCommands(CLI::App& app, Context& ctx, Handlers& handlers) {
  AddKind<SecretKind>(app, ctx, handlers, "Manage swarm secrets");
  AddKind<ConfigKind>(app, ctx, handlers, "Manage swarm configs");
}

}  // namespace shoal::cli
