#include "pki/method_roles.h"

#include "absl/strings/str_join.h"
#include "absl/strings/strip.h"
#include "pki/certificate.h"

namespace shoal::pki {
namespace {

constexpr uint32_t Bit(api::CertificateRole r) { return 1u << r; }
constexpr uint32_t kWorker = Bit(api::CERTIFICATE_ROLE_WORKER);
constexpr uint32_t kManager = Bit(api::CERTIFICATE_ROLE_MANAGER);
constexpr uint32_t kOperator = Bit(api::CERTIFICATE_ROLE_OPERATOR);

struct Entry {
  // A full method name, or a service name with a trailing '/' (every method of it).
  absl::string_view name;
  MethodPolicy policy;
};

// Exact methods are listed before their service's catch-all; the first match wins.
constexpr Entry kTable[] = {
    {"/shoal.api.Control/", {false, kManager | kOperator}},
    {"/shoal.api.Dispatcher/", {false, kWorker | kManager}},
    {"/shoal.api.Logs/SubscribeLogs", {false, kManager | kOperator}},
    {"/shoal.api.Logs/ListenSubscriptions", {false, kWorker | kManager}},
    {"/shoal.api.Logs/PublishLogs", {false, kWorker | kManager}},
    {"/shoal.raftpb.Raft/", {false, kManager}},
    {"/shoal.api.NodeCA/GetRootCACertificate", {true, kWorker | kManager | kOperator}},
    {"/shoal.api.NodeCA/IssueNodeCertificate", {true, kWorker | kManager | kOperator}},
    {"/shoal.api.NodeCA/NodeCertificateStatus", {true, kWorker | kManager | kOperator}},
};

}  // namespace

std::string MethodPolicy::RolesString() const {
  std::vector<absl::string_view> names;
  for (api::CertificateRole r : {api::CERTIFICATE_ROLE_MANAGER, api::CERTIFICATE_ROLE_WORKER,
                                 api::CERTIFICATE_ROLE_OPERATOR}) {
    if (Allows(r)) names.push_back(RoleName(r));
  }
  if (names.empty()) return "none";
  return absl::StrJoin(names, ", ");
}

const MethodPolicy* PolicyForMethod(absl::string_view method) {
  for (const Entry& e : kTable) {
    if (e.name.back() == '/') {
      absl::string_view rest = method;
      if (absl::ConsumePrefix(&rest, e.name) && !rest.empty() &&
          rest.find('/') == absl::string_view::npos) {
        return &e.policy;
      }
    } else if (method == e.name) {
      return &e.policy;
    }
  }
  return nullptr;
}

std::vector<std::string> CoveredServices() {
  return {"shoal.api.Control", "shoal.api.Dispatcher", "shoal.api.Logs", "shoal.raftpb.Raft",
          "shoal.api.NodeCA"};
}

}  // namespace shoal::pki
