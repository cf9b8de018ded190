// Object ids: 25 lowercase base36 characters holding 128 random bits, as Docker Swarm's are
// (e.g. "3ax9y8w2r5t6u7i8o9p0q1w2e"). 128 bits make a collision between two random ids
// negligible (about 1 in 2^64 after 2^32 ids); NextUnique() also retries against a lookup, so
// even a broken random source cannot make two live objects share an id.
//
// Thread-safety: IdGenerator is thread-safe; NewId() may be called from any thread.
//
//   std::string id = shoal::NewId();
//   shoal::IdGenerator seeded(shoal::SeededRandomBytes(42));  // deterministic, for tests
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include "absl/strings/string_view.h"

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"

namespace shoal {

// Length of every id.
inline constexpr size_t kIdLength = 25;

// Fills `out` with `n` random bytes.
using RandomBytesFn = std::function<void(uint8_t* out, size_t n)>;

// Bytes from the kernel's CSPRNG (getrandom(2)); aborts if the kernel cannot provide them.
void SystemRandomBytes(uint8_t* out, size_t n);

// A deterministic source (a 64-bit Mersenne twister seeded with `seed`), for tests and
// simulations. Not for security.
RandomBytesFn SeededRandomBytes(uint64_t seed);

class IdGenerator {
 public:
  // Uses SystemRandomBytes.
  IdGenerator();
  // Uses `random` (called under the generator's lock).
  explicit IdGenerator(RandomBytesFn random);

  // A fresh id.
  std::string Next();

  // A fresh id for which `taken` returns false, e.g. one not present in the store. Returns
  // INTERNAL after 8 ids in a row were taken (the random source is broken).
  absl::StatusOr<std::string> NextUnique(const std::function<bool(absl::string_view)>& taken);

 private:
  absl::Mutex mu_;
  RandomBytesFn random_ ABSL_GUARDED_BY(mu_);
};

// A fresh id from a process-wide generator using SystemRandomBytes.
std::string NewId();

// Whether `id` has the form of an id: kIdLength characters of [0-9a-z] whose value fits in 128
// bits.
bool IsValidId(absl::string_view id);

}  // namespace shoal
