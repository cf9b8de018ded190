// Operator certificates: client bundles with role operator, so that CI can run
// `swarmctl --host MANAGER:PORT --tls-dir DIR ...` without being a node.
//
// Manager side (the Control API's IssueOperatorCertificate handler calls it):
// SignOperatorCertificate checks the name and the CSR and signs CN=<name>, OU=operator,
// O=<cluster id>. Operator side: RequestOperatorBundle makes the key locally, sends only the
// CSR over a channel authenticated as a manager or operator, and returns the bundle to write
// with WriteTlsDir.
//
// Thread-safe (pure functions over thread-safe arguments).
#pragma once

#include <grpcpp/grpcpp.h>

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "pki/root_ca.h"
#include "pki/tls_files.h"
#include "proto/control.grpc.pb.h"

namespace shoal::pki {

// Default lifetime of operator certificates (they are not renewed automatically).
inline constexpr absl::Duration kDefaultOperatorCertValidity = absl::Hours(24 * 90);

// OK for 1-63 characters of [a-zA-Z0-9][a-zA-Z0-9_.-]*; INVALID_ARGUMENT naming the rule.
absl::Status ValidateOperatorName(absl::string_view name);

// The response of Control.IssueOperatorCertificate for `request`. INVALID_ARGUMENT for a bad
// name or CSR.
absl::StatusOr<api::IssueOperatorCertificateResponse> SignOperatorCertificate(
    const RootCa& ca, absl::string_view cluster_id,
    const api::IssueOperatorCertificateRequest& request,
    absl::Duration validity = kDefaultOperatorCertValidity);

// Makes a key and CSR, calls Control.IssueOperatorCertificate through `control`, checks the
// result (it carries our key, role operator, chains to the returned CA) and returns the bundle.
absl::StatusOr<TlsBundle> RequestOperatorBundle(api::Control::StubInterface& control,
                                                absl::string_view name,
                                                absl::Duration timeout = absl::Seconds(30));

}  // namespace shoal::pki
