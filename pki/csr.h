// Private keys and certificate signing requests. A node (or operator) makes its own key and
// sends only a CSR; the key never leaves the machine that made it.
//
// Keys are ECDSA P-256, PKCS#8 PEM. CSRs are PEM PKCS#10, signed with SHA-256.
//
// Thread-safe (pure functions; keys come from OpenSSL's CSPRNG).
//
//   ASSIGN_OR_RETURN(KeyAndCsr kc, GenerateKeyAndCsr("node"));
//   request.set_csr(kc.csr_pem);
#pragma once

#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace shoal::pki {

// A fresh ECDSA P-256 private key, PKCS#8 PEM.
absl::StatusOr<std::string> GeneratePrivateKey();

// A CSR for `key_pem` whose subject is CN=`common_name`. The CA ignores the requested subject
// (it decides CN, OU and O); the CN only helps a person reading the CSR.
absl::StatusOr<std::string> CreateCsr(absl::string_view key_pem, absl::string_view common_name);

struct KeyAndCsr {
  std::string key_pem;
  std::string csr_pem;
};

// GeneratePrivateKey then CreateCsr.
absl::StatusOr<KeyAndCsr> GenerateKeyAndCsr(absl::string_view common_name);

// What the CA reads from a CSR.
struct CsrInfo {
  // The requested CN ("" if none).
  std::string common_name;
  // DER SubjectPublicKeyInfo of the key to certify.
  std::string public_key;
};

// Parses a PEM CSR (untrusted input: this is what the NodeCA service reads from the network)
// and checks its self-signature. INVALID_ARGUMENT when it is empty, larger than 64 KiB, not one
// PEM CSR, signed with another key than its own, or for a key other than ECDSA P-256/P-384 or
// RSA of 2048 bits or more.
absl::StatusOr<CsrInfo> ParseCsr(absl::string_view csr_pem);

// DER SubjectPublicKeyInfo of the public half of `key_pem`.
absl::StatusOr<std::string> PublicKeyOf(absl::string_view key_pem);

}  // namespace shoal::pki
