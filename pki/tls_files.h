// A TLS identity on disk: the directory a node keeps its certificate in, and the --tls-dir of
// `swarmctl`. Three PEM files:
//
//   key.pem   the private key (mode 0600; never leaves the machine)
//   cert.pem  the certificate the cluster CA issued for it
//   ca.pem    the cluster's root CA certificate
//
// WriteTlsDir replaces each file atomically (write to a temporary file, fsync, rename), key
// first, so that a reader (gRPC's file watcher in tls_credentials.h) sees either the old or the
// new pair; it skips a key that does not match its certificate and retries at its next refresh.
//
// Thread-safe (no shared state); concurrent writers of one directory must be serialised by the
// caller.
#pragma once

#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace shoal::pki {

inline constexpr char kKeyFile[] = "key.pem";
inline constexpr char kCertFile[] = "cert.pem";
inline constexpr char kCaFile[] = "ca.pem";

struct TlsBundle {
  std::string key_pem;
  std::string cert_pem;
  std::string ca_pem;
};

// Writes `bundle` into `dir` (created with mode 0700 if missing). INTERNAL naming the path on an
// I/O error.
absl::Status WriteTlsDir(const std::string& dir, const TlsBundle& bundle);

// Reads the three files. NOT_FOUND naming the missing file.
absl::StatusOr<TlsBundle> ReadTlsDir(const std::string& dir);

// OK if the key belongs to the certificate and the certificate chains to the CA at `now`; the
// codes of VerifyCertificate otherwise, INVALID_ARGUMENT for a key that does not match.
absl::Status CheckTlsBundle(const TlsBundle& bundle, absl::Time now);

}  // namespace shoal::pki
