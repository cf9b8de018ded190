#include "raft/rocksdb_log_store.h"

#include <rocksdb/db.h>
#include <rocksdb/file_checksum.h>
#include <rocksdb/file_system.h>
#include <rocksdb/options.h>
#include <rocksdb/write_batch.h>
#include <zlib.h>

#include <algorithm>
#include <filesystem>
#include <memory>
#include <optional>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "raft/wal_check.h"
#include "raft/wal_prefill.h"

namespace shoal::raft {
namespace {

constexpr char kEntryPrefix = 'e';
constexpr char kEntryEnd[] = "f";  // just past every entry key
constexpr char kHardStateKey[] = "h";
constexpr char kSnapshotKey[] = "s";
constexpr char kMarkerKey[] = "m";
// Held the membership as last applied until the membership moved into the log (2026-12-02);
// a store that has it was bootstrapped without membership entries.
constexpr char kRetiredConfStateKey[] = "c";

raftpb::Entry Marker(uint64_t index, uint64_t term) {
  raftpb::Entry e;
  e.set_index(index);
  e.set_term(term);
  return e;
}

std::string EntryKey(uint64_t index) {
  std::string key(9, '\0');
  key[0] = kEntryPrefix;
  for (int i = 0; i < 8; ++i) key[1 + i] = static_cast<char>(index >> (56 - 8 * i));
  return key;
}

uint64_t IndexOfKey(const rocksdb::Slice& key) {
  uint64_t index = 0;
  for (int i = 0; i < 8; ++i) index = index << 8 | static_cast<uint8_t>(key[1 + i]);
  return index;
}

uint32_t Crc(const char* data, size_t n) {
  return static_cast<uint32_t>(
      crc32(crc32(0L, Z_NULL, 0), reinterpret_cast<const Bytef*>(data), static_cast<uInt>(n)));
}

// What protobuf serializes at most; a bigger message comes out empty (and sealed, would be
// stored as an empty snapshot with a valid checksum, the log then compacted behind it).
constexpr uint64_t kMaxSealedBytes = (uint64_t{1} << 31) - 1;

absl::Status CheckSealable(const raftpb::Snapshot& snap) {
  const size_t bytes = snap.ByteSizeLong();
  if (bytes <= kMaxSealedBytes) return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrCat(
      "raft store: a snapshot of ", bytes, " bytes (at index ", snap.metadata().index(),
      ") is over the ", kMaxSealedBytes,
      " bytes a stored snapshot can hold; nothing was written (the replicated state must stay "
      "below 2 GiB)"));
}

std::string Seal(const google::protobuf::MessageLite& m) {
  std::string payload = m.SerializeAsString();
  const uint32_t crc = Crc(payload.data(), payload.size());
  std::string out(4, '\0');
  for (int i = 0; i < 4; ++i) out[i] = static_cast<char>(crc >> (8 * i));
  return out + payload;
}

// Checks the CRC and parses. DATA_LOSS naming `what` on failure.
absl::Status Unseal(const rocksdb::Slice& value, google::protobuf::MessageLite* m,
                    absl::string_view what) {
  if (value.size() < 4) return absl::DataLossError(absl::StrCat(what, ": value is truncated"));
  uint32_t crc = 0;
  for (int i = 0; i < 4; ++i)
    crc |= static_cast<uint32_t>(static_cast<uint8_t>(value[i])) << (8 * i);
  if (Crc(value.data() + 4, value.size() - 4) != crc) {
    return absl::DataLossError(absl::StrCat(what, ": checksum mismatch (corrupt value)"));
  }
  if (!m->ParseFromArray(value.data() + 4, static_cast<int>(value.size() - 4))) {
    return absl::DataLossError(absl::StrCat(what, ": unparsable value"));
  }
  return absl::OkStatus();
}

absl::Status FromRocks(const rocksdb::Status& s, absl::string_view what) {
  if (s.ok()) return absl::OkStatus();
  if (s.IsCorruption()) return absl::DataLossError(absl::StrCat(what, ": ", s.ToString()));
  return absl::InternalError(absl::StrCat(what, ": ", s.ToString()));
}

// Creates `path` and its missing parents, and makes every new name durable by syncing the
// directory that holds it. RocksDB syncs the database directory after creating files in it,
// but not the directory's own entry in its parent: after a power loss a new store's directory,
// and with it everything the member acknowledged, could be gone. The parent of `path` is
// synced even when nothing was created here (a run that created it may have stopped first).
absl::Status CreateDurableDirectory(rocksdb::FileSystem* fs, const std::string& path) {
  std::filesystem::path p = std::filesystem::path(path).lexically_normal();
  if (p.has_relative_path() && p.filename().empty()) p = p.parent_path();  // "a/b/"
  const rocksdb::IOOptions io;
  std::vector<std::filesystem::path> missing;  // deepest first
  for (std::filesystem::path d = p; !d.empty(); d = d.parent_path()) {
    if (fs->FileExists(d.string(), io, nullptr).ok()) break;
    missing.push_back(d);
    if (d == d.parent_path()) break;
  }
  std::vector<std::filesystem::path> to_sync;
  for (auto it = missing.rbegin(); it != missing.rend(); ++it) {
    rocksdb::IOStatus s = fs->CreateDirIfMissing(it->string(), io, nullptr);
    if (!s.ok()) {
      return absl::FailedPreconditionError(
          absl::StrCat("creating the raft store directory ", it->string(), ": ", s.ToString(),
                       " (is the path writable by this process, and not a file?)"));
    }
    to_sync.push_back(it->has_parent_path() ? it->parent_path() : ".");
  }
  if (missing.empty()) to_sync.push_back(p.has_parent_path() ? p.parent_path() : ".");
  for (const std::filesystem::path& d : to_sync) {
    std::unique_ptr<rocksdb::FSDirectory> dir;
    rocksdb::IOStatus s = fs->NewDirectory(d.string(), io, &dir, nullptr);
    if (s.ok()) s = dir->Fsync(io, nullptr);
    if (s.ok()) s = dir->Close(io, nullptr);
    if (!s.ok()) {
      return absl::FailedPreconditionError(
          absl::StrCat("syncing directory ", d.string(), " for the raft store: ", s.ToString(),
                       " (the store's directory is not durable; check the file system)"));
    }
  }
  return absl::OkStatus();
}

// Checks every write-ahead log file of the store at `path` (CheckWalFile, wal_check.h).
absl::Status CheckWalTails(rocksdb::FileSystem* fs, const std::string& path) {
  std::vector<std::string> children;
  rocksdb::IOStatus listed = fs->GetChildren(path, rocksdb::IOOptions(), &children, nullptr);
  if (!listed.ok()) return absl::OkStatus();  // not a directory: RocksDB's open says so
  for (const std::string& child : children) {
    if (child.size() < 5 || child.compare(child.size() - 4, 4, ".log") != 0) continue;
    const std::string file = (std::filesystem::path(path) / child).string();
    const std::string what = absl::StrCat("reading the write-ahead log ", file,
                                          " before opening the store (nothing was opened; "
                                          "check the disk)");
    std::unique_ptr<rocksdb::FSSequentialFile> in;
    rocksdb::IOStatus s = fs->NewSequentialFile(file, rocksdb::FileOptions(), &in, nullptr);
    if (!s.ok()) return FromRocks(s, what);
    std::string bytes;
    std::string chunk(1 << 20, '\0');
    for (;;) {
      rocksdb::Slice got;
      s = in->Read(chunk.size(), rocksdb::IOOptions(), &got, chunk.data(), nullptr);
      if (!s.ok()) return FromRocks(s, what);
      if (got.empty()) break;
      bytes.append(got.data(), got.size());
    }
    if (std::optional<size_t> torn = TornWriteOverZeros(bytes)) {
      // Cut the torn write off, as the file would have ended had its zeros not been laid
      // down ahead of it; durably, though a crash before that only means doing it again.
      const std::string cut = absl::StrCat(
          "cutting a torn write (left by a crash, never acknowledged) off the write-ahead log ",
          file, " at byte ", *torn,
          " before opening the store (nothing was opened; check that the disk is writable and "
          "the directory is this process's, then start the member again: the cut is made anew)");
      std::unique_ptr<rocksdb::FSWritableFile> out;
      s = fs->ReopenWritableFile(file, rocksdb::FileOptions(), &out, nullptr);
      if (s.ok()) s = out->Truncate(*torn, rocksdb::IOOptions(), nullptr);
      if (s.ok()) s = out->Fsync(rocksdb::IOOptions(), nullptr);
      if (s.ok()) s = out->Close(rocksdb::IOOptions(), nullptr);
      if (!s.ok()) return FromRocks(s, cut);
      bytes.resize(*torn);
    }
    absl::Status checked = CheckWalFile(file, bytes);
    if (!checked.ok()) return checked;
  }
  return absl::OkStatus();
}

// What the operator does about a damaged store, at the end of every DATA_LOSS from Open (the
// write-ahead log check in wal_check.cc says the same in its own words).
constexpr char kDamagedStoreRemedy[] =
    "The store is damaged and was not opened; remove this member from the cluster and add it "
    "back with an empty store (it catches up from the others), or restore the directory from a "
    "copy";

// DATA_LOSS when the store at `path` has no CURRENT file but holds tables or write-ahead logs
// (see Open); OK otherwise, also when it cannot tell (RocksDB's open then reports it).
absl::Status CheckNotHeadless(rocksdb::FileSystem* fs, const std::string& path) {
  const std::string current = (std::filesystem::path(path) / "CURRENT").string();
  if (!fs->FileExists(current, rocksdb::IOOptions(), nullptr).IsNotFound()) {
    return absl::OkStatus();
  }
  std::vector<std::string> children;
  if (!fs->GetChildren(path, rocksdb::IOOptions(), &children, nullptr).ok()) {
    return absl::OkStatus();  // no directory (yet), or not one: RocksDB's open says so
  }
  std::vector<std::string> data;
  for (const std::string& child : children) {
    for (const char* ext : {".sst", ".ldb", ".log"}) {
      if (child.size() > 4 && child.compare(child.size() - 4, 4, ext) == 0) data.push_back(child);
    }
  }
  if (data.empty()) return absl::OkStatus();
  std::sort(data.begin(), data.end());
  return absl::DataLossError(absl::StrCat(
      "raft store ", path, ": its CURRENT file is missing, but its tables or write-ahead logs "
      "are there (", absl::StrJoin(data, ", "),
      "): RocksDB would start an empty store over them, so nothing was changed. ",
      kDamagedStoreRemedy));
}

}  // namespace

RocksDbLogStore::RocksDbLogStore(std::unique_ptr<rocksdb::Env> env,
                                 std::unique_ptr<WalSequenceCheck> wal_check,
                                 std::unique_ptr<rocksdb::DB> db, Options options)
    : options_(std::move(options)),
      env_(std::move(env)),
      wal_check_(std::move(wal_check)),
      db_(std::move(db)) {}

RocksDbLogStore::~RocksDbLogStore() = default;

absl::StatusOr<std::unique_ptr<RocksDbLogStore>> RocksDbLogStore::Open(const Options& options) {
  rocksdb::Options opts;
  opts.create_if_missing = options.create_if_missing;
  opts.paranoid_checks = true;
  // A crash may leave the log's last record torn; that record was never acknowledged (its
  // sync did not return) and is dropped. Anything else that does not check out is damage
  // and fails the open: RocksDB's default (point-in-time recovery) would stop at the first
  // bad record and silently drop every acknowledged write after it.
  opts.wal_recovery_mode = rocksdb::WALRecoveryMode::kTolerateCorruptedTailRecords;
  // One writer, small values, mostly appends: keep the memtable small and the WAL authoritative.
  opts.max_background_jobs = 2;
  opts.write_buffer_size = options.memtable_bytes;
  if (options.env != nullptr) opts.env = options.env;
  {
    // CURRENT names the database's manifest; it exists from the moment RocksDB created the
    // store (written, synced and renamed into place before any log file or table), so a store
    // with tables or write-ahead logs but no CURRENT is damaged, never a crash's leftover.
    // RocksDB would take it for no database: with create_if_missing it wrote a new, empty one
    // over it and failed ("wal_dir contains existing log file"), and the next open then
    // opened that empty store without a word and deleted the old tables (the member's votes
    // and log gone for good).
    absl::Status headless = CheckNotHeadless(opts.env->GetFileSystem().get(), options.path);
    if (!headless.ok()) return headless;
  }
  if (!options.create_if_missing) {
    // RocksDB's own refusal ("does not exist (create_if_missing is false)") names neither
    // what is at stake nor what to check.
    const std::string current = (std::filesystem::path(options.path) / "CURRENT").string();
    const rocksdb::IOStatus exists =
        opts.env->GetFileSystem()->FileExists(current, rocksdb::IOOptions(), nullptr);
    if (!exists.ok() && !exists.IsNotFound()) {
      return absl::FailedPreconditionError(absl::StrCat(
          "cannot tell whether the raft store at ", options.path, " exists: ", exists.ToString(),
          " (is the directory readable by this process?)"));
    }
    if (!exists.ok()) {
      return absl::FailedPreconditionError(absl::StrCat(
          "no raft store at ", options.path,
          " (no CURRENT file there), but this member has run before: its data directory was "
          "moved, deleted or is not mounted. Starting empty would forget its votes and the "
          "entries it acknowledged; restore the directory, or remove this member from the "
          "cluster and join it again. Nothing was created"));
    }
  } else {
    absl::Status made = CreateDurableDirectory(opts.env->GetFileSystem().get(), options.path);
    if (!made.ok()) return made;
  }
  {
    // Before RocksDB replays (and then deletes) them: see wal_check.h.
    absl::Status tails = CheckWalTails(opts.env->GetFileSystem().get(), options.path);
    if (!tails.ok()) {
      return absl::Status(tails.code(),
                          absl::StrCat("raft store ", options.path, ": ", tails.message()));
    }
  }
  auto damaged = [](absl::Status st) {
    if (!absl::IsDataLoss(st)) return st;
    return absl::DataLossError(absl::StrCat(st.message(), ". ", kDamagedStoreRemedy));
  };
  // RocksDB drops a damaged last record of an older log as a torn write (wal_check.h).
  auto wal_check = std::make_unique<WalSequenceCheck>();
  opts.wal_filter = wal_check.get();
  std::unique_ptr<rocksdb::Env> env;
  if (options.wal_prefill_bytes > 0) {
    env = rocksdb::NewCompositeEnv(std::make_shared<WalPrefillFileSystem>(
        opts.env->GetFileSystem(), options.wal_prefill_bytes));
    opts.env = env.get();
  }
  rocksdb::DB* raw = nullptr;
  rocksdb::Status s = rocksdb::DB::Open(opts, options.path, &raw);
  if (s.IsIOError() && absl::StrContains(s.ToString(), "/LOCK")) {
    // RocksDB's LOCK file is held: another process (or this one) has the store open. Its own
    // words ("lock hold by current process", "While lock file: <path>/LOCK: Resource
    // temporarily unavailable") came out as an internal error. Matched on the file's name, not
    // on "lock", which any error about a block contains.
    return absl::FailedPreconditionError(absl::StrCat(
        "raft store ", options.path,
        " is in use: another process, or another store in this one, has it open (its LOCK "
        "file is held); is a second manager running with the same data directory? (",
        s.ToString(), ")"));
  }
  if (!s.ok() && !wal_check->status().ok()) {
    return damaged(absl::Status(
        wal_check->status().code(),
        absl::StrCat("raft store ", options.path, ": ", wal_check->status().message())));
  }
  if (!s.ok()) return damaged(FromRocks(s, absl::StrCat("opening raft store ", options.path)));
  std::unique_ptr<RocksDbLogStore> store(
      new RocksDbLogStore(std::move(env), std::move(wal_check), std::unique_ptr<rocksdb::DB>(raw),
                          options));
  absl::Status loaded = store->Load();
  if (!loaded.ok()) {
    return damaged(absl::Status(loaded.code(),
                                absl::StrCat("raft store ", options.path, ": ", loaded.message())));
  }
  return store;
}

absl::Status RocksDbLogStore::Load() {
  absl::MutexLock lock(&mu_);
  const rocksdb::ReadOptions ro;
  // Reads one sealed value: false when absent.
  auto read = [&](const char* key, google::protobuf::MessageLite* m,
                  absl::string_view what) -> absl::StatusOr<bool> {
    std::string value;
    rocksdb::Status s = db_->Get(ro, key, &value);
    if (s.IsNotFound()) return false;
    if (!s.ok()) return FromRocks(s, absl::StrCat("reading the ", what));
    absl::Status u = Unseal(value, m, what);
    if (!u.ok()) return u;
    return true;
  };
  absl::StatusOr<bool> found = read(kSnapshotKey, &snapshot_, "snapshot");
  if (!found.ok()) return found.status();
  snapshot_.clear_data();  // read again when asked for: it is the whole state
  found = read(kHardStateKey, &hard_state_, "hard state");
  if (!found.ok()) return found.status();
  {
    std::string retired;
    rocksdb::Status s = db_->Get(ro, kRetiredConfStateKey, &retired);
    if (s.ok()) {
      // Opened as it is, this member would start with no membership and never vote.
      return absl::FailedPreconditionError(
          "written by an older Shoal that kept the membership apart from the log (key \"c\"); "
          "this version reads it from the log only. Remove this member's state directory and "
          "join it to the cluster again (or, for the last member, start it on the older "
          "version and move its data out); nothing was changed");
    }
    if (!s.IsNotFound()) return FromRocks(s, "reading the retired membership key");
  }
  raftpb::Entry marker;  // (0, 0) until the first compaction or installed snapshot
  found = read(kMarkerKey, &marker, "compaction marker");
  if (!found.ok()) return found.status();

  std::vector<uint64_t> terms = {marker.term()};
  uint64_t want = marker.index() + 1;  // the log continues right after the marker
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(ro));
  for (it->Seek(EntryKey(0)); it->Valid() && it->key()[0] == kEntryPrefix; it->Next()) {
    const uint64_t index = IndexOfKey(it->key());
    raftpb::Entry e;
    absl::Status u = Unseal(it->value(), &e, absl::StrCat("entry ", index));
    if (!u.ok()) return u;
    if (e.index() != index) {
      return absl::DataLossError(
          absl::StrCat("entry stored under index ", index, " says it is ", e.index()));
    }
    if (index < want) {
      return absl::DataLossError(absl::StrCat(
          "entry ", index, " is at or below the compaction marker at ", marker.index()));
    }
    if (index > want) {
      return absl::DataLossError(absl::StrCat("entries ", want, " to ", index - 1, " are missing"));
    }
    if (e.term() < terms.back()) {
      // Every write keeps the log's terms in order (a newer term's entries replace a suffix
      // whole), so an older term after a newer one is an entry that was replaced or deleted
      // and is back.
      return absl::DataLossError(absl::StrCat(
          "entry ", index, " has term ", e.term(), ", below the term ", terms.back(), " of ",
          terms.size() == 1 ? "the compaction marker at " : "entry ", index - 1,
          ": a log's terms never go back (an entry replaced or deleted is back)"));
    }
    terms.push_back(e.term());
    ++want;
  }
  if (!it->status().ok()) return FromRocks(it->status(), "scanning entries");

  const uint64_t last = want - 1;
  const uint64_t snap_index = snapshot_.metadata().index();
  if (snap_index < marker.index()) {
    return absl::DataLossError(absl::StrCat("the log was compacted to ", marker.index(),
                                            ", beyond the snapshot at ", snap_index));
  }
  if (snap_index > last) {
    return absl::DataLossError(
        absl::StrCat("the log ends at ", last, " below the snapshot at ", snap_index));
  }
  if (terms[snap_index - marker.index()] != snapshot_.metadata().term()) {
    return absl::DataLossError(
        absl::StrCat("entry ", snap_index, " contradicts the snapshot's term"));
  }
  first_ = marker.index() + 1;
  terms_ = std::move(terms);
  if (hard_state_.commit() > last) {
    return absl::DataLossError(absl::StrCat("the commit index ", hard_state_.commit(),
                                            " is beyond the last stored entry ", last,
                                            ": the log was truncated"));
  }
  if (hard_state_.term() < terms_.back()) {
    // A member takes entries or a snapshot of a term only once it is in that term, and a Ready
    // writes the new term in the batch of the first entries it carries: the stored term is
    // never below the log's. Below it, the hard state is older than the log (a lost write, or
    // pieces of different copies of the store), and the member would forget what it did in
    // its latest terms: a vote given, and so vote twice in one term.
    return absl::DataLossError(absl::StrCat(
        "the hard state's term ", hard_state_.term(), " is below the term ", terms_.back(),
        last > marker.index() ? absl::StrCat(" of the last entry, ", last)
                              : absl::StrCat(" of the snapshot at ", last),
        ": the hard state is older than the log"));
  }
  return absl::OkStatus();
}

absl::StatusOr<InitialState> RocksDbLogStore::GetInitialState() {
  absl::MutexLock lock(&mu_);
  return InitialState{hard_state_, snapshot_.metadata().conf_state()};
}

uint64_t RocksDbLogStore::FirstIndex() {
  absl::MutexLock lock(&mu_);
  return first_;
}

uint64_t RocksDbLogStore::LastIndex() {
  absl::MutexLock lock(&mu_);
  return first_ - 1 + terms_.size() - 1;
}

absl::StatusOr<uint64_t> RocksDbLogStore::Term(uint64_t i) {
  absl::MutexLock lock(&mu_);
  const uint64_t dummy = first_ - 1;
  if (i < dummy) return CompactedError();
  if (i - dummy >= terms_.size()) return UnavailableIndexError();
  return terms_[i - dummy];
}

absl::StatusOr<raftpb::Snapshot> RocksDbLogStore::Snapshot() {
  raftpb::Snapshot snap;
  {
    absl::MutexLock lock(&mu_);
    if (snapshot_.metadata().index() == 0) return snap;  // none yet
  }
  // Not under the lock: a big snapshot takes a while to read and check. A snapshot saved
  // meanwhile replaces the value whole, so what is read is one snapshot or the other.
  std::string value;
  absl::Status s = FromRocks(db_->Get(rocksdb::ReadOptions(), kSnapshotKey, &value),
                             "reading the snapshot");
  if (!s.ok()) return s;
  s = Unseal(value, &snap, "snapshot");
  if (!s.ok()) return s;
  return snap;
}

absl::StatusOr<raftpb::SnapshotMetadata> RocksDbLogStore::SnapshotMetadata() {
  absl::MutexLock lock(&mu_);
  return snapshot_.metadata();
}

absl::StatusOr<std::vector<raftpb::Entry>> RocksDbLogStore::Entries(uint64_t lo, uint64_t hi,
                                                                    uint64_t max_bytes) {
  // A write that removes or replaces entries may land between the bounds check and the
  // iterator's view (both under the lock would hold it through the read): then read again.
  for (;;) {
    uint64_t rewrites = 0;
    absl::StatusOr<std::vector<raftpb::Entry>> got = EntriesOnce(lo, hi, max_bytes, &rewrites);
    absl::MutexLock lock(&mu_);
    if (rewrites == rewrites_) return got;
  }
}

absl::StatusOr<std::vector<raftpb::Entry>> RocksDbLogStore::EntriesOnce(uint64_t lo, uint64_t hi,
                                                                        uint64_t max_bytes,
                                                                        uint64_t* rewrites) {
  std::vector<raftpb::Entry> out;
  {
    absl::MutexLock lock(&mu_);
    *rewrites = rewrites_;
    if (lo < first_) return CompactedError();
    if (hi > first_ + terms_.size() - 1) return UnavailableIndexError();
    if (lo >= hi) return out;
    if (!cache_.empty() && lo >= cache_.front().index() &&
        cache_.back().index() == first_ + terms_.size() - 2) {
      // The cache ends at the last index, which `hi` does not pass (checked above).
      uint64_t size = 0;
      for (auto e = cache_.begin() + (lo - cache_.front().index());
           e != cache_.end() && e->index() < hi; ++e) {
        size += e->ByteSizeLong();
        if (!out.empty() && size > max_bytes) break;
        out.push_back(*e);
      }
      return out;
    }
  }
  if (options_.before_disk_read) options_.before_disk_read();
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions()));
  uint64_t size = 0;
  bool size_limited = false;
  uint64_t want = lo;
  for (it->Seek(EntryKey(lo)); it->Valid() && want < hi; it->Next(), ++want) {
    if (it->key()[0] != kEntryPrefix || IndexOfKey(it->key()) != want) break;
    raftpb::Entry e;
    absl::Status u = Unseal(it->value(), &e, absl::StrCat("entry ", want));
    if (!u.ok()) return u;
    size += e.ByteSizeLong();
    if (!out.empty() && size > max_bytes) {
      size_limited = true;
      break;
    }
    out.push_back(std::move(e));
  }
  if (!it->status().ok()) return FromRocks(it->status(), "reading entries");
  entries_read_from_disk_.fetch_add(out.size(), std::memory_order_relaxed);
  if (!size_limited && out.size() < hi - lo) {
    // Compacted by the writer since the check above (CompactTo holds the lock until first_
    // moves, so this sees it), rewritten (Entries reads again), or really missing.
    absl::MutexLock lock(&mu_);
    if (lo < first_) return CompactedError();
    if (*rewrites != rewrites_) return out;  // not returned: read again
    return absl::DataLossError(absl::StrCat("raft store: entry ", lo + out.size(), " is missing"));
  }
  return out;
}

absl::Status RocksDbLogStore::Save(const raftpb::HardState* hard_state,
                                   const std::vector<raftpb::Entry>& entries,
                                   const raftpb::Snapshot* snapshot, bool sync) {
  // The batch is planned under the lock, and an append is written without it: readers (the
  // core building appends for followers) go on during the fsync. Writes that change the log's
  // extent (this, CompactTo) are serialized by the caller, so the plan still holds when the
  // write completes; a SaveSnapshot alongside changes neither first_ nor terms_. A write that
  // removes or replaces stored entries (a snapshot, a suffix replaced) keeps the lock until
  // first_, terms_ and the cache say what it wrote, and counts itself in rewrites_: a reader
  // between the two found the entries it was allowed to ask for gone and reported them missing
  // (DATA_LOSS), not compacted; Entries now reads again when a rewrite came between its bounds
  // check and its read.
  rocksdb::WriteBatch batch;
  uint64_t first = 0;
  size_t keep_terms = 0;  // how many of terms_ stay (after a snapshot: of {snapshot term})
  absl::ReleasableMutexLock lock(&mu_);
  bool replaces = snapshot != nullptr;
  {
    first = first_;
    keep_terms = terms_.size();
    if (snapshot != nullptr) {
      if (snapshot->metadata().index() <= snapshot_.metadata().index()) {
        return absl::FailedPreconditionError(
            absl::StrCat("snapshot at ", snapshot->metadata().index(),
                         " is not newer than the stored one at ", snapshot_.metadata().index()));
      }
      if (absl::Status big = CheckSealable(*snapshot); !big.ok()) return big;
      batch.Put(kSnapshotKey, Seal(*snapshot));
      batch.DeleteRange(EntryKey(0), kEntryEnd);  // the snapshot replaces the whole log
      batch.Put(kMarkerKey,
                Seal(Marker(snapshot->metadata().index(), snapshot->metadata().term())));
      first = snapshot->metadata().index() + 1;
      keep_terms = 1;
    }
    // Entries all behind the compaction point change nothing (the DeleteRange below would
    // take the live log with it).
    if (!entries.empty() && entries.back().index() >= first) {
      const uint64_t last = first - 1 + keep_terms - 1;
      const uint64_t start = entries.front().index();
      if (start > last + 1) {
        return absl::FailedPreconditionError(
            absl::StrCat("appending at ", start, " leaves a gap after the last entry ", last));
      }
      for (const raftpb::Entry& e : entries) {
        if (e.index() < first) continue;  // already compacted
        batch.Put(EntryKey(e.index()), Seal(e));
      }
      const uint64_t new_last = entries.back().index();
      if (start <= last) replaces = true;
      if (start <= last && new_last < last) {
        // The new entries replace a longer suffix: drop what follows them.
        batch.DeleteRange(EntryKey(new_last + 1), kEntryEnd);
      }
      if (new_last >= first) {
        keep_terms = std::min<uint64_t>(keep_terms, std::max(start, first) - (first - 1));
      }
    }
    if (hard_state != nullptr) batch.Put(kHardStateKey, Seal(*hard_state));
  }
  if (!replaces) lock.Release();
  rocksdb::WriteOptions wo;
  wo.sync = sync && options_.sync;
  absl::Status s = FromRocks(db_->Write(wo, &batch), "writing to the raft store");
  if (!s.ok()) return s;
  std::optional<absl::MutexLock> relock;
  if (!replaces) relock.emplace(&mu_);
  if (snapshot != nullptr) {
    snapshot_.Clear();
    *snapshot_.mutable_metadata() = snapshot->metadata();
    terms_.assign(1, snapshot->metadata().term());
    cache_.clear();
    cache_bytes_ = 0;
  }
  terms_.resize(keep_terms);
  for (const raftpb::Entry& e : entries) {
    if (e.index() >= first) terms_.push_back(e.term());
  }
  if (hard_state != nullptr) hard_state_ = *hard_state;
  if (replaces) ++rewrites_;
  first_ = first;
  if (!entries.empty() && entries.back().index() >= first) CacheLocked(entries);
  return absl::OkStatus();
}

void RocksDbLogStore::CacheLocked(const std::vector<raftpb::Entry>& entries) {
  if (entries.empty()) return;
  const uint64_t start = std::max(entries.front().index(), first_);
  // Drop what the new entries replace (a conflicting suffix), or everything if they would not
  // continue the cache.
  while (!cache_.empty() && cache_.back().index() >= start) {
    cache_bytes_ -= cache_.back().ByteSizeLong();
    cache_.pop_back();
  }
  if (!cache_.empty() && cache_.back().index() + 1 != start) {
    cache_.clear();
    cache_bytes_ = 0;
  }
  for (const raftpb::Entry& e : entries) {
    if (e.index() < start) continue;
    const uint64_t bytes = e.ByteSizeLong();
    if (bytes > options_.entry_cache_bytes) {  // too big to keep: the cache restarts after it
      cache_.clear();
      cache_bytes_ = 0;
      continue;
    }
    cache_.push_back(e);
    cache_bytes_ += bytes;
  }
  while (cache_bytes_ > options_.entry_cache_bytes) {
    cache_bytes_ -= cache_.front().ByteSizeLong();
    cache_.pop_front();
  }
}

absl::StatusOr<raftpb::Snapshot> RocksDbLogStore::SaveSnapshot(uint64_t i,
                                                               const raftpb::ConfState& cs,
                                                               std::string data) {
  // Planned under the lock, written without it (a big snapshot's synced write must not hold up
  // the readers or the log's writes), like Save. A Save alongside appends or replaces entries
  // beyond the commit index only, so the term of the committed entry `i` it read stays.
  raftpb::Snapshot snap;
  {
    absl::MutexLock lock(&mu_);
    if (i <= snapshot_.metadata().index()) {
      return absl::FailedPreconditionError(absl::StrCat("snapshot at ", i,
                                                        " is not newer than the stored one at ",
                                                        snapshot_.metadata().index()));
    }
    const uint64_t last = first_ - 1 + terms_.size() - 1;
    if (i > last) {
      return absl::FailedPreconditionError(
          absl::StrCat("snapshot index ", i, " is beyond the last entry ", last));
    }
    if (i < first_ - 1) return CompactedError();
    snap.mutable_metadata()->set_index(i);
    snap.mutable_metadata()->set_term(terms_[i - (first_ - 1)]);
  }
  snap.set_data(std::move(data));
  *snap.mutable_metadata()->mutable_conf_state() = cs;
  rocksdb::WriteOptions wo;
  wo.sync = options_.sync;
  if (absl::Status big = CheckSealable(snap); !big.ok()) return big;
  absl::Status s = FromRocks(db_->Put(wo, kSnapshotKey, Seal(snap)), "writing a snapshot");
  if (!s.ok()) return s;
  absl::MutexLock lock(&mu_);
  snapshot_.Clear();
  *snapshot_.mutable_metadata() = snap.metadata();
  return snap;
}

absl::Status RocksDbLogStore::CompactTo(uint64_t compact_index) {
  absl::MutexLock lock(&mu_);
  if (compact_index < first_) {
    return absl::FailedPreconditionError(absl::StrCat(
        "compact index ", compact_index, " is already compacted (first index ", first_, ")"));
  }
  if (compact_index > snapshot_.metadata().index()) {
    return absl::FailedPreconditionError(
        absl::StrCat("compact index ", compact_index, " is beyond the snapshot at ",
                     snapshot_.metadata().index(), ": entries not in any snapshot would be lost"));
  }
  // Entry `compact_index` becomes the marker: only its index and term stay, under their own
  // key, in the same batch (so the log always says where it starts, whatever a crash keeps).
  rocksdb::WriteBatch batch;
  batch.DeleteRange(EntryKey(0), EntryKey(compact_index + 1));
  batch.Put(kMarkerKey, Seal(Marker(compact_index, terms_[compact_index - (first_ - 1)])));
  rocksdb::WriteOptions wo;  // losing a compaction in a crash is harmless: no sync
  absl::Status s = FromRocks(db_->Write(wo, &batch), "compacting the raft log");
  if (!s.ok()) return s;
  terms_.erase(terms_.begin(), terms_.begin() + (compact_index - (first_ - 1)));
  first_ = compact_index + 1;
  while (!cache_.empty() && cache_.front().index() < first_) {
    cache_bytes_ -= cache_.front().ByteSizeLong();
    cache_.pop_front();
  }
  return absl::OkStatus();
}

}  // namespace shoal::raft
