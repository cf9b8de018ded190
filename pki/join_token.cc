#include "pki/join_token.h"

#include <openssl/crypto.h>
#include <openssl/sha.h>

#include <algorithm>
#include <cstdint>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/status_macros.h"
#include "pki/base36.h"
#include "pki/openssl_util.h"

namespace shoal::pki {
namespace {

bool IsBase36Digit(char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z'); }

// Printable excerpt of non-secret input for error messages.
std::string Quote(absl::string_view s) {
  std::string out = absl::CHexEscape(s.substr(0, 16));
  if (s.size() > 16) out += "...";
  return absl::StrCat("\"", out, "\"");
}

}  // namespace

std::string JoinToken::ToString() const {
  return absl::StrCat(kJoinTokenPrefix, EncodeBase36(ca_digest), "-", secret);
}

absl::StatusOr<JoinToken> ParseJoinToken(absl::string_view text) {
  constexpr absl::string_view kShape =
      "SWMTKN-1-<CA digest, 50 characters>-<secret, 25 characters>";
  if (text.empty()) return absl::InvalidArgumentError("join token is empty");
  if (text.size() > kMaxJoinTokenLength) {
    return absl::InvalidArgumentError(
        absl::StrCat("join token is ", text.size(), " characters long; a valid one has ",
                     kJoinTokenPrefix.size() + kCaDigestDigits + 1 + kSecretDigits));
  }
  std::vector<absl::string_view> parts = absl::StrSplit(text, '-');
  if (parts[0] != "SWMTKN") {
    return absl::InvalidArgumentError(absl::StrCat("join token must start with \"SWMTKN-\", not ",
                                                   Quote(parts[0]), " (expected ", kShape, ")"));
  }
  if (parts.size() < 2 || parts[1] != "1") {
    return absl::InvalidArgumentError(
        absl::StrCat("unsupported join token version ", parts.size() < 2 ? "\"\"" : Quote(parts[1]),
                     ": this version of Shoal reads version 1 (", kShape, ")"));
  }
  if (parts.size() != 4) {
    return absl::InvalidArgumentError(absl::StrCat(
        "join token has ", parts.size(), " parts separated by '-', expected 4 (", kShape, ")"));
  }
  absl::string_view digest = parts[2];
  absl::string_view secret = parts[3];
  if (digest.size() != kCaDigestDigits) {
    return absl::InvalidArgumentError(absl::StrCat("CA digest in the join token has ",
                                                   digest.size(), " characters, expected ",
                                                   kCaDigestDigits));
  }
  absl::StatusOr<std::string> digest_bytes = DecodeBase36(digest, kCaDigestBytes);
  if (!digest_bytes.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("CA digest in the join token: ", digest_bytes.status().message()));
  }
  if (secret.size() != kSecretDigits) {
    return absl::InvalidArgumentError(absl::StrCat("secret in the join token has ", secret.size(),
                                                   " characters, expected ", kSecretDigits));
  }
  // Checked here rather than by DecodeBase36 so that no character of the secret is echoed.
  for (size_t i = 0; i < secret.size(); ++i) {
    if (!IsBase36Digit(secret[i])) {
      return absl::InvalidArgumentError(
          absl::StrCat("secret in the join token has an invalid character at position ", i,
                       " (expected 0-9 or a-z)"));
    }
  }
  if (!DecodeBase36(secret, kSecretBytes).ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("secret in the join token does not fit in ", kSecretBytes * 8, " bits"));
  }
  return JoinToken{*std::move(digest_bytes), std::string(secret)};
}

JoinToken GenerateJoinToken(absl::string_view ca_digest, const RandomBytesFn& random) {
  uint8_t bytes[kSecretBytes];
  random(bytes, sizeof(bytes));
  std::string secret =
      EncodeBase36(absl::string_view(reinterpret_cast<const char*>(bytes), sizeof(bytes)));
  OPENSSL_cleanse(bytes, sizeof(bytes));
  return JoinToken{std::string(ca_digest), std::move(secret)};
}

bool JoinTokensEqual(absl::string_view presented, absl::string_view expected) {
  // Compare over a fixed-size buffer so that neither the length nor the position of the first
  // difference shows in the timing; the lengths are compared separately at the end.
  constexpr size_t kBuf = kMaxJoinTokenLength;
  if (presented.size() > kBuf || expected.size() > kBuf) return false;
  unsigned char a[kBuf] = {};
  unsigned char b[kBuf] = {};
  std::copy(presented.begin(), presented.end(), a);
  std::copy(expected.begin(), expected.end(), b);
  // Branch-free combination of the three conditions.
  unsigned same_bytes = CRYPTO_memcmp(a, b, kBuf) == 0 ? 1u : 0u;
  OPENSSL_cleanse(a, kBuf);
  OPENSSL_cleanse(b, kBuf);
  unsigned same_length = presented.size() == expected.size() ? 1u : 0u;
  unsigned expected_set = expected.empty() ? 0u : 1u;
  return (same_bytes & same_length & expected_set) != 0;
}

absl::StatusOr<std::string> CaDigest(absl::string_view ca_cert_pem) {
  ASSIGN_OR_RETURN(internal::X509Ptr cert, internal::ParseX509Pem(ca_cert_pem, "CA certificate"));
  std::string der = internal::X509ToDer(cert.get());
  unsigned char md[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char*>(der.data()), der.size(), md);
  return std::string(reinterpret_cast<char*>(md), sizeof(md));
}

std::string DigestToHexString(absl::string_view digest) {
  return absl::StrCat("sha256:", absl::BytesToHexString(digest));
}

absl::Status CheckCaMatchesToken(const JoinToken& token, absl::string_view ca_cert_pem) {
  ASSIGN_OR_RETURN(std::string digest, CaDigest(ca_cert_pem));
  if (digest != token.ca_digest) {
    return absl::UnauthenticatedError(absl::StrCat(
        "the manager's root CA (", DigestToHexString(digest),
        ") does not match the CA digest in the join token (", DigestToHexString(token.ca_digest),
        "): not sending the token; check that the token is for this cluster"));
  }
  return absl::OkStatus();
}

}  // namespace shoal::pki
