// Whether a RocksDB write-ahead log file holds damage RocksDB's replay would take for a torn
// last write, and drop every write after it without a word.
//
// RocksDB replays its write-ahead log with kTolerateCorruptedTailRecords: it stops, without a
// word, at the first record that does not check out when that record is in the last block of
// the file or claims to run past its end, and skips the rest of a block after a header of
// zeros, taking either for a write a crash tore. A disk that damages one header byte there
// (or three of them) thus dropped every synced, acknowledged write after it: votes and entries
// this member had promised. A torn write is the last thing in its file: RocksDB starts a new
// file after a crash, and a record after it was written after it (with the page cache written
// back in order, on the disk only if it is too). So before RocksDB opens the store, each log
// file is read here. A record whose header is whole (a known type, a length within its block)
// and that runs past the file's end is the torn last write, as RocksDB takes it: nothing after
// it is looked at (its own payload is a client's data, and may hold bytes shaped like a
// record). Otherwise, after the first record that does not check out, nothing may follow that
// does. (Out-of-order writeback can leave a record damaged before good ones after a power cut;
// RocksDB refuses a checksum mismatch there itself, and the store is then refused: measured by
// LosingPowerWithOutOfOrderWritebackNeverOpensAWrongState.)
//
// The format (RocksDB 7, log_format.h; files written without recycling, as here): 32 KiB
// blocks; a block's last 0-6 bytes are zeros; records are a 7-byte header (masked CRC-32C of
// the type byte and the payload, little-endian; payload length, 2 bytes little-endian; type:
// 1 full, 2 first, 3 middle, 4 last fragment, 9 compression type) and the payload, never
// across a block's end.

#pragma once

#include <string>

#include "absl/status/status.h"

namespace shoal::raft {

// OK, or DATA_LOSS naming `name` and the byte where the damage is. `bytes` is the whole file.
absl::Status CheckWalFile(const std::string& name, const std::string& bytes);

}  // namespace shoal::raft
