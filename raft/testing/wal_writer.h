// RocksDB write-ahead log bytes written the way RocksDB 7's log writer writes them (see
// raft/wal_check.h for the format), with a CRC-32C of its own (bit by bit): for tests that
// plant record-shaped bytes, and for the fuzzer of CheckWalFile.
#pragma once

#include <algorithm>
#include <cstdint>
#include <string>
#include <vector>

namespace shoal::raft::testing {

inline uint32_t MaskedCrc32c(const std::string& bytes) {
  uint32_t crc = 0xffffffffu;
  for (unsigned char c : bytes) {
    crc ^= c;
    for (int k = 0; k < 8; ++k) crc = (crc >> 1) ^ (0x82f63b78u & (0u - (crc & 1u)));
  }
  crc ^= 0xffffffffu;
  return ((crc >> 15) | (crc << 17)) + 0xa282ead8u;
}

// One physical record: header (masked CRC of type and payload, length, type) and payload.
inline std::string WalPhysicalRecord(uint8_t type, const std::string& payload) {
  const uint32_t masked = MaskedCrc32c(std::string(1, static_cast<char>(type)) + payload);
  std::string h(7, '\0');
  for (int i = 0; i < 4; ++i) h[i] = static_cast<char>(masked >> (8 * i));
  h[4] = static_cast<char>(payload.size() & 0xff);
  h[5] = static_cast<char>(payload.size() >> 8);
  h[6] = static_cast<char>(type);
  return h + payload;
}

// A log file holding `records` (each a logical record: a full one, or first/middle/last
// fragments across 32 KiB blocks; a block's last bytes, too few for a header, are zeros).
inline std::string WalFile(const std::vector<std::string>& records) {
  constexpr size_t kBlock = 32768, kHeader = 7;
  std::string out;
  for (const std::string& record : records) {
    size_t at = 0;
    bool begin = true;
    do {
      const size_t left = kBlock - out.size() % kBlock;
      if (left < kHeader) {
        out.append(left, '\0');
        continue;
      }
      const size_t n = std::min(record.size() - at, left - kHeader);
      const bool end = at + n == record.size();
      const uint8_t type = begin && end ? 1 : begin ? 2 : end ? 4 : 3;
      out += WalPhysicalRecord(type, record.substr(at, n));
      at += n;
      begin = false;
    } while (at < record.size());
  }
  return out;
}

}  // namespace shoal::raft::testing
