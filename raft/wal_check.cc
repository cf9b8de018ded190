#include "raft/wal_check.h"

#include <rocksdb/file_checksum.h>
#include <rocksdb/write_batch.h>

#include <algorithm>
#include <memory>

#include "absl/strings/str_cat.h"

namespace shoal::raft {
namespace {

constexpr size_t kWalBlock = 32768;
constexpr size_t kWalHeader = 7;

uint32_t Crc32c(const std::string& bytes, size_t at, size_t n) {
  static const std::shared_ptr<rocksdb::FileChecksumGenFactory> factory =
      rocksdb::GetFileChecksumGenCrc32cFactory();
  std::unique_ptr<rocksdb::FileChecksumGenerator> gen =
      factory->CreateFileChecksumGenerator(rocksdb::FileChecksumGenContext());
  gen->Update(bytes.data() + at, n);
  gen->Finalize();
  const std::string sum = gen->GetChecksum();  // big-endian
  uint32_t crc = 0;
  for (size_t i = 0; i < 4 && i < sum.size(); ++i) crc = crc << 8 | static_cast<uint8_t>(sum[i]);
  return crc;
}

uint32_t LittleEndian32(const std::string& bytes, size_t at) {
  uint32_t v = 0;
  for (int i = 3; i >= 0; --i) v = v << 8 | static_cast<uint8_t>(bytes[at + i]);
  return v;
}

// Whether a whole record that checks out starts at `at`.
bool WalRecordAt(const std::string& bytes, size_t at) {
  const size_t left_in_block = kWalBlock - at % kWalBlock;
  if (left_in_block < kWalHeader || bytes.size() - at < kWalHeader) return false;
  const size_t length = static_cast<uint8_t>(bytes[at + 4]) |
                        static_cast<size_t>(static_cast<uint8_t>(bytes[at + 5])) << 8;
  const int type = static_cast<uint8_t>(bytes[at + 6]);
  if (!((type >= 1 && type <= 4) || type == 9)) return false;
  if (kWalHeader + length > left_in_block || at + kWalHeader + length > bytes.size()) return false;
  const uint32_t crc = Crc32c(bytes, at + 6, 1 + length);
  const uint32_t masked = ((crc >> 15) | (crc << 17)) + 0xa282ead8u;
  return masked == LittleEndian32(bytes, at);
}

// Where the first record that does not check out begins (the file's size if none).
size_t EndOfGoodRecords(const std::string& bytes) {
  size_t at = 0;
  while (at < bytes.size()) {
    const size_t left_in_block = kWalBlock - at % kWalBlock;
    if (left_in_block < kWalHeader) {
      at += left_in_block;
      continue;
    }
    if (!WalRecordAt(bytes, at)) break;
    at += kWalHeader + (static_cast<uint8_t>(bytes[at + 4]) |
                        static_cast<size_t>(static_cast<uint8_t>(bytes[at + 5])) << 8);
  }
  return std::min(at, bytes.size());
}

}  // namespace

std::optional<size_t> TornWriteOverZeros(const std::string& bytes) {
  const size_t at = EndOfGoodRecords(bytes);
  if (at >= bytes.size()) return std::nullopt;
  const size_t last_nonzero = bytes.find_last_not_of('\0');
  if (last_nonzero == std::string::npos || last_nonzero < at) return std::nullopt;  // zeros only
  // How far the record at `at` reaches: its header, and its payload if the header is whole.
  size_t end = at + kWalHeader;
  if (bytes.size() - at >= kWalHeader) {
    const size_t length = static_cast<uint8_t>(bytes[at + 4]) |
                          static_cast<size_t>(static_cast<uint8_t>(bytes[at + 5])) << 8;
    const int type = static_cast<uint8_t>(bytes[at + 6]);
    if (((type >= 1 && type <= 4) || type == 9) &&
        kWalHeader + length <= kWalBlock - at % kWalBlock) {
      end = at + kWalHeader + length;
    }
  }
  // Past the file's end, the record was cut short by it: RocksDB's own torn write.
  if (end > bytes.size() || last_nonzero >= end) return std::nullopt;
  return at;
}

absl::Status CheckWalFile(const std::string& name, const std::string& bytes) {
  const size_t at = EndOfGoodRecords(bytes);
  if (at >= bytes.size()) return absl::OkStatus();
  const size_t bad = at;
  if (bytes.size() - bad >= kWalHeader) {
    const size_t length = static_cast<uint8_t>(bytes[bad + 4]) |
                          static_cast<size_t>(static_cast<uint8_t>(bytes[bad + 5])) << 8;
    const int type = static_cast<uint8_t>(bytes[bad + 6]);
    const bool whole_header = ((type >= 1 && type <= 4) || type == 9) &&
                              kWalHeader + length <= kWalBlock - bad % kWalBlock;
    if (whole_header && bad + kWalHeader + length > bytes.size()) {
      return absl::OkStatus();  // the torn last write
    }
  } else {
    return absl::OkStatus();  // a header cut short: the torn last write
  }
  // The next record that checks out: anywhere in the rest of this block (the damaged header
  // may misstate where it ends), then at the start of each later block (a block always begins
  // with a record's header).
  size_t next = bytes.size();
  const size_t block_end = std::min(bytes.size(), (bad / kWalBlock + 1) * kWalBlock);
  for (size_t p = bad + 1; p < block_end && next == bytes.size(); ++p) {
    if (WalRecordAt(bytes, p)) next = p;
  }
  for (size_t p = block_end; p < bytes.size() && next == bytes.size(); p += kWalBlock) {
    if (WalRecordAt(bytes, p)) next = p;
  }
  if (next == bytes.size()) return absl::OkStatus();  // a torn last write
  return absl::DataLossError(absl::StrCat(
      "the write-ahead log ", name, " is damaged at byte ", bad, " of ", bytes.size(),
      ", and records written after it check out (the first at byte ", next,
      "): RocksDB would drop every write after the damage, acknowledged ones included. Nothing "
      "was opened; remove this member from the cluster and add it back with an empty store "
      "(it catches up from the others), or restore the directory from a copy"));
}

rocksdb::WalFilter::WalProcessingOption WalSequenceCheck::LogRecordFound(
    unsigned long long /*log_number*/, const std::string& log_file_name,
    const rocksdb::WriteBatch& batch, rocksdb::WriteBatch* /*new_batch*/, bool* /*batch_changed*/) {
  const std::string& rep = batch.Data();
  if (rep.size() < 12) return WalProcessingOption::kContinueProcessing;  // RocksDB refuses it
  uint64_t first = 0;
  for (int i = 7; i >= 0; --i) first = first << 8 | static_cast<uint8_t>(rep[i]);
  if (next_ && first > *next_) {
    status_ = absl::DataLossError(absl::StrCat(
        "the write-ahead log ", log_file_name, " goes on at sequence number ", first,
        ", but the writes replayed before it (the last of them in ", last_file_, ") end at ",
        *next_ - 1, ": the writes numbered ", *next_, " to ", first - 1,
        " are missing (the end of ", last_file_,
        " is damaged, or a log between the two is gone), and RocksDB would have replayed the "
        "later logs without them, acknowledged writes among them"));
    return WalProcessingOption::kCorruptedRecord;
  }
  next_ = std::max(next_.value_or(0), first + batch.Count());
  last_file_ = log_file_name;
  return WalProcessingOption::kContinueProcessing;
}

}  // namespace shoal::raft
