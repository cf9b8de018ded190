// A RocksDB file system for tests that loses power: it passes every operation to the real file
// system and remembers what has not been made durable, so that a test can cut the power (at a
// chosen moment, even in the middle of a write) and then leave on disk only what a machine
// would still have after it rebooted.
//
// A process killed with SIGKILL keeps everything it wrote in the kernel's page cache, so a
// missing fsync goes unnoticed by such a test; this file system catches it.
//
// The model of a power loss, applied by LoseUnsyncedData():
// - a file keeps what was synced (Sync/Fsync, through any of its handles) and a random prefix
//   of the writes made after (the kernel may have written some of it back, in order, or
//   none): a write left out leaves the bytes it overwrote as they were, and the file as long as
//   it was before it; with SetOutOfOrderWriteback(true), each 4 KiB page written after the last
//   sync instead reaches the disk or not independently (a page that did not reads back as it
//   was at the sync, zeros past the file's end then), and the file's length is either as
//   written or up to its last page that did;
// - a file created since its directory was last synced disappears;
// - so does a directory created (CreateDir, CreateDirIfMissing) since its parent was last
//   synced, with everything in it;
// - a rename not yet followed by a sync of its directory is undone (the old target, if any,
//   comes back);
// - deletions are taken as durable at once (a deleted file never comes back: RocksDB deletes
//   only files it no longer needs, and a test that wants resurrected files needs more than this).
//
// Usage:
//   auto fs = PowerLossFileSystem::Create(seed);
//   options.env = fs->env();                  // RocksDbLogStore::Options
//   ... writes ...
//   fs->CutPowerAfter(3);                     // or CutPower(): every later write fails
//   store.reset();                            // close the database (its writes fail)
//   fs->LoseUnsyncedData();                   // what the disk holds after the reboot
//   fs->RestorePower();                       // then reopen
#pragma once

#include <rocksdb/env.h>
#include <rocksdb/file_system.h>

#include <atomic>
#include <cstdint>
#include <map>
#include <set>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"

namespace shoal::raft::testing {

class PowerLossFileSystem final : public rocksdb::FileSystemWrapper {
 public:
  static std::shared_ptr<PowerLossFileSystem> Create(uint64_t seed);

  // An Env using this file system (owned by it), for rocksdb::Options::env.
  rocksdb::Env* env() { return env_.get(); }

  // The power goes out at once, after the operations in progress complete: every later
  // mutating operation fails with an I/O error (or blocks, after BlockAfterCut()).
  void CutPower();
  // The power goes out at the n-th mutating operation from now (n >= 1), which fails; n == 0
  // is CutPower(). Operations running concurrently with that one may still complete.
  void CutPowerAfter(uint64_t n);
  // From now on, operations after a cut block forever instead of failing: for a process that
  // must not see a write fail (a Raft member whose write fails stops taking part, and says
  // so; a machine that lost power does nothing more) and that exits after LoseUnsyncedData().
  // Without it, a cut is also a disk that fails every write from then on.
  void BlockAfterCut();
  bool powered() const;
  // Puts the files into the state the model above gives. Call with the power out, after the
  // databases using this file system are closed or while their writes are blocked.
  // Everything left is durable afterwards.
  void LoseUnsyncedData();
  // Whether LoseUnsyncedData keeps unsynced pages in any order instead of a prefix.
  void SetOutOfOrderWriteback(bool on) { out_of_order_ = on; }
  void RestorePower();

  // Mutating operations seen so far (writes, syncs, creations, renames, deletions).
  uint64_t operations() const;

  const char* Name() const override { return "PowerLossFileSystem"; }

  rocksdb::IOStatus NewWritableFile(const std::string& fname, const rocksdb::FileOptions& options,
                                    std::unique_ptr<rocksdb::FSWritableFile>* result,
                                    rocksdb::IODebugContext* dbg) override;
  rocksdb::IOStatus ReopenWritableFile(const std::string& fname,
                                       const rocksdb::FileOptions& options,
                                       std::unique_ptr<rocksdb::FSWritableFile>* result,
                                       rocksdb::IODebugContext* dbg) override;
  rocksdb::IOStatus ReuseWritableFile(const std::string& fname, const std::string& old_fname,
                                      const rocksdb::FileOptions& options,
                                      std::unique_ptr<rocksdb::FSWritableFile>* result,
                                      rocksdb::IODebugContext* dbg) override;
  rocksdb::IOStatus NewRandomRWFile(const std::string& fname, const rocksdb::FileOptions& options,
                                    std::unique_ptr<rocksdb::FSRandomRWFile>* result,
                                    rocksdb::IODebugContext* dbg) override;
  rocksdb::IOStatus CreateDir(const std::string& dirname, const rocksdb::IOOptions& options,
                              rocksdb::IODebugContext* dbg) override;
  rocksdb::IOStatus CreateDirIfMissing(const std::string& dirname,
                                       const rocksdb::IOOptions& options,
                                       rocksdb::IODebugContext* dbg) override;
  rocksdb::IOStatus NewDirectory(const std::string& name, const rocksdb::IOOptions& options,
                                 std::unique_ptr<rocksdb::FSDirectory>* result,
                                 rocksdb::IODebugContext* dbg) override;
  rocksdb::IOStatus DeleteFile(const std::string& fname, const rocksdb::IOOptions& options,
                               rocksdb::IODebugContext* dbg) override;
  rocksdb::IOStatus RenameFile(const std::string& src, const std::string& target,
                               const rocksdb::IOOptions& options,
                               rocksdb::IODebugContext* dbg) override;
  rocksdb::IOStatus LinkFile(const std::string& src, const std::string& target,
                             const rocksdb::IOOptions& options,
                             rocksdb::IODebugContext* dbg) override;
  rocksdb::IOStatus Truncate(const std::string& fname, size_t size,
                             const rocksdb::IOOptions& options,
                             rocksdb::IODebugContext* dbg) override;

 private:
  class Gate;
  class File;
  class Directory;

  // What is not yet durable about one file, by its current name.
  // A write since the file was last synced, with what it overwrote.
  struct Write {
    uint64_t offset = 0;
    uint64_t length = 0;
    uint64_t size_before = 0;  // the file's length before it
    std::string before;        // the bytes it overwrote (those before size_before)
  };
  struct State {
    uint64_t size = 0;    // bytes written
    uint64_t synced = 0;  // the length at the last Sync/Fsync, which made everything durable
    std::vector<Write> unsynced;  // in the order they were made
    // Created (or renamed into place) since its directory was last synced.
    bool name_durable = true;
    // Set when the name came from a rename not yet made durable: where it came from, and what
    // the target held before (if it existed).
    bool renamed = false;
    std::string renamed_from;
    bool target_existed = false;
    std::string target_before;
  };

  explicit PowerLossFileSystem(uint64_t seed);
  // NewWritableFile (truncating) or, with `reopen`, ReopenWritableFile (appending).
  rocksdb::IOStatus OpenForWriting(const std::string& fname, bool reopen,
                                   const rocksdb::FileOptions& options,
                                   std::unique_ptr<rocksdb::FSWritableFile>* result,
                                   rocksdb::IODebugContext* dbg);
  // With power_mu_ held shared: whether an operation may run (counting it if `count`); false
  // when the power is out, or goes out at this operation.
  bool Admit(bool count);
  static rocksdb::IOStatus PowerLost();
  // What [offset, offset + n) of the file holds now, up to its length (before writing there).
  std::string Before(const std::string& fname, uint64_t offset, uint64_t n);
  void Wrote(const std::string& fname, uint64_t offset, uint64_t n, std::string before);
  void Truncated(const std::string& fname, uint64_t size);
  // Puts back what `w` overwrote from offset + keep on (keep < w.length).
  static void Revert(const std::string& name, const Write& w, uint64_t keep);
  void Synced(const std::string& fname);
  void DirectorySynced(const std::string& dir);
  // CreateDir (`if_missing` false) or CreateDirIfMissing.
  rocksdb::IOStatus MakeDirectory(const std::string& dirname, bool if_missing,
                                  const rocksdb::IOOptions& options, rocksdb::IODebugContext* dbg);

  std::unique_ptr<rocksdb::Env> env_;
  // Held shared by every operation in progress, exclusively to cut the power.
  mutable absl::Mutex power_mu_;
  std::atomic<bool> powered_{true};
  std::atomic<bool> block_after_cut_{false};
  std::atomic<uint64_t> operations_{0};
  std::atomic<uint64_t> cut_at_{0};  // 0: no cut scheduled
  std::atomic<bool> out_of_order_{false};
  // What is not durable yet, by file.
  absl::Mutex mu_;
  std::mt19937_64 rng_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, State> files_ ABSL_GUARDED_BY(mu_);
  // Directories created since their parent was last synced.
  std::set<std::string> new_dirs_ ABSL_GUARDED_BY(mu_);
};

}  // namespace shoal::raft::testing
