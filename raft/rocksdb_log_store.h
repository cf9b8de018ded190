// LogStorage on RocksDB: the durable Raft state of a manager (entries, hard state, the latest
// snapshot with the membership as of it).
//
// Every Ready is written with Save() as one atomic WriteBatch, synced, so after a crash the
// store holds a prefix of what was written: all of a Ready or none of it. Every value carries a
// CRC-32 (zlib); Open() re-reads and checks the whole store and refuses (DATA_LOSS, naming what
// is wrong) a corrupt value, a gap in the log, entries that contradict their keys, a term going
// back along the log, a hard state whose commit index lies beyond the log or whose term is below
// the log's, writes missing between RocksDB's write-ahead logs (wal_check.h), or tables and logs
// without RocksDB's CURRENT file (before RocksDB touches them): such a member must not rejoin as
// if whole.
//
// Layout (one RocksDB database per member):
//   "e" + 8-byte big-endian index -> crc32 + Entry      one key per entry
//   "h"                           -> crc32 + HardState
//   "s"                           -> crc32 + Snapshot (metadata and data)
//   "m"                           -> crc32 + Entry with only index and term: the compaction
//                                    marker; the log holds exactly the entries after it
//                                    (absent: index 0, term 0)
//
// The newest entries are also kept in memory (up to Options::entry_cache_bytes): applying and
// replicating read back what was just written, and serving that from RocksDB (an iterator, a
// CRC check and a parse per entry) cost a follower about 5% of its CPU under load.
//
// Thread-safety: reads (the LogStorage methods) may run concurrently with one writer (Save,
// SaveSnapshot, CompactTo, one at a time), except that SaveSnapshot may also run alongside a
// Save that carries no snapshot (the node writes a big snapshot while its log goes on being
// written: neither's plan depends on what the other changes).
#pragma once

#include <atomic>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "raft/storage.h"

namespace rocksdb {
class DB;
class Env;
}  // namespace rocksdb

namespace shoal::raft {

class WalSequenceCheck;

class RocksDbLogStore final : public WritableLogStorage {
 public:
  static constexpr uint64_t kDefaultWalPrefillBytes = 1 << 20;
  struct Options {
    // Directory of the database; created with its missing parents, each new directory synced
    // into its parent (RocksDB syncs only the database directory itself), so that a power cut
    // cannot take a new store's directory away with what it acknowledged.
    std::string path;
    // Whether a missing store is created (empty). A member that has run before (a manager
    // restarting) sets it false: its store missing means its data directory was moved,
    // deleted or not mounted, and starting empty would forget the votes it gave and the
    // entries it acknowledged, which can elect two leaders in one term and lose committed
    // writes. Open then fails with FAILED_PRECONDITION naming the path and creates nothing.
    bool create_if_missing = true;
    // fsync every Save() that asks for it. Off only in tests that measure nothing durable.
    bool sync = true;
    // Bytes of the newest entries kept in memory for Entries(); 0 reads everything from disk.
    uint64_t entry_cache_bytes = 8 << 20;
    // RocksDB's memtable size: the WAL switches to a new file and the memtable is flushed to
    // a table file each time this much is written. Tests make it small to exercise both.
    uint64_t memtable_bytes = 16 << 20;
    // The file system RocksDB writes through; the process's default when null. Tests pass one
    // that simulates losing power (raft/testing/power_loss_fs.h).
    rocksdb::Env* env = nullptr;
    // Zeros laid down ahead of the write-ahead log's writes, so that a synced write does not
    // also have to make the file's new size durable (wal_prefill.h); 0 lets the log grow with
    // each write.
    uint64_t wal_prefill_bytes = kDefaultWalPrefillBytes;
    // Tests only: called by Entries() on the reader's thread after it checked the bounds and
    // let go of the lock, before it reads from disk, so a test can land a write in between.
    std::function<void()> before_disk_read = nullptr;
  };

  // Opens (or creates, see Options::create_if_missing) the store and verifies it. DATA_LOSS when it
  // is corrupt or truncated, with the index or key at fault; the error of RocksDB otherwise.
  static absl::StatusOr<std::unique_ptr<RocksDbLogStore>> Open(const Options& options);
  ~RocksDbLogStore() override;

  // LogStorage.
  absl::StatusOr<InitialState> GetInitialState() override;
  absl::StatusOr<std::vector<raftpb::Entry>> Entries(uint64_t lo, uint64_t hi,
                                                     uint64_t max_bytes) override;
  absl::StatusOr<uint64_t> Term(uint64_t i) override;
  uint64_t FirstIndex() override;
  uint64_t LastIndex() override;
  // Read from the database (its data is not kept in memory: it is the whole state).
  absl::StatusOr<raftpb::Snapshot> Snapshot() override;
  absl::StatusOr<raftpb::SnapshotMetadata> SnapshotMetadata() override;

  // Persists one Ready: an optional snapshot (replacing the log), entries (replacing any
  // suffix they overlap) and an optional hard state, atomically; synced if `sync`.
  absl::Status Save(const raftpb::HardState* hard_state, const std::vector<raftpb::Entry>& entries,
                    const raftpb::Snapshot* snapshot, bool sync) override;

  // Records a snapshot of the application at index i (<= the last entry) with membership `cs`,
  // the membership as of i, in the snapshot's metadata: GetInitialState's from then on.
  absl::StatusOr<raftpb::Snapshot> SaveSnapshot(uint64_t i, const raftpb::ConfState& cs,
                                                std::string data) override;

  // Deletes entries before `compact_index` (which must not exceed the snapshot's index); the
  // entry at compact_index stays as the marker of its term.
  absl::Status CompactTo(uint64_t compact_index) override;

  // Entries Entries() has read from RocksDB rather than from the cache (for tests and stats).
  uint64_t entries_read_from_disk() const {
    return entries_read_from_disk_.load(std::memory_order_relaxed);
  }

 private:
  RocksDbLogStore(std::unique_ptr<rocksdb::Env> env, std::unique_ptr<WalSequenceCheck> wal_check,
                  std::unique_ptr<rocksdb::DB> db, Options options);
  absl::Status Load();
  // One try of Entries; `rewrites` is rewrites_ as of its bounds check.
  absl::StatusOr<std::vector<raftpb::Entry>> EntriesOnce(uint64_t lo, uint64_t hi,
                                                         uint64_t max_bytes, uint64_t* rewrites);
  // Makes the cache hold `entries` as the newest ones (after a successful write).
  void CacheLocked(const std::vector<raftpb::Entry>& entries) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  Options options_;
  // The Env RocksDB writes through when the log is prefilled (an Env over a
  // WalPrefillFileSystem over the one asked for); outlives db_.
  std::unique_ptr<rocksdb::Env> env_;
  // Given to RocksDB's open as its WAL filter, which it keeps a pointer to: outlives db_.
  std::unique_ptr<WalSequenceCheck> wal_check_;
  std::unique_ptr<rocksdb::DB> db_;

  absl::Mutex mu_;
  raftpb::HardState hard_state_ ABSL_GUARDED_BY(mu_);
  // The stored snapshot's metadata (its data stays on disk).
  raftpb::Snapshot snapshot_ ABSL_GUARDED_BY(mu_);
  // Terms of the stored entries: terms_[0] is the snapshot's (index first_ - 1), then one per
  // entry, so Term() and the bounds need no disk read.
  uint64_t first_ ABSL_GUARDED_BY(mu_) = 1;
  std::vector<uint64_t> terms_ ABSL_GUARDED_BY(mu_);
  // A copy of the newest stored entries, contiguous and ending at the last index (or empty).
  std::deque<raftpb::Entry> cache_ ABSL_GUARDED_BY(mu_);
  uint64_t cache_bytes_ ABSL_GUARDED_BY(mu_) = 0;
  // Saves that removed or replaced stored entries (a snapshot installed, a suffix replaced).
  uint64_t rewrites_ ABSL_GUARDED_BY(mu_) = 0;
  std::atomic<uint64_t> entries_read_from_disk_{0};
};

}  // namespace shoal::raft
