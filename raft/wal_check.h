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

#include <rocksdb/wal_filter.h>

#include <cstdint>
#include <optional>
#include <string>

#include "absl/status/status.h"

namespace shoal::raft {

// OK, or DATA_LOSS naming `name` and the byte where the damage is. `bytes` is the whole file.
absl::Status CheckWalFile(const std::string& name, const std::string& bytes);

// Where a write torn over zeros begins, if the file ends in one; nothing otherwise.
//
// A log written over zeros laid down ahead of it (wal_prefill.h) that loses power in the middle
// of a write is left with the write's first pages and zeros where the rest should be: a whole
// header and a record that no longer checks out, with the file going on (in zeros) past it.
// RocksDB takes a record cut short by the file's end for a torn write, but this one for a
// checksum mismatch, and would refuse the store. So a file whose records that check out are
// followed by one that does not, which lies within the file, with nothing but zeros from inside
// that record (or its header) to the end of the file, is cut back to where that record begins before RocksDB opens it:
// what a crash left, the same write RocksDB would drop had the file ended there. (That write
// was never acknowledged: its sync did not return. Damage that happens to look so is taken
// for a torn write, as RocksDB takes damage at the file's end.)
std::optional<size_t> TornWriteOverZeros(const std::string& bytes);

// Whether the writes RocksDB replays from its write-ahead logs follow on one another, checked
// as RocksDB replays them (Options::wal_filter for one DB::Open; it must outlive the database).
//
// Only the newest log can end in a torn write, but CheckWalFile reads one file and cannot
// tell. RocksDB also replays older logs (those whose memtable was not flushed yet: a crash
// soon after it switched logs), takes a last record of one of those that does not check out
// for a torn write too, drops it without a word and replays the newer logs on top: a synced,
// acknowledged write from the middle of the history gone. An older log that ends torn is no
// evidence by itself: one RocksDB no longer replays (its writes are in tables) may be left
// behind by a crash after the recovery that flushed it, and only RocksDB knows which it
// replays. But every write takes the next sequence numbers (its batch's header: the first,
// 8 bytes, and how many, 4 bytes, little-endian), also the first write after a recovery, so a
// write missing between two replayed ones shows as a gap: the open then fails (RocksDB reports
// a corruption found by this filter) and status() says what is missing. A disk that kept the
// later of two unsynced writes in two log files and lost the earlier (never both synced: a
// synced write syncs the older logs too) leaves such a gap as well, and is refused as damaged.
class WalSequenceCheck final : public rocksdb::WalFilter {
 public:
  WalProcessingOption LogRecordFound(unsigned long long log_number,
                                     const std::string& log_file_name,
                                     const rocksdb::WriteBatch& batch,
                                     rocksdb::WriteBatch* new_batch, bool* batch_changed) override;
  const char* Name() const override { return "ShoalWalSequenceCheck"; }

  // DATA_LOSS naming the logs and the sequence numbers missing once a gap was found, else OK.
  const absl::Status& status() const { return status_; }

 private:
  std::optional<uint64_t> next_;  // the sequence number after the last write replayed
  std::string last_file_;         // the log that write was in
  absl::Status status_;
};

}  // namespace shoal::raft
