#include "raft/testing/power_loss_fs.h"

#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <vector>

#include "absl/time/clock.h"

namespace shoal::raft::testing {

namespace {

std::string ParentOf(const std::string& path) {
  const size_t slash = path.find_last_of('/');
  return slash == std::string::npos ? std::string(".") : path.substr(0, slash);
}

std::string WithoutTrailingSlashes(std::string dir) {
  while (dir.size() > 1 && dir.back() == '/') dir.pop_back();
  return dir;
}

bool ReadWhole(const std::string& path, std::string* out) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return false;
  std::ostringstream s;
  s << in.rdbuf();
  *out = s.str();
  return true;
}

// Overwrites [lo, hi) of an existing file with zeros (nothing if it is gone).
void ZeroRange(const std::string& path, uint64_t lo, uint64_t hi) {
  std::fstream f(path, std::ios::in | std::ios::out | std::ios::binary);
  if (!f) return;
  f.seekp(static_cast<std::streamoff>(lo));
  const std::string zeros(hi - lo, '\0');
  f.write(zeros.data(), static_cast<std::streamsize>(zeros.size()));
}

// Writes `data` at `offset` of an existing file (nothing if it is gone).
void WriteRange(const std::string& path, uint64_t offset, const std::string& data) {
  if (data.empty()) return;
  std::fstream f(path, std::ios::in | std::ios::out | std::ios::binary);
  if (!f) return;
  f.seekp(static_cast<std::streamoff>(offset));
  f.write(data.data(), static_cast<std::streamsize>(data.size()));
}

std::string ReadRange(const std::string& path, uint64_t offset, uint64_t n) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return std::string();
  in.seekg(static_cast<std::streamoff>(offset));
  std::string out(n, '\0');
  in.read(out.data(), static_cast<std::streamsize>(n));
  out.resize(static_cast<size_t>(std::max<std::streamsize>(in.gcount(), 0)));
  return out;
}

void WriteWhole(const std::string& path, const std::string& data) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << data;
}

}  // namespace

// Held for the whole of one mutating operation. CutPower() waits for the operations in
// progress, so that what they did (a sync, say) is recorded before the power goes, and a
// member cannot acknowledge a write whose sync the power loss then undoes.
class PowerLossFileSystem::Gate {
 public:
  // `count`: the operation counts towards CutPowerAfter().
  explicit Gate(PowerLossFileSystem* fs, bool count = true) : fs_(fs) {
    fs_->power_mu_.ReaderLock();
    open_ = fs_->Admit(count);
    if (open_) return;
    const bool block = fs_->block_after_cut_.load();
    fs_->power_mu_.ReaderUnlock();
    fs_ = nullptr;
    if (block) {
      // A dead machine does nothing more; this thread waits for the process to exit.
      for (;;) absl::SleepFor(absl::Hours(1));
    }
  }
  ~Gate() {
    if (fs_ != nullptr) fs_->power_mu_.ReaderUnlock();
  }
  Gate(const Gate&) = delete;
  Gate& operator=(const Gate&) = delete;
  explicit operator bool() const { return open_; }

 private:
  PowerLossFileSystem* fs_;
  bool open_ = false;
};

// A file opened for writing: passes everything through and reports what became durable.
class PowerLossFileSystem::File final : public rocksdb::FSWritableFileOwnerWrapper {
 public:
  // `offset`: the file's size when opened (where the first Append lands).
  File(PowerLossFileSystem* fs, std::string name, std::unique_ptr<rocksdb::FSWritableFile> f,
       uint64_t offset)
      : FSWritableFileOwnerWrapper(std::move(f)),
        fs_(fs),
        name_(std::move(name)),
        offset_(offset) {}

  rocksdb::IOStatus Append(const rocksdb::Slice& data, const rocksdb::IOOptions& options,
                           rocksdb::IODebugContext* dbg) override {
    Gate gate(fs_);
    if (!gate) return PowerLost();
    std::string before = fs_->Before(name_, offset_, data.size());
    rocksdb::IOStatus s = target()->Append(data, options, dbg);
    if (s.ok()) Advance(data.size(), std::move(before));
    return s;
  }
  rocksdb::IOStatus Append(const rocksdb::Slice& data, const rocksdb::IOOptions& options,
                           const rocksdb::DataVerificationInfo& info,
                           rocksdb::IODebugContext* dbg) override {
    Gate gate(fs_);
    if (!gate) return PowerLost();
    std::string before = fs_->Before(name_, offset_, data.size());
    rocksdb::IOStatus s = target()->Append(data, options, info, dbg);
    if (s.ok()) Advance(data.size(), std::move(before));
    return s;
  }
  rocksdb::IOStatus PositionedAppend(const rocksdb::Slice& data, uint64_t offset,
                                     const rocksdb::IOOptions& options,
                                     rocksdb::IODebugContext* dbg) override {
    Gate gate(fs_);
    if (!gate) return PowerLost();
    std::string before = fs_->Before(name_, offset, data.size());
    rocksdb::IOStatus s = target()->PositionedAppend(data, offset, options, dbg);
    if (s.ok()) fs_->Wrote(name_, offset, data.size(), std::move(before));
    return s;
  }
  rocksdb::IOStatus PositionedAppend(const rocksdb::Slice& data, uint64_t offset,
                                     const rocksdb::IOOptions& options,
                                     const rocksdb::DataVerificationInfo& info,
                                     rocksdb::IODebugContext* dbg) override {
    Gate gate(fs_);
    if (!gate) return PowerLost();
    std::string before = fs_->Before(name_, offset, data.size());
    rocksdb::IOStatus s = target()->PositionedAppend(data, offset, options, info, dbg);
    if (s.ok()) fs_->Wrote(name_, offset, data.size(), std::move(before));
    return s;
  }
  rocksdb::IOStatus Truncate(uint64_t size, const rocksdb::IOOptions& options,
                             rocksdb::IODebugContext* dbg) override {
    Gate gate(fs_);
    if (!gate) return PowerLost();
    rocksdb::IOStatus s = target()->Truncate(size, options, dbg);
    if (s.ok()) {
      offset_ = size;
      fs_->Truncated(name_, size);
    }
    return s;
  }
  rocksdb::IOStatus Sync(const rocksdb::IOOptions& options, rocksdb::IODebugContext* dbg) override {
    Gate gate(fs_);
    if (!gate) return PowerLost();
    rocksdb::IOStatus s = target()->Sync(options, dbg);
    if (s.ok()) fs_->Synced(name_);
    return s;
  }
  rocksdb::IOStatus Fsync(const rocksdb::IOOptions& options,
                          rocksdb::IODebugContext* dbg) override {
    Gate gate(fs_);
    if (!gate) return PowerLost();
    rocksdb::IOStatus s = target()->Fsync(options, dbg);
    if (s.ok()) fs_->Synced(name_);
    return s;
  }
  // Starts write-back but promises nothing about durability: not a sync.
  rocksdb::IOStatus RangeSync(uint64_t offset, uint64_t nbytes, const rocksdb::IOOptions& options,
                              rocksdb::IODebugContext* dbg) override {
    Gate gate(fs_, /*count=*/false);
    if (!gate) return PowerLost();
    return target()->RangeSync(offset, nbytes, options, dbg);
  }
  rocksdb::IOStatus Flush(const rocksdb::IOOptions& options,
                          rocksdb::IODebugContext* dbg) override {
    Gate gate(fs_, /*count=*/false);
    if (!gate) return PowerLost();
    return target()->Flush(options, dbg);
  }

 private:
  void Advance(uint64_t n, std::string before) {
    fs_->Wrote(name_, offset_, n, std::move(before));
    offset_ += n;
  }

  PowerLossFileSystem* fs_;
  std::string name_;
  uint64_t offset_;  // where the next Append lands
};

class PowerLossFileSystem::Directory final : public rocksdb::FSDirectoryWrapper {
 public:
  Directory(PowerLossFileSystem* fs, std::string name, std::unique_ptr<rocksdb::FSDirectory> d)
      : FSDirectoryWrapper(std::move(d)), fs_(fs), name_(WithoutTrailingSlashes(std::move(name))) {}

  rocksdb::IOStatus Fsync(const rocksdb::IOOptions& options,
                          rocksdb::IODebugContext* dbg) override {
    Gate gate(fs_);
    if (!gate) return PowerLost();
    rocksdb::IOStatus s = FSDirectoryWrapper::Fsync(options, dbg);
    if (s.ok()) fs_->DirectorySynced(name_);
    return s;
  }
  rocksdb::IOStatus FsyncWithDirOptions(const rocksdb::IOOptions& options,
                                        rocksdb::IODebugContext* dbg,
                                        const rocksdb::DirFsyncOptions& dir_options) override {
    Gate gate(fs_);
    if (!gate) return PowerLost();
    rocksdb::IOStatus s = FSDirectoryWrapper::FsyncWithDirOptions(options, dbg, dir_options);
    if (s.ok()) fs_->DirectorySynced(name_);
    return s;
  }

 private:
  PowerLossFileSystem* fs_;
  std::string name_;
};

PowerLossFileSystem::PowerLossFileSystem(uint64_t seed)
    : FileSystemWrapper(rocksdb::FileSystem::Default()), rng_(seed) {}

std::shared_ptr<PowerLossFileSystem> PowerLossFileSystem::Create(uint64_t seed) {
  std::shared_ptr<PowerLossFileSystem> fs(new PowerLossFileSystem(seed));
  // The Env must not own the file system that owns it: hand it a non-owning pointer.
  fs->env_ = rocksdb::NewCompositeEnv(
      std::shared_ptr<rocksdb::FileSystem>(fs.get(), [](rocksdb::FileSystem*) {}));
  return fs;
}

rocksdb::IOStatus PowerLossFileSystem::PowerLost() {
  return rocksdb::IOStatus::IOError("the power is out (PowerLossFileSystem)");
}

bool PowerLossFileSystem::Admit(bool count) {
  if (!powered_.load()) return false;
  if (!count) return true;
  const uint64_t n = operations_.fetch_add(1) + 1;
  const uint64_t cut = cut_at_.load();
  if (cut != 0 && n >= cut) {
    powered_.store(false);
    cut_at_.store(0);
    return false;
  }
  return true;
}

void PowerLossFileSystem::CutPower() {
  absl::MutexLock lock(&power_mu_);  // waits for the operations in progress
  powered_.store(false);
  cut_at_.store(0);
}

void PowerLossFileSystem::CutPowerAfter(uint64_t n) {
  if (n == 0) {
    CutPower();
    return;
  }
  cut_at_.store(operations_.load() + n);
}

void PowerLossFileSystem::BlockAfterCut() { block_after_cut_.store(true); }

bool PowerLossFileSystem::powered() const { return powered_.load(); }

void PowerLossFileSystem::RestorePower() {
  absl::MutexLock lock(&power_mu_);
  powered_.store(true);
  cut_at_.store(0);
}

uint64_t PowerLossFileSystem::operations() const { return operations_.load(); }

std::string PowerLossFileSystem::Before(const std::string& fname, uint64_t offset, uint64_t n) {
  uint64_t size = 0;
  {
    absl::MutexLock lock(&mu_);
    auto it = files_.find(fname);
    if (it != files_.end()) size = it->second.size;
  }
  if (offset >= size) return std::string();  // an append overwrites nothing
  return ReadRange(fname, offset, std::min(n, size - offset));
}

void PowerLossFileSystem::Wrote(const std::string& fname, uint64_t offset, uint64_t n,
                                std::string before) {
  absl::MutexLock lock(&mu_);
  State& st = files_[fname];
  Write w;
  w.offset = offset;
  w.length = n;
  w.size_before = st.size;
  w.before = std::move(before);
  st.unsynced.push_back(std::move(w));
  st.size = std::max(st.size, offset + n);
}

// A truncation is taken as durable at once (RocksDB truncates a file it is done with); the
// writes since the last sync keep only what lies before the new end.
void PowerLossFileSystem::Truncated(const std::string& fname, uint64_t size) {
  absl::MutexLock lock(&mu_);
  State& st = files_[fname];
  st.size = size;
  st.synced = std::min(st.synced, size);
  std::vector<Write> kept;
  for (Write& w : st.unsynced) {
    if (w.offset >= size) continue;
    w.length = std::min(w.length, size - w.offset);
    w.size_before = std::min(w.size_before, size);
    if (w.before.size() > w.length) w.before.resize(w.length);
    kept.push_back(std::move(w));
  }
  st.unsynced = std::move(kept);
}

void PowerLossFileSystem::Synced(const std::string& fname) {
  absl::MutexLock lock(&mu_);
  State& st = files_[fname];
  st.synced = st.size;
  st.unsynced.clear();
}

void PowerLossFileSystem::Revert(const std::string& name, const Write& w, uint64_t keep) {
  if (keep < w.before.size()) WriteRange(name, w.offset + keep, w.before.substr(keep));
}

void PowerLossFileSystem::DirectorySynced(const std::string& dir) {
  absl::MutexLock lock(&mu_);
  for (auto& [name, st] : files_) {
    if (ParentOf(name) != dir) continue;
    st.name_durable = true;
    st.renamed = false;
    st.target_before.clear();
  }
  for (auto it = new_dirs_.begin(); it != new_dirs_.end();) {
    it = ParentOf(*it) == dir ? new_dirs_.erase(it) : std::next(it);
  }
}

rocksdb::IOStatus PowerLossFileSystem::CreateDir(const std::string& dirname,
                                                 const rocksdb::IOOptions& options,
                                                 rocksdb::IODebugContext* dbg) {
  return MakeDirectory(dirname, /*if_missing=*/false, options, dbg);
}

rocksdb::IOStatus PowerLossFileSystem::CreateDirIfMissing(const std::string& dirname,
                                                          const rocksdb::IOOptions& options,
                                                          rocksdb::IODebugContext* dbg) {
  return MakeDirectory(dirname, /*if_missing=*/true, options, dbg);
}

rocksdb::IOStatus PowerLossFileSystem::MakeDirectory(const std::string& dirname, bool if_missing,
                                                     const rocksdb::IOOptions& options,
                                                     rocksdb::IODebugContext* dbg) {
  Gate gate(this);
  if (!gate) return PowerLost();
  const std::string dir = WithoutTrailingSlashes(dirname);
  bool is_dir = false;
  const bool existed = target()->IsDirectory(dir, options, &is_dir, nullptr).ok() && is_dir;
  rocksdb::IOStatus s = if_missing ? target()->CreateDirIfMissing(dir, options, dbg)
                                   : target()->CreateDir(dir, options, dbg);
  if (s.ok() && !existed) {
    absl::MutexLock lock(&mu_);
    new_dirs_.insert(dir);
  }
  return s;
}

rocksdb::IOStatus PowerLossFileSystem::NewWritableFile(
    const std::string& fname, const rocksdb::FileOptions& options,
    std::unique_ptr<rocksdb::FSWritableFile>* result, rocksdb::IODebugContext* dbg) {
  return OpenForWriting(fname, /*reopen=*/false, options, result, dbg);
}

rocksdb::IOStatus PowerLossFileSystem::ReopenWritableFile(
    const std::string& fname, const rocksdb::FileOptions& options,
    std::unique_ptr<rocksdb::FSWritableFile>* result, rocksdb::IODebugContext* dbg) {
  return OpenForWriting(fname, /*reopen=*/true, options, result, dbg);
}

rocksdb::IOStatus PowerLossFileSystem::OpenForWriting(
    const std::string& fname, bool reopen, const rocksdb::FileOptions& options,
    std::unique_ptr<rocksdb::FSWritableFile>* result, rocksdb::IODebugContext* dbg) {
  Gate gate(this);
  if (!gate) return PowerLost();
  const bool existed = target()->FileExists(fname, rocksdb::IOOptions(), nullptr).ok();
  std::unique_ptr<rocksdb::FSWritableFile> f;
  rocksdb::IOStatus s = reopen ? target()->ReopenWritableFile(fname, options, &f, dbg)
                               : target()->NewWritableFile(fname, options, &f, dbg);
  if (!s.ok()) return s;
  uint64_t size = 0;  // where the first Append lands
  if (reopen && existed) (void)target()->GetFileSize(fname, rocksdb::IOOptions(), &size, nullptr);
  {
    absl::MutexLock lock(&mu_);
    auto it = files_.find(fname);
    if (!reopen || it == files_.end()) {
      State st;
      // What was there before we saw it is durable (a reopened file's content; a truncation
      // of an existing file); a new name is not until its directory is synced.
      st.size = st.synced = size;
      st.name_durable = it != files_.end() ? it->second.name_durable : existed;
      files_[fname] = st;
    }
  }
  *result = std::make_unique<File>(this, fname, std::move(f), size);
  return s;
}

// RocksDB reuses files only when recycling WALs, which RocksDbLogStore does not do; refusing
// makes a test fail loudly if that ever changes, rather than model it wrong.
rocksdb::IOStatus PowerLossFileSystem::ReuseWritableFile(
    const std::string& /*fname*/, const std::string& /*old_fname*/,
    const rocksdb::FileOptions& /*options*/, std::unique_ptr<rocksdb::FSWritableFile>* /*result*/,
    rocksdb::IODebugContext* /*dbg*/) {
  return rocksdb::IOStatus::NotSupported("PowerLossFileSystem does not model reused files");
}

rocksdb::IOStatus PowerLossFileSystem::NewRandomRWFile(
    const std::string& /*fname*/, const rocksdb::FileOptions& /*options*/,
    std::unique_ptr<rocksdb::FSRandomRWFile>* /*result*/, rocksdb::IODebugContext* /*dbg*/) {
  return rocksdb::IOStatus::NotSupported("PowerLossFileSystem does not model random writes");
}

rocksdb::IOStatus PowerLossFileSystem::LinkFile(const std::string& /*src*/,
                                                const std::string& /*target*/,
                                                const rocksdb::IOOptions& /*options*/,
                                                rocksdb::IODebugContext* /*dbg*/) {
  return rocksdb::IOStatus::NotSupported("PowerLossFileSystem does not model hard links");
}

rocksdb::IOStatus PowerLossFileSystem::NewDirectory(const std::string& name,
                                                    const rocksdb::IOOptions& options,
                                                    std::unique_ptr<rocksdb::FSDirectory>* result,
                                                    rocksdb::IODebugContext* dbg) {
  std::unique_ptr<rocksdb::FSDirectory> d;
  rocksdb::IOStatus s = target()->NewDirectory(name, options, &d, dbg);
  if (!s.ok()) return s;
  *result = std::make_unique<Directory>(this, name, std::move(d));
  return s;
}

rocksdb::IOStatus PowerLossFileSystem::DeleteFile(const std::string& fname,
                                                  const rocksdb::IOOptions& options,
                                                  rocksdb::IODebugContext* dbg) {
  Gate gate(this);
  if (!gate) return PowerLost();
  rocksdb::IOStatus s = target()->DeleteFile(fname, options, dbg);
  if (s.ok()) {
    absl::MutexLock lock(&mu_);
    files_.erase(fname);
  }
  return s;
}

rocksdb::IOStatus PowerLossFileSystem::RenameFile(const std::string& src,
                                                  const std::string& target_name,
                                                  const rocksdb::IOOptions& options,
                                                  rocksdb::IODebugContext* dbg) {
  Gate gate(this);
  if (!gate) return PowerLost();
  std::string before;
  const bool target_existed = ReadWhole(target_name, &before);
  uint64_t src_size = 0;
  (void)target()->GetFileSize(src, rocksdb::IOOptions(), &src_size, nullptr);
  rocksdb::IOStatus s = target()->RenameFile(src, target_name, options, dbg);
  if (!s.ok()) return s;
  absl::MutexLock lock(&mu_);
  State st;
  auto it = files_.find(src);
  if (it != files_.end()) {
    st = it->second;
    files_.erase(it);
  } else {
    st.size = st.synced = src_size;
  }
  // If the source's own name was not durable yet, undoing the rename makes it vanish.
  if (st.name_durable) st.renamed_from = src;
  st.name_durable = false;
  st.renamed = true;
  auto old = files_.find(target_name);
  const bool target_durable = old == files_.end() || old->second.name_durable;
  st.target_existed = target_existed && target_durable;
  st.target_before = st.target_existed ? std::move(before) : std::string();
  files_[target_name] = std::move(st);
  return s;
}

rocksdb::IOStatus PowerLossFileSystem::Truncate(const std::string& fname, size_t size,
                                                const rocksdb::IOOptions& options,
                                                rocksdb::IODebugContext* dbg) {
  Gate gate(this);
  if (!gate) return PowerLost();
  rocksdb::IOStatus s = target()->Truncate(fname, size, options, dbg);
  if (s.ok()) Truncated(fname, size);
  return s;
}

void PowerLossFileSystem::LoseUnsyncedData() {
  absl::MutexLock power(&power_mu_);  // no operation is in progress
  absl::MutexLock lock(&mu_);
  for (auto& [name, st] : files_) {
    // Keep what was synced and, of the rest, a random prefix of the writes (or, out of order,
    // random pages).
    uint64_t keep = st.size;
    uint64_t total = 0;
    for (const Write& w : st.unsynced) total += w.length;
    if (total > 0 && !out_of_order_) {
      const uint64_t cut = std::uniform_int_distribution<uint64_t>(0, total)(rng_);
      // Undo the writes after the cut, newest first, so that each puts back what was there
      // before it; the file is then as long as it was before the oldest write undone.
      uint64_t end = total;
      for (size_t i = st.unsynced.size(); i-- > 0;) {
        const Write& w = st.unsynced[i];
        const uint64_t start = end - w.length;
        end = start;
        if (start + w.length <= cut) break;
        const uint64_t kept = cut > start ? cut - start : 0;
        Revert(name, w, kept);
        keep = std::max(w.size_before, w.offset + kept);
      }
    } else if (total > 0) {
      constexpr uint64_t kPage = 4096;
      std::set<uint64_t> pages;
      for (const Write& w : st.unsynced) {
        for (uint64_t p = w.offset / kPage; p * kPage < w.offset + w.length; ++p) pages.insert(p);
      }
      uint64_t last_kept = st.synced;
      for (uint64_t page : pages) {
        const uint64_t lo = page * kPage, hi = std::min(lo + kPage, st.size);
        if (lo >= hi) continue;
        if (std::uniform_int_distribution<int>(0, 1)(rng_) == 1) {
          last_kept = std::max(last_kept, hi);
          continue;
        }
        // The page as it was at the sync: what each write overwrote, newest first, and
        // zeros where the file did not reach then.
        for (size_t i = st.unsynced.size(); i-- > 0;) {
          const Write& w = st.unsynced[i];
          const uint64_t a = std::max(lo, w.offset);
          const uint64_t b = std::min(hi, w.offset + w.before.size());
          if (a < b) WriteRange(name, a, w.before.substr(a - w.offset, b - a));
        }
        if (std::max(lo, st.synced) < hi) ZeroRange(name, std::max(lo, st.synced), hi);
      }
      if (std::uniform_int_distribution<int>(0, 1)(rng_) == 0) keep = last_kept;
    }
    if (::truncate(name.c_str(), static_cast<off_t>(keep)) != 0) {
      // Already gone (deleted by a test): nothing to lose.
      continue;
    }
    if (st.name_durable) continue;
    if (st.renamed && !st.renamed_from.empty()) {
      std::rename(name.c_str(), st.renamed_from.c_str());
    } else {
      std::remove(name.c_str());
    }
    if (st.renamed && st.target_existed) WriteWhole(name, st.target_before);
  }
  files_.clear();
  for (const std::string& dir : new_dirs_) {
    std::error_code ec;  // a parent listed before it may have taken it already
    std::filesystem::remove_all(dir, ec);
  }
  new_dirs_.clear();
}

}  // namespace shoal::raft::testing
