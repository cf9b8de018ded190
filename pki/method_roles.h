// Which certificate roles may call which gRPC method: the authorization table of every TCP
// port. Methods are named as gRPC does, "/package.Service/Method". Anything not in the table is
// refused (default deny), so a new service must be added here before it can be called.
//
//   shoal.api.Control      manager, operator
//   shoal.api.Dispatcher   worker, manager
//   shoal.api.Logs         SubscribeLogs: manager, operator;
//                          ListenSubscriptions, PublishLogs: worker, manager
//   shoal.raftpb.Raft      manager
//   shoal.api.NodeCA       open: callable without a certificate (GetRootCACertificate is public;
//                          IssueNodeCertificate checks the join token or, for a renewal, the
//                          caller's certificate itself; NodeCertificateStatus returns
//                          certificates, which are public)
//   shoal.api.NodeControl  not reachable over TCP (the unix socket only)
//
// Thread-safe (immutable table).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "absl/strings/string_view.h"
#include "proto/types.pb.h"

namespace shoal::pki {

struct MethodPolicy {
  // Callable without a client certificate (the method authenticates the caller itself).
  bool open = false;
  // Roles allowed when a certificate is presented (bit 1 << CertificateRole).
  uint32_t roles = 0;

  bool Allows(api::CertificateRole role) const { return (roles >> role) & 1u; }
  // "manager, operator" (or "anyone" for open methods with every role).
  std::string RolesString() const;
};

// The policy of `method` ("/shoal.api.Control/ListNodes"), or nullptr when the method is not in
// the table (it must be refused).
const MethodPolicy* PolicyForMethod(absl::string_view method);

// The services the table covers, "shoal.api.Control", ... (for tests and documentation).
std::vector<std::string> CoveredServices();

}  // namespace shoal::pki
