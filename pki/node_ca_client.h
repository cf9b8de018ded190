// The node side of NodeCA: joining a cluster with a token, and renewing a certificate.
//
// Joining (JoinCluster), in this order:
//   1. parse the token locally (a malformed one never leaves the machine);
//   2. fetch the root CA over TLS without trusting the server (BootstrapClientCredentials);
//   3. check that the CA hashes to the digest in the token (CheckCaMatchesToken): if not, stop
//      with UNAUTHENTICATED; nothing secret has been sent;
//   4. reconnect trusting only that CA and requiring a manager certificate, make a key and CSR,
//      send CSR + token, read the issued certificate, and check it (chains to the CA, carries
//      our key, CN = the id we were given).
//
// Renewing (CertificateRenewer): over the node's own mutual-TLS channel, a new key and CSR
// without a token; the manager signs with the role the cluster now wants for the node (so a
// promotion or demotion shows at the next renewal, or at once with RenewNow). The new bundle is
// written to the TLS directory, where the node's gRPC credentials (tls_credentials.h) pick it
// up without a restart. Renewal is due at a random point between 50 % and 80 % of the
// certificate's life (renewal.h).
//
// Thread-safety: JoinCluster is reentrant. CertificateRenewer is thread-safe (one renewal at a
// time); Start/Stop run a background thread that checks every `poll` whether a renewal is due.
#pragma once

#include <grpcpp/grpcpp.h>

#include <memory>
#include <string>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "common/clock.h"
#include "common/id.h"
#include "pki/tls_files.h"
#include "proto/ca.grpc.pb.h"
#include "proto/specs.pb.h"

namespace shoal::pki {

struct JoinResult {
  // Key, certificate and root CA, ready for WriteTlsDir.
  TlsBundle bundle;
  // The id the cluster gave the node (the certificate's CN).
  std::string node_id;
  // The role the token granted.
  api::NodeRole role = api::NODE_ROLE_WORKER;
  // The cluster id (the certificate's O).
  std::string cluster_id;
};

// Joins the cluster whose manager listens at `manager_address` ("host:port") with `token`.
// INVALID_ARGUMENT for a malformed token; UNAUTHENTICATED if the manager's CA does not match
// the token; the manager's code (PERMISSION_DENIED for a rotated token, ...) otherwise;
// DEADLINE_EXCEEDED / UNAVAILABLE when the manager cannot be reached within `timeout`.
absl::StatusOr<JoinResult> JoinCluster(
    const std::string& manager_address, absl::string_view token,
    api::NodeSpec::Availability availability = api::NodeSpec::AVAILABILITY_ACTIVE,
    absl::Duration timeout = absl::Seconds(30));

class CertificateRenewer {
 public:
  struct Options {
    // The node's TLS directory (read for the current identity, rewritten on renewal).
    std::string tls_dir;
    // Draws the renewal point in the 50-80 % window.
    RandomBytesFn random;
    // Deadline of each renewal's RPCs.
    absl::Duration rpc_timeout = absl::Seconds(30);
  };

  // `channel` is a mutual-TLS channel to any manager made with ClientCredentials(tls_dir, ...).
  // `clock` must outlive the renewer. FAILED_PRECONDITION if the directory holds no valid
  // bundle.
  static absl::StatusOr<std::unique_ptr<CertificateRenewer>> Create(
      Options options, std::shared_ptr<grpc::ChannelInterface> channel, const Clock& clock);
  ~CertificateRenewer();

  // When the next renewal is due.
  absl::Time next_renewal() const;

  // Renews if clock.Now() >= next_renewal(). Returns whether it renewed; an error leaves the
  // current certificate in place (the next call retries).
  absl::StatusOr<bool> RenewIfDue();

  // Renews now (after a role change). The errors of the NodeCA calls, or of the returned
  // certificate's checks.
  absl::Status RenewNow();

  // Checks every `poll` on a background thread until Stop (or destruction). Start and Stop are
  // called from the owner's thread only (they are not synchronised with each other).
  void Start(absl::Duration poll);
  void Stop();

 private:
  CertificateRenewer(Options options, std::shared_ptr<grpc::ChannelInterface> channel,
                     const Clock& clock, absl::Time next);
  absl::Status RenewLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const Options options_;
  const std::unique_ptr<api::NodeCA::Stub> stub_;
  const Clock& clock_;
  mutable absl::Mutex mu_;
  absl::Time next_renewal_ ABSL_GUARDED_BY(mu_);
  RandomBytesFn random_ ABSL_GUARDED_BY(mu_);
  std::unique_ptr<absl::Notification> stop_;
  std::thread thread_;
};

}  // namespace shoal::pki
