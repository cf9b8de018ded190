#include "pki/base36.h"

#include <cmath>
#include <cstdint>
#include <vector>

#include "absl/strings/str_cat.h"

namespace shoal::pki {
namespace {

constexpr char kDigits[] = "0123456789abcdefghijklmnopqrstuvwxyz";

int DigitValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'z') return c - 'a' + 10;
  return -1;
}

}  // namespace

size_t Base36Width(size_t n_bytes) {
  // ceil(8 * n / log2(36)); exact for the sizes we use (16 -> 25, 32 -> 50) and checked by tests.
  if (n_bytes == 0) return 0;
  return static_cast<size_t>(std::ceil(8.0 * static_cast<double>(n_bytes) / std::log2(36.0)));
}

std::string EncodeBase36(absl::string_view bytes) {
  // Schoolbook long division of the big-endian number by 36, collecting remainders.
  std::vector<uint8_t> num(bytes.begin(), bytes.end());
  std::string out;
  size_t start = 0;
  while (start < num.size()) {
    uint32_t rem = 0;
    for (size_t i = start; i < num.size(); ++i) {
      uint32_t cur = (rem << 8) | num[i];
      num[i] = static_cast<uint8_t>(cur / 36);
      rem = cur % 36;
    }
    out.push_back(kDigits[rem]);
    while (start < num.size() && num[start] == 0) ++start;
  }
  size_t width = Base36Width(bytes.size());
  while (out.size() < width) out.push_back('0');
  return std::string(out.rbegin(), out.rend());
}

absl::StatusOr<std::string> DecodeBase36(absl::string_view digits, size_t n_bytes) {
  std::vector<uint8_t> num(n_bytes, 0);
  for (size_t pos = 0; pos < digits.size(); ++pos) {
    int d = DigitValue(digits[pos]);
    if (d < 0) {
      char c = digits[pos];
      std::string shown =
          (c >= 0x21 && c <= 0x7e)
              ? absl::StrCat("character '", std::string(1, c), "'")
              : absl::StrCat("byte 0x", absl::Hex(static_cast<uint8_t>(c), absl::kZeroPad2));
      return absl::InvalidArgumentError(
          absl::StrCat("invalid base36 ", shown, " at position ", pos, " (expected 0-9 or a-z)"));
    }
    // num = num * 36 + d, least significant byte last.
    uint32_t carry = static_cast<uint32_t>(d);
    for (size_t i = n_bytes; i-- > 0;) {
      uint32_t cur = static_cast<uint32_t>(num[i]) * 36 + carry;
      num[i] = static_cast<uint8_t>(cur & 0xff);
      carry = cur >> 8;
    }
    if (carry != 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("base36 value does not fit in ", n_bytes * 8, " bits"));
    }
  }
  return std::string(num.begin(), num.end());
}

}  // namespace shoal::pki
