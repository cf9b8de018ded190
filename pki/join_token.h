// Join tokens: SWMTKN-1-<CA digest>-<secret>, as Docker Swarm writes them.
//
//   SWMTKN-1-<SHA-256 of the root CA certificate (DER), base36, 50 digits>-<secret, 25 digits>
//
// The digest pins the cluster's root CA: a joining node refuses a manager whose CA does not hash
// to it, before it sends the token (CheckCaMatchesToken). The secret is 128 random bits; the
// cluster keeps one token per role (worker, manager) and compares a presented token with
// JoinTokensEqual, in time that does not depend on where the two differ. Rotating a token
// replaces its secret, so the old one stops matching.
//
// Thread-safe (pure functions).
//
//   ASSIGN_OR_RETURN(JoinToken token, ParseJoinToken(flag_token));
//   RETURN_IF_ERROR(CheckCaMatchesToken(token, ca_pem_from_manager));
#pragma once

#include <cstddef>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "common/id.h"

namespace shoal::pki {

// "SWMTKN-1-" (format version 1).
inline constexpr absl::string_view kJoinTokenPrefix = "SWMTKN-1-";
// Bytes of the CA digest (SHA-256) and base36 digits it is written with.
inline constexpr size_t kCaDigestBytes = 32;
inline constexpr size_t kCaDigestDigits = 50;
// Bytes of the secret and base36 digits it is written with.
inline constexpr size_t kSecretBytes = 16;
inline constexpr size_t kSecretDigits = 25;
// Longest accepted input; a valid token has 9 + 50 + 1 + 25 = 85 characters.
inline constexpr size_t kMaxJoinTokenLength = 256;

struct JoinToken {
  // SHA-256 of the root CA certificate's DER encoding (kCaDigestBytes raw bytes).
  std::string ca_digest;
  // The secret as written (kSecretDigits base36 digits).
  std::string secret;

  // "SWMTKN-1-<digest>-<secret>".
  std::string ToString() const;
};

// Parses `text`. INVALID_ARGUMENT with a message that names what is wrong (prefix, version,
// number of parts, length or alphabet of the digest or of the secret) and never quotes the secret.
absl::StatusOr<JoinToken> ParseJoinToken(absl::string_view text);

// A new token for the CA whose digest is `ca_digest` (kCaDigestBytes bytes, see CaDigest), with
// a secret of kSecretBytes from `random`.
JoinToken GenerateJoinToken(absl::string_view ca_digest, const RandomBytesFn& random);

// Whether `presented` equals `expected`. Compares in time independent of the contents
// (CRYPTO_memcmp over the longer length), so a caller cannot find the secret byte by byte.
bool JoinTokensEqual(absl::string_view presented, absl::string_view expected);

// SHA-256 of the DER encoding of the single certificate in `ca_cert_pem`. INVALID_ARGUMENT if
// `ca_cert_pem` is not one PEM certificate.
absl::StatusOr<std::string> CaDigest(absl::string_view ca_cert_pem);

// "sha256:<64 hex digits>" of a raw digest (the RootCA.ca_cert_hash form).
std::string DigestToHexString(absl::string_view digest);

// OK if `ca_cert_pem` hashes to the digest in `token`. UNAUTHENTICATED otherwise (the manager
// shows another cluster's CA, or someone in between does): the caller must not send the token.
absl::Status CheckCaMatchesToken(const JoinToken& token, absl::string_view ca_cert_pem);

}  // namespace shoal::pki
