// Node and operator certificates: what Shoal reads from them and how it checks them.
//
// Every certificate the cluster CA issues names its holder in the subject:
//   CN = node id (or the operator's name), OU = role ("manager", "worker", "operator"),
//   O  = cluster id.
// Each attribute appears exactly once; a certificate with none or several is refused.
//
// Thread-safe (pure functions).
//
//   ASSIGN_OR_RETURN(CertificateInfo peer, VerifyCertificate(pem, root_ca_pem, clock.Now()));
//   if (peer.role != api::CERTIFICATE_ROLE_MANAGER) ...
#pragma once

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "proto/types.pb.h"

namespace shoal::pki {

// The OU of a role: "manager", "worker", "operator"; "" for CERTIFICATE_ROLE_UNSPECIFIED.
absl::string_view RoleName(api::CertificateRole role);

// The role whose OU is `ou`. INVALID_ARGUMENT for anything else.
absl::StatusOr<api::CertificateRole> RoleFromName(absl::string_view ou);

// The certificate role of a node role.
api::CertificateRole CertificateRoleOf(api::NodeRole role);

// What a certificate says about its holder.
struct CertificateInfo {
  // CN: the node id, or an operator's name.
  std::string subject;
  // OU.
  api::CertificateRole role = api::CERTIFICATE_ROLE_UNSPECIFIED;
  // O.
  std::string cluster_id;
  // Validity.
  absl::Time not_before;
  absl::Time not_after;
  // Serial number in lowercase hex.
  std::string serial;
  // CN of the issuer.
  std::string issuer;
  // DER SubjectPublicKeyInfo, to match a certificate with its key or CSR.
  std::string public_key;
};

// Reads one PEM certificate without checking who signed it or when it is valid. INVALID_ARGUMENT
// if `pem` is not exactly one certificate, or its subject lacks (or repeats) CN, OU or O, or the
// OU is not a role.
absl::StatusOr<CertificateInfo> ParseCertificate(absl::string_view pem);

// ParseCertificate, and checks that `pem` was signed by the root CA `root_ca_pem` and is valid
// at `now`. UNAUTHENTICATED with the reason otherwise: "certificate expired at ...", "... not
// valid before ...", "... not issued by this cluster's root CA". INVALID_ARGUMENT as
// ParseCertificate, or if `root_ca_pem` is not a certificate.
absl::StatusOr<CertificateInfo> VerifyCertificate(absl::string_view pem,
                                                  absl::string_view root_ca_pem, absl::Time now);

}  // namespace shoal::pki
