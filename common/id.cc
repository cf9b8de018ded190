#include "common/id.h"

#include <sys/random.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <random>

namespace shoal {
namespace {

using uint128 = unsigned __int128;

constexpr char kDigits[] = "0123456789abcdefghijklmnopqrstuvwxyz";

std::string EncodeBase36(uint128 value) {
  std::string out(kIdLength, '0');
  for (size_t i = kIdLength; i-- > 0 && value != 0;) {
    out[i] = kDigits[static_cast<int>(value % 36)];
    value /= 36;
  }
  return out;
}

}  // namespace

void SystemRandomBytes(uint8_t* out, size_t n) {
  size_t done = 0;
  while (done < n) {
    ssize_t got = getrandom(out + done, n - done, 0);
    if (got < 0) {
      if (errno == EINTR) continue;
      // Without randomness no id, key or token can be made safely: stop loudly.
      std::fprintf(stderr, "getrandom failed: %s\n", std::strerror(errno));
      std::abort();
    }
    done += static_cast<size_t>(got);
  }
}

RandomBytesFn SeededRandomBytes(uint64_t seed) {
  auto engine = std::make_shared<std::mt19937_64>(seed);
  return [engine](uint8_t* out, size_t n) {
    for (size_t i = 0; i < n; ++i) out[i] = static_cast<uint8_t>((*engine)() >> 56);
  };
}

IdGenerator::IdGenerator() : IdGenerator(SystemRandomBytes) {}

IdGenerator::IdGenerator(RandomBytesFn random) : random_(std::move(random)) {}

std::string IdGenerator::Next() {
  uint8_t bytes[16];
  {
    absl::MutexLock lock(&mu_);
    random_(bytes, sizeof(bytes));
  }
  uint128 value = 0;
  for (uint8_t b : bytes) value = value << 8 | b;
  return EncodeBase36(value);
}

absl::StatusOr<std::string> IdGenerator::NextUnique(
    const std::function<bool(absl::string_view)>& taken) {
  for (int attempt = 0; attempt < 8; ++attempt) {
    std::string id = Next();
    if (!taken(id)) return id;
  }
  return absl::InternalError("8 random ids in a row were already taken: the random source is broken");
}

std::string NewId() {
  static IdGenerator* generator = new IdGenerator();
  return generator->Next();
}

bool IsValidId(absl::string_view id) {
  if (id.size() != kIdLength) return false;
  uint128 value = 0;
  const uint128 max = ~uint128{0};
  for (char c : id) {
    int digit;
    if (c >= '0' && c <= '9') {
      digit = c - '0';
    } else if (c >= 'a' && c <= 'z') {
      digit = c - 'a' + 10;
    } else {
      return false;
    }
    if (value > (max - digit) / 36) return false;  // more than 128 bits
    value = value * 36 + digit;
  }
  return true;
}

}  // namespace shoal
