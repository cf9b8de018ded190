// Test helpers: a cluster CA with TLS directories for any role, and a loopback gRPC server
// carrying stub Control, Dispatcher, Raft and Logs services behind Shoal's mutual TLS.
//
// Thread-safe as far as the members say; used from one test thread.
#pragma once

#include <grpcpp/grpcpp.h>

#include <memory>
#include <string>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "common/clock.h"
#include "pki/access_check.h"
#include "pki/root_ca.h"
#include "pki/tls_files.h"

namespace shoal::pki::testing {

// A fresh directory under $TEST_TMPDIR (unique per call).
std::string NewTempDir(absl::string_view name);

class TestPki {
 public:
  // A new root CA for `cluster_id`, signing with `clock`.
  static absl::StatusOr<std::unique_ptr<TestPki>> Create(std::string cluster_id,
                                                         const Clock& clock);

  RootCa& ca() { return *ca_; }
  const std::string& cluster_id() const { return cluster_id_; }

  // A key, a certificate (CN=`subject`, OU=`role`, O=`cluster_id` or this cluster's) and the CA.
  absl::StatusOr<TlsBundle> Issue(absl::string_view subject, api::CertificateRole role,
                                  absl::Duration validity = kDefaultNodeCertValidity,
                                  absl::string_view cluster_id = "");
  // Issue, written to a new directory; returns the directory.
  absl::StatusOr<std::string> IssueDir(absl::string_view subject, api::CertificateRole role,
                                       absl::Duration validity = kDefaultNodeCertValidity,
                                       absl::string_view cluster_id = "");

 private:
  TestPki(std::string cluster_id, std::unique_ptr<RootCa> ca)
      : cluster_id_(std::move(cluster_id)), ca_(std::move(ca)) {}
  std::string cluster_id_;
  std::unique_ptr<RootCa> ca_;
};

// Node ids a test marks as removed; its Check() is a RevocationCheck.
class RemovedNodes {
 public:
  void Remove(const std::string& node_id) {
    absl::MutexLock lock(&mu_);
    removed_.insert(node_id);
  }
  RevocationCheck Check() {
    return [this](const CertificateInfo& peer) {
      absl::MutexLock lock(&mu_);
      return removed_.contains(peer.subject);
    };
  }

 private:
  absl::Mutex mu_;
  absl::flat_hash_set<std::string> removed_ ABSL_GUARDED_BY(mu_);
};

// A gRPC server on 127.0.0.1:0 with ServerCredentials(tls_dir, check) and the given services
// plus stubs whose methods GetCluster (Control), Heartbeat (Dispatcher), ResolveAddress (Raft)
// and ListenSubscriptions... answer OK (every other method answers UNIMPLEMENTED, which also
// proves that the call got past authorization).
class StubServer {
 public:
  static absl::StatusOr<std::unique_ptr<StubServer>> Start(
      const std::string& tls_dir, std::shared_ptr<const AccessCheck> check,
      std::vector<grpc::Service*> extra_services = {}, absl::Duration refresh = absl::Seconds(1));
  ~StubServer();

  std::string address() const { return address_; }

 private:
  StubServer() = default;
  struct Services;
  std::unique_ptr<Services> services_;
  std::unique_ptr<grpc::Server> server_;
  std::string address_;
};

}  // namespace shoal::pki::testing
