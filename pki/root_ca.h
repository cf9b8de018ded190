// The cluster's root certificate authority: a self-signed ECDSA P-256 certificate (20 years by
// default) and its key, made once at `init` and kept with the manager state (later in the
// replicated store, as Cluster.root_ca). It signs node and operator certificates from CSRs:
//
//   subject  CN = node id (or operator name), OU = role, O = cluster id
//   validity [now - 5 min, now + validity): backdated for clock skew; 90 days by default, at
//            least 1 hour, never past the root's own expiry
//   usage    digitalSignature, keyEncipherment; serverAuth and clientAuth; not a CA
//
// The subject comes from the CA's arguments, never from the CSR.
//
// Thread-safe: a RootCa is immutable after Create/Load; Sign may run on many threads.
//
//   ASSIGN_OR_RETURN(auto ca, RootCa::Create(clock));
//   ASSIGN_OR_RETURN(std::string cert, ca->Sign({csr, node_id, api::CERTIFICATE_ROLE_WORKER,
//                                               cluster_id}));
#pragma once

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "common/clock.h"
#include "common/id.h"
#include "proto/types.pb.h"

namespace shoal::pki {

// Lifetime of the root CA certificate.
inline constexpr absl::Duration kRootCaValidity = absl::Hours(24 * 365 * 20);
// Default and minimum lifetime of node certificates (ClusterSpec.CAConfig.node_cert_expiry).
inline constexpr absl::Duration kDefaultNodeCertValidity = absl::Hours(24 * 90);
inline constexpr absl::Duration kMinNodeCertValidity = absl::Hours(1);
// How far before "now" certificates start, so a peer whose clock lags still accepts them.
inline constexpr absl::Duration kClockSkewAllowance = absl::Minutes(5);
// Longest CN (X.509's ub-common-name).
inline constexpr size_t kMaxCommonNameLength = 64;

class RootCa {
 public:
  // What to sign.
  struct SignRequest {
    // PEM CSR (untrusted: parsed and checked as ParseCsr does).
    std::string csr_pem;
    // CN: node id or operator name; 1-64 characters.
    std::string subject;
    // OU; not CERTIFICATE_ROLE_UNSPECIFIED.
    api::CertificateRole role = api::CERTIFICATE_ROLE_UNSPECIFIED;
    // O; not empty.
    std::string cluster_id;
    // Lifetime; at least kMinNodeCertValidity.
    absl::Duration validity = kDefaultNodeCertValidity;
  };

  // A new root CA: a fresh P-256 key and a self-signed certificate (CN=swarm-ca) valid for
  // `validity` from clock.Now() - kClockSkewAllowance. `clock` must outlive the RootCa.
  static absl::StatusOr<std::unique_ptr<RootCa>> Create(const Clock& clock,
                                                        absl::Duration validity = kRootCaValidity);

  // An existing root CA. INVALID_ARGUMENT if the PEMs do not parse, the certificate is not a CA,
  // or the key is not the certificate's; FAILED_PRECONDITION if the certificate has expired.
  static absl::StatusOr<std::unique_ptr<RootCa>> Load(absl::string_view cert_pem,
                                                      absl::string_view key_pem,
                                                      const Clock& clock);

  // Load(root.ca_cert(), root.ca_key(), clock).
  static absl::StatusOr<std::unique_ptr<RootCa>> FromProto(const api::RootCA& root,
                                                           const Clock& clock);

  ~RootCa();
  RootCa(const RootCa&) = delete;
  RootCa& operator=(const RootCa&) = delete;

  // PEM certificate (public) and PKCS#8 PEM key (secret).
  const std::string& cert_pem() const { return cert_pem_; }
  const std::string& key_pem() const { return key_pem_; }
  // SHA-256 of the certificate's DER (what join tokens carry), raw bytes.
  const std::string& digest() const { return digest_; }
  absl::Time not_after() const { return not_after_; }

  // The certificate, key and "sha256:<hex>" digest as stored in Cluster.root_ca (no tokens).
  api::RootCA ToProto() const;

  // Signs `request` and returns the PEM certificate. INVALID_ARGUMENT for a bad CSR, subject,
  // role, cluster id or a validity under kMinNodeCertValidity.
  absl::StatusOr<std::string> Sign(const SignRequest& request) const;

 private:
  struct Key;
  RootCa(const Clock& clock, std::unique_ptr<Key> key, std::string cert_pem, std::string key_pem,
         std::string digest, absl::Time not_after);

  const Clock& clock_;
  std::unique_ptr<Key> key_;  // the parsed key and certificate
  const std::string cert_pem_;
  const std::string key_pem_;
  const std::string digest_;
  const absl::Time not_after_;
};

// A new cluster's CA state as stored in Cluster.root_ca: a fresh root CA (RootCa::Create) and
// one join token per role with secrets from `random`.
absl::StatusOr<api::RootCA> NewClusterRootCa(const Clock& clock, const RandomBytesFn& random);

// `join-token --rotate <role>`: replaces the token of `role` in `root` with a new secret and
// returns the new token. INVALID_ARGUMENT if `root` holds no valid CA certificate.
absl::StatusOr<std::string> RotateJoinToken(api::RootCA& root, api::NodeRole role,
                                            const RandomBytesFn& random);

// The node certificate lifetime for a cluster's CA settings: the default when unset.
// INVALID_ARGUMENT when set below kMinNodeCertValidity.
absl::StatusOr<absl::Duration> NodeCertValidity(const absl::Duration* configured);

}  // namespace shoal::pki
