// Fuzz target: join token parsing (untrusted input from operators' flags and from the network).
// Invariants checked beyond "no crash": a token that parses prints back to the same text and
// parses again to the same value; base36 decoding of any text never overflows its buffer.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "absl/strings/string_view.h"
#include "pki/base36.h"
#include "pki/join_token.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  absl::string_view text(reinterpret_cast<const char*>(data), size);
  absl::StatusOr<shoal::pki::JoinToken> token = shoal::pki::ParseJoinToken(text);
  if (token.ok()) {
    std::string printed = token->ToString();
    if (printed != text) std::abort();
    absl::StatusOr<shoal::pki::JoinToken> again = shoal::pki::ParseJoinToken(printed);
    if (!again.ok() || again->ca_digest != token->ca_digest || again->secret != token->secret) {
      std::abort();
    }
    if (!shoal::pki::JoinTokensEqual(printed, text)) std::abort();
  }
  absl::StatusOr<std::string> decoded = shoal::pki::DecodeBase36(text.substr(0, 64), 32);
  if (decoded.ok() && decoded->size() != 32) std::abort();
  return 0;
}
