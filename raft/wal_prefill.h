// Write-ahead log files written over zeros laid down ahead of them.
//
// A synced write that makes its file longer costs this host two writes to the disk: the data,
// and the file's inode for its new size (fdatasync must make the size durable; on ext4
// without a journal, as here, that is a synchronous write of the inode's block). Writing into
// a file whose blocks already hold zeros changes no size, so its fdatasync writes the data
// alone: measured here at 126-130 us of wall time and 51-53 us of CPU per 4 KiB write and
// sync, against 187-269 us and 76-109 us growing the file (and 190 us, 74 us into space
// reserved with fallocate, which leaves the blocks unwritten and their state in the inode to
// change). etcd preallocates its log segments for the same reason.
//
// RocksDB's remedy, recycled log files, needs a recovery mode that stops at the first damaged
// record without a word (see RocksDbLogStore::Open), so the zeros are laid down here instead,
// under RocksDB: each new log file gets `chunk` bytes of zeros, synced, before its first
// write lands on them, and another `chunk` each time the writes come within reach of the end.
// RocksDB reads a run of zeros after its last record as the end of the log (a header of zeros
// is how its own preallocating writer once left files), and CheckWalFile takes it for the
// torn tail it is allowed to be: nothing after it checks out. A cleanly closed log is cut back
// to what was written.
#pragma once

#include <rocksdb/file_system.h>

#include <cstdint>
#include <memory>
#include <string>

namespace shoal::raft {

class WalPrefillFileSystem final : public rocksdb::FileSystemWrapper {
 public:
  WalPrefillFileSystem(const std::shared_ptr<rocksdb::FileSystem>& target, uint64_t chunk)
      : FileSystemWrapper(target), chunk_(chunk) {}

  static const char* kClassName() { return "ShoalWalPrefillFileSystem"; }
  const char* Name() const override { return kClassName(); }

  rocksdb::IOStatus NewWritableFile(const std::string& fname, const rocksdb::FileOptions& options,
                                    std::unique_ptr<rocksdb::FSWritableFile>* result,
                                    rocksdb::IODebugContext* dbg) override;

 private:
  const uint64_t chunk_;
};

}  // namespace shoal::raft
