// Fuzz target: CheckWalFile (raft/wal_check.h), which reads a RocksDB write-ahead log before
// the store opens. A false DATA_LOSS keeps a healthy manager from starting, a crash keeps any
// from starting, so beyond "no crash on any bytes" it checks what must be accepted:
// - a log written as RocksDB writes it (records of the fuzzer's payloads, any sizes, fragmented
//   across 32 KiB blocks; payloads may hold anything, record-shaped bytes included) is accepted;
// - so is the same log cut short anywhere (a crash tore its last write).
// And what must be refused: a byte of a header before the last record changed so that the
// record no longer checks out, with whole records after it, is DATA_LOSS unless the change
// leaves a header that is whole and runs past the file's end (taken for a torn write, as
// RocksDB takes it).
// TornWriteOverZeros (a log written over zeros laid down ahead of it, wal_prefill.h): on any
// bytes, what it would cut at leaves a log CheckWalFile accepts; a whole log followed by zeros
// has nothing cut off; the same log cut short anywhere with zeros after it (a power cut in the
// middle of a write over the zeros) is accepted, after the cut if one is asked for, and the
// cut never reaches into a record before the one the power cut tore.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <algorithm>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "raft/testing/wal_writer.h"
#include "raft/wal_check.h"

namespace {

[[noreturn]] void Broken(const char* what, const absl::Status& st) {
  std::fprintf(stderr, "wal_check_fuzzer: %s: %s\n", what, st.ToString().c_str());
  std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using shoal::raft::CheckWalFile;
  using shoal::raft::TornWriteOverZeros;
  const std::string raw(reinterpret_cast<const char*>(data), size);
  (void)CheckWalFile("raw", raw);  // any bytes: an answer, no crash
  if (std::optional<size_t> torn = TornWriteOverZeros(raw)) {
    if (*torn >= raw.size()) Broken("a cut at or past the end", absl::OkStatus());
    if (absl::Status s = CheckWalFile("raw cut", raw.substr(0, *torn)); !s.ok()) {
      Broken("what is left after cutting a torn write off refused", s);
    }
  }
  if (size < 4) return 0;

  // Records from the input: [length byte, scale byte, payload...]; a scale makes some records
  // span blocks.
  std::vector<std::string> records;
  size_t at = 4;
  while (at + 2 <= size && records.size() < 64) {
    size_t n = data[at];
    const uint8_t scale = data[at + 1];
    at += 2;
    std::string payload(reinterpret_cast<const char*>(data) + at, std::min(n, size - at));
    at += payload.size();
    if (scale >= 250) payload.append(static_cast<size_t>(scale - 249) * 9000, 'p');
    if (!payload.empty()) records.push_back(std::move(payload));
  }
  if (records.empty()) return 0;
  const std::string wal = shoal::raft::testing::WalFile(records);
  if (absl::Status s = CheckWalFile("whole", wal); !s.ok()) Broken("a whole log refused", s);

  const size_t cut =
      (static_cast<size_t>(data[0]) << 16 | static_cast<size_t>(data[1]) << 8 | data[2]) %
      (wal.size() + 1);
  if (absl::Status s = CheckWalFile("torn", wal.substr(0, cut)); !s.ok()) {
    Broken("a log cut short refused", s);
  }

  // Over zeros: the whole log, and the log torn at `cut`, with zeros after.
  const std::string zeros(4096 + data[3] * 131, '\0');
  if (TornWriteOverZeros(wal + zeros)) Broken("a whole log over zeros cut", absl::OkStatus());
  if (absl::Status s = CheckWalFile("whole over zeros", wal + zeros); !s.ok()) {
    Broken("a whole log over zeros refused", s);
  }
  std::string torn_over_zeros = wal.substr(0, cut) + std::string(wal.size() - cut, '\0') + zeros;
  if (std::optional<size_t> torn = TornWriteOverZeros(torn_over_zeros)) {
    // Where the record holding the byte at `cut` (or the last whole one before it) begins.
    size_t start = 0;
    for (size_t at = 0; at < cut;) {
      if (32768 - at % 32768 < 7) {
        at += 32768 - at % 32768;
        continue;
      }
      start = at;
      at += 7 + (static_cast<uint8_t>(wal[at + 4]) |
                 static_cast<size_t>(static_cast<uint8_t>(wal[at + 5])) << 8);
    }
    if (*torn < start) Broken("a cut into the records before the torn one", absl::OkStatus());
    torn_over_zeros.resize(*torn);
  }
  if (absl::Status s = CheckWalFile("torn over zeros", torn_over_zeros); !s.ok()) {
    Broken("a log torn over zeros refused", s);
  }

  // Damage one header byte of the first record (when more whole records follow it).
  if (records.size() >= 2 && records[0].size() + 7 <= 32768 - 7) {
    std::string damaged = wal;
    const size_t byte = 4 + data[3] % 3;  // the length (two bytes) or the type
    const char before = damaged[byte];
    damaged[byte] = static_cast<char>(before ^ (1 + data[3] / 3 % 255));
    const size_t length = static_cast<uint8_t>(damaged[4]) |
                          static_cast<size_t>(static_cast<uint8_t>(damaged[5])) << 8;
    const int type = static_cast<uint8_t>(damaged[6]);
    const bool looks_torn = ((type >= 1 && type <= 4) || type == 9) && 7 + length <= 32768 &&
                            7 + length > damaged.size();
    const absl::Status s = CheckWalFile("damaged", damaged);
    if (!looks_torn && s.code() != absl::StatusCode::kDataLoss) {
      Broken("a damaged header before whole records accepted", s);
    }
  }
  return 0;
}
