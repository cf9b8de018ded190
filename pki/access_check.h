// The authorization decision of one RPC, without gRPC: given the method and the peer's
// certificate (if it sent one), allow or refuse with a reason. grpc_authorizer.h applies it to
// every call of a gRPC server.
//
// A call is allowed when:
//   - the method is in the table (method_roles.h), and
//   - either the method is open and no certificate was sent, or the certificate
//       1. chains to the cluster's root CA and is valid at clock.Now()   else UNAUTHENTICATED
//       2. names this cluster in O                                       else PERMISSION_DENIED
//       3. is not revoked (its node was not removed from the cluster)    else PERMISSION_DENIED
//       4. carries a role (OU) the method allows                         else PERMISSION_DENIED
// A certificate-less call to a method that is not open is UNAUTHENTICATED; a method missing from
// the table is PERMISSION_DENIED. Open methods accept callers whose certificate fails 1-3 as
// anonymous (Check returns no identity and the reason in `anonymous_reason`), so the method can
// say why a renewal was refused.
//
// Thread-safe: Check may run on any number of threads. Verified certificates are cached (by the
// SHA-256 of their PEM) so repeated calls cost a hash and a map lookup; validity times and
// revocation are checked on every call.
#pragma once

#include <cstddef>
#include <functional>
#include <optional>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "common/clock.h"
#include "pki/certificate.h"

namespace shoal::pki {

// Whether a verified certificate has been revoked, e.g. because its node was removed from the
// cluster. Called on every authenticated call: it must be fast and must not block on the network.
using RevocationCheck = std::function<bool(const CertificateInfo& peer)>;

// The refusal of a node removed from the cluster (`node rm`), as every manager words it (the
// access check, and the CA's renewal): "node <id> has been removed from the cluster...". The
// node itself reads it to learn that it was removed, and leaves the swarm (node/daemon.h).
absl::Status NodeRemovedError(absl::string_view node_id, absl::string_view detail = "");
// Whether a call's refusal (`code`, `message`) says that `node_id` was removed.
bool IsNodeRemovedError(absl::StatusCode code, absl::string_view message,
                        absl::string_view node_id);

// The outcome of an allowed call.
struct AccessGrant {
  // The verified peer; absent for an anonymous call to an open method.
  std::optional<CertificateInfo> peer;
  // Why an open method's caller is anonymous although it sent a certificate ("" otherwise).
  std::string anonymous_reason;
};

class AccessCheck {
 public:
  struct Options {
    // This cluster's id (the O of every certificate it issued).
    std::string cluster_id;
    // PEM of the root CA that issued them.
    std::string root_ca_pem;
    // Verified certificates remembered at most (the cache is dropped when full; 0 = no cache).
    size_t cache_size = 4096;
  };

  // INVALID_ARGUMENT if the cluster id is empty or the root CA does not parse. `clock` must
  // outlive the AccessCheck. A null `is_revoked` revokes nothing.
  static absl::StatusOr<std::unique_ptr<AccessCheck>> Create(Options options, const Clock& clock,
                                                             RevocationCheck is_revoked);

  // Decides one call of `method` ("/shoal.api.Control/ListNodes") by a peer that presented
  // `peer_cert_pem` (nullptr when it presented none). See the file comment for the codes.
  absl::StatusOr<AccessGrant> Check(absl::string_view method,
                                    const std::string* peer_cert_pem) const;

  const std::string& cluster_id() const { return options_.cluster_id; }

 private:
  AccessCheck(Options options, const Clock& clock, RevocationCheck is_revoked);

  // The verified certificate (chain and validity at `now`), from the cache when possible.
  absl::StatusOr<CertificateInfo> Verify(const std::string& pem, absl::Time now) const;
  // Steps 1-3 of the file comment.
  absl::StatusOr<CertificateInfo> Authenticate(const std::string& pem) const;

  const Options options_;
  const Clock& clock_;
  const RevocationCheck is_revoked_;
  mutable absl::Mutex mu_;
  mutable absl::flat_hash_map<std::string, CertificateInfo> verified_ ABSL_GUARDED_BY(mu_);
};

}  // namespace shoal::pki
