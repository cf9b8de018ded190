#include "raft/wal_prefill.h"

#include <algorithm>
#include <string>
#include <utility>

namespace shoal::raft {
namespace {

bool IsWal(const std::string& fname) {
  return fname.size() > 4 && fname.compare(fname.size() - 4, 4, ".log") == 0;
}

// A log file RocksDB writes in order from its start, with zeros kept ahead of its writes
// through a second handle that appends them at the file's end.
class PrefilledFile final : public rocksdb::FSWritableFileOwnerWrapper {
 public:
  PrefilledFile(std::unique_ptr<rocksdb::FSWritableFile> file,
                std::unique_ptr<rocksdb::FSWritableFile> zeros, uint64_t chunk)
      : FSWritableFileOwnerWrapper(std::move(file)), zeros_(std::move(zeros)), chunk_(chunk) {}

  ~PrefilledFile() override {
    if (zeros_ != nullptr) (void)zeros_->Close(rocksdb::IOOptions(), nullptr);
  }

  rocksdb::IOStatus Append(const rocksdb::Slice& data, const rocksdb::IOOptions& options,
                           rocksdb::IODebugContext* dbg) override {
    rocksdb::IOStatus s = Ahead(data.size(), options, dbg);
    if (!s.ok()) return s;
    s = target()->Append(data, options, dbg);
    if (s.ok()) written_ += data.size();
    return s;
  }
  rocksdb::IOStatus Append(const rocksdb::Slice& data, const rocksdb::IOOptions& options,
                           const rocksdb::DataVerificationInfo& info,
                           rocksdb::IODebugContext* dbg) override {
    rocksdb::IOStatus s = Ahead(data.size(), options, dbg);
    if (!s.ok()) return s;
    s = target()->Append(data, options, info, dbg);
    if (s.ok()) written_ += data.size();
    return s;
  }
  // RocksDB writes its logs with Append only; anything else would lose track of the end.
  rocksdb::IOStatus PositionedAppend(const rocksdb::Slice&, uint64_t, const rocksdb::IOOptions&,
                                     rocksdb::IODebugContext*) override {
    return rocksdb::IOStatus::NotSupported("positioned writes to a prefilled write-ahead log");
  }
  rocksdb::IOStatus PositionedAppend(const rocksdb::Slice&, uint64_t, const rocksdb::IOOptions&,
                                     const rocksdb::DataVerificationInfo&,
                                     rocksdb::IODebugContext*) override {
    return rocksdb::IOStatus::NotSupported("positioned writes to a prefilled write-ahead log");
  }
  // RocksDB does not truncate a log it is writing; should it, the zeros stop there and the
  // file grows with each write from then on, as an unprefilled one does.
  rocksdb::IOStatus Truncate(uint64_t size, const rocksdb::IOOptions& options,
                             rocksdb::IODebugContext* dbg) override {
    rocksdb::IOStatus s = CloseZeros(options, dbg);
    if (!s.ok()) return s;
    s = target()->Truncate(size, options, dbg);
    if (s.ok()) written_ = filled_ = size;
    return s;
  }
  rocksdb::IOStatus Close(const rocksdb::IOOptions& options, rocksdb::IODebugContext* dbg) override {
    rocksdb::IOStatus s = CloseZeros(options, dbg);
    // Cut back to what was written: the zeros left would be read as a torn tail, which a
    // cleanly closed log has no reason to show.
    rocksdb::IOStatus cut = target()->Truncate(written_, options, dbg);
    rocksdb::IOStatus closed = target()->Close(options, dbg);
    if (!s.ok()) return s;
    if (!cut.ok()) return cut;
    return closed;
  }

 private:
  // Lays down zeros (synced) so that `n` more bytes land on them.
  rocksdb::IOStatus Ahead(size_t n, const rocksdb::IOOptions& options,
                          rocksdb::IODebugContext* dbg) {
    if (zeros_ == nullptr || written_ + n <= filled_) return rocksdb::IOStatus::OK();
    const uint64_t want = written_ + n + chunk_;
    static const std::string kZeros(1 << 20, '\0');
    while (filled_ < want) {
      const size_t k = static_cast<size_t>(std::min<uint64_t>(kZeros.size(), want - filled_));
      rocksdb::IOStatus s = zeros_->Append(rocksdb::Slice(kZeros.data(), k), options, dbg);
      if (!s.ok()) return s;
      filled_ += k;
    }
    return zeros_->Sync(options, dbg);
  }
  rocksdb::IOStatus CloseZeros(const rocksdb::IOOptions& options, rocksdb::IODebugContext* dbg) {
    if (zeros_ == nullptr) return rocksdb::IOStatus::OK();
    rocksdb::IOStatus s = zeros_->Close(options, dbg);
    zeros_.reset();
    return s;
  }

  std::unique_ptr<rocksdb::FSWritableFile> zeros_;
  const uint64_t chunk_;
  uint64_t written_ = 0;  // bytes RocksDB wrote, from the file's start
  uint64_t filled_ = 0;   // bytes of the file laid down (zeros, or RocksDB's writes over them)
};

}  // namespace

rocksdb::IOStatus WalPrefillFileSystem::NewWritableFile(
    const std::string& fname, const rocksdb::FileOptions& options,
    std::unique_ptr<rocksdb::FSWritableFile>* result, rocksdb::IODebugContext* dbg) {
  rocksdb::IOStatus s = target()->NewWritableFile(fname, options, result, dbg);
  if (!s.ok() || !IsWal(fname) || chunk_ == 0 || options.use_direct_writes ||
      options.use_mmap_writes) {
    return s;
  }
  std::unique_ptr<rocksdb::FSWritableFile> zeros;
  s = target()->ReopenWritableFile(fname, options, &zeros, dbg);
  if (!s.ok()) {
    result->reset();
    return s;
  }
  *result = std::make_unique<PrefilledFile>(std::move(*result), std::move(zeros), chunk_);
  return rocksdb::IOStatus::OK();
}

}  // namespace shoal::raft
