#include "worker/process_logs.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <tuple>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "worker/process_supervisor.h"

namespace shoal::worker::process_internal {
namespace {

// The longest piece of a line read at once (the supervisor indexes at most 16 KiB per record;
// an unindexed log is split the same way).
constexpr uint64_t kMaxPiece = 16 * 1024;
// Index records read at once.
constexpr uint64_t kRecordBlock = 256;

struct Record {
  uint64_t end = 0;
  absl::Time time;
};

absl::Status ErrnoError(int err, const std::string& what) { return absl::ErrnoToStatus(err, what); }

// One stream's log and its index (or, without an index file, one made by scanning the log).
class Stream {
 public:
  Stream(bool is_stderr, std::string log_path, std::string index_path)
      : is_stderr_(is_stderr), log_path_(std::move(log_path)), index_path_(std::move(index_path)) {}
  ~Stream() {
    if (log_fd_ >= 0) close(log_fd_);
    if (index_fd_ >= 0) close(index_fd_);
  }
  Stream(const Stream&) = delete;
  Stream& operator=(const Stream&) = delete;

  // False when the log does not exist.
  absl::StatusOr<bool> Open() {
    log_fd_ = open(log_path_.c_str(), O_RDONLY | O_CLOEXEC);
    if (log_fd_ < 0) {
      if (errno == ENOENT) return false;
      return ErrnoError(errno, absl::StrCat("opening ", log_path_));
    }
    index_fd_ = open(index_path_.c_str(), O_RDONLY | O_CLOEXEC);
    if (index_fd_ < 0 && errno != ENOENT) {
      return ErrnoError(errno, absl::StrCat("opening ", index_path_));
    }
    return true;
  }

  bool is_stderr() const { return is_stderr_; }

  // The records there are now. `final`: an unindexed log's last line counts without its
  // newline (nothing more is awaited).
  absl::StatusOr<uint64_t> Count(bool final) {
    if (index_fd_ >= 0) {
      struct stat st;
      if (fstat(index_fd_, &st) != 0) return ErrnoError(errno, absl::StrCat("stat ", index_path_));
      return static_cast<uint64_t>(st.st_size) / kIndexRecordSize;
    }
    if (absl::Status s = Scan(final); !s.ok()) return s;
    return static_cast<uint64_t>(scanned_.size());
  }

  absl::StatusOr<Record> At(uint64_t i) {
    if (index_fd_ < 0) {
      if (i >= scanned_.size()) return absl::OutOfRangeError("no such record");
      return scanned_[i];
    }
    if (i < block_first_ || i >= block_first_ + block_.size()) {
      char buf[kRecordBlock * kIndexRecordSize];
      const ssize_t n =
          pread(index_fd_, buf, sizeof(buf), static_cast<off_t>(i * kIndexRecordSize));
      if (n < 0) return ErrnoError(errno, absl::StrCat("reading ", index_path_));
      block_.clear();
      block_first_ = i;
      for (ssize_t at = 0; at + static_cast<ssize_t>(kIndexRecordSize) <= n;
           at += kIndexRecordSize) {
        uint64_t end = 0;
        int64_t nanos = 0;
        DecodeIndexRecord(buf + at, &end, &nanos);
        block_.push_back({end, absl::FromUnixNanos(nanos)});
      }
      if (block_.empty()) return absl::OutOfRangeError("no such record");
    }
    return block_[i - block_first_];
  }

  // The bytes of record i.
  absl::StatusOr<std::string> Data(uint64_t i) {
    uint64_t start = 0;
    if (i > 0) {
      absl::StatusOr<Record> prev = At(i - 1);
      if (!prev.ok()) return prev.status();
      start = prev->end;
    }
    absl::StatusOr<Record> r = At(i);
    if (!r.ok()) return r.status();
    if (r->end < start || r->end - start > 4 * kMaxPiece) {
      return absl::DataLossError(
          absl::StrCat(index_path_, ": record ", i, " does not describe a line of ", log_path_));
    }
    std::string data(r->end - start, '\0');
    size_t got = 0;
    while (got < data.size()) {
      const ssize_t n =
          pread(log_fd_, data.data() + got, data.size() - got, static_cast<off_t>(start + got));
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) return ErrnoError(errno, absl::StrCat("reading ", log_path_));
      if (n == 0) {
        return absl::DataLossError(
            absl::StrCat(log_path_, " is shorter than its index says (", r->end, " bytes)"));
      }
      got += static_cast<size_t>(n);
    }
    return data;
  }

  // The first record before `n` whose time is at or after `since` (n when none).
  absl::StatusOr<uint64_t> FirstAtOrAfter(absl::Time since, uint64_t n) {
    uint64_t lo = 0, hi = n;
    while (lo < hi) {
      const uint64_t mid = lo + (hi - lo) / 2;
      absl::StatusOr<Record> r = At(mid);
      if (!r.ok()) return r.status();
      if (r->time < since) {
        lo = mid + 1;
      } else {
        hi = mid;
      }
    }
    return lo;
  }

 private:
  // An unindexed log: records at each newline (and every kMaxPiece bytes), timed with the
  // log's modification time.
  absl::Status Scan(bool final) {
    struct stat st;
    if (fstat(log_fd_, &st) != 0) return ErrnoError(errno, absl::StrCat("stat ", log_path_));
    const absl::Time mtime = absl::TimeFromTimespec(st.st_mtim);
    const uint64_t size = static_cast<uint64_t>(st.st_size);
    char buf[64 * 1024];
    while (scan_offset_ < size) {
      const ssize_t n = pread(log_fd_, buf, std::min<uint64_t>(sizeof(buf), size - scan_offset_),
                              static_cast<off_t>(scan_offset_));
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) return ErrnoError(errno, absl::StrCat("reading ", log_path_));
      if (n == 0) break;
      for (ssize_t i = 0; i < n; ++i) {
        const uint64_t at = scan_offset_ + static_cast<uint64_t>(i);
        if (buf[i] == '\n' || at + 1 - line_start_ >= kMaxPiece) {
          scanned_.push_back({at + 1, mtime});
          line_start_ = at + 1;
        }
      }
      scan_offset_ += static_cast<uint64_t>(n);
    }
    if (final && scan_offset_ > line_start_) {
      scanned_.push_back({scan_offset_, mtime});
      line_start_ = scan_offset_;
    }
    return absl::OkStatus();
  }

  const bool is_stderr_;
  const std::string log_path_;
  const std::string index_path_;
  int log_fd_ = -1;
  int index_fd_ = -1;
  std::vector<Record> block_;
  uint64_t block_first_ = 0;
  // Without an index file.
  std::vector<Record> scanned_;
  uint64_t scan_offset_ = 0;
  uint64_t line_start_ = 0;
};

class TaskLogReader final : public LogReader {
 public:
  TaskLogReader(std::vector<std::unique_ptr<Stream>> streams, bool follow)
      : streams_(std::move(streams)),
        follow_(follow),
        pos_(streams_.size(), 0),
        end_(streams_.size(), 0) {}

  // Places each stream at the first line to show and, without follow, fixes the last.
  absl::Status Position(const LogOptions& o) {
    std::vector<uint64_t> since_pos(streams_.size());
    for (size_t i = 0; i < streams_.size(); ++i) {
      absl::StatusOr<uint64_t> n = streams_[i]->Count(/*final=*/!follow_);
      if (!n.ok()) return n.status();
      end_[i] = *n;
      absl::StatusOr<uint64_t> first = o.since == absl::InfinitePast()
                                           ? absl::StatusOr<uint64_t>(0)
                                           : streams_[i]->FirstAtOrAfter(o.since, *n);
      if (!first.ok()) return first.status();
      since_pos[i] = *first;
      pos_[i] = *first;
    }
    if (o.tail < 0) return absl::OkStatus();
    // The last `tail` lines across the streams, in the order Read merges them.
    const uint64_t tail = static_cast<uint64_t>(o.tail);
    std::vector<std::tuple<absl::Time, size_t, uint64_t>> candidates;
    for (size_t i = 0; i < streams_.size(); ++i) {
      const uint64_t from = std::max(since_pos[i], end_[i] > tail ? end_[i] - tail : 0);
      for (uint64_t k = from; k < end_[i]; ++k) {
        absl::StatusOr<Record> r = streams_[i]->At(k);
        if (!r.ok()) return r.status();
        candidates.emplace_back(r->time, i, k);
      }
    }
    std::stable_sort(candidates.begin(), candidates.end());
    const size_t drop = candidates.size() > tail ? candidates.size() - tail : 0;
    for (size_t i = 0; i < streams_.size(); ++i) pos_[i] = end_[i];
    for (size_t c = drop; c < candidates.size(); ++c) {
      const auto& [time, i, k] = candidates[c];
      pos_[i] = std::min(pos_[i], k);
    }
    return absl::OkStatus();
  }

  absl::StatusOr<bool> Read(size_t max, std::vector<LogLine>* out) override {
    if (follow_) {
      for (size_t i = 0; i < streams_.size(); ++i) {
        absl::StatusOr<uint64_t> n = streams_[i]->Count(/*final=*/false);
        if (!n.ok()) return n.status();
        end_[i] = std::max(end_[i], *n);
      }
    }
    for (size_t emitted = 0; emitted < max; ++emitted) {
      int best = -1;
      absl::Time best_time;
      for (size_t i = 0; i < streams_.size(); ++i) {
        if (pos_[i] >= end_[i]) continue;
        absl::StatusOr<Record> r = streams_[i]->At(pos_[i]);
        if (!r.ok()) return r.status();
        if (best < 0 || r->time < best_time) {
          best = static_cast<int>(i);
          best_time = r->time;
        }
      }
      if (best < 0) break;
      absl::StatusOr<std::string> data = streams_[best]->Data(pos_[best]);
      if (!data.ok()) return data.status();
      out->push_back({streams_[best]->is_stderr(), best_time, *std::move(data)});
      ++pos_[best];
    }
    if (follow_) return true;
    for (size_t i = 0; i < streams_.size(); ++i) {
      if (pos_[i] < end_[i]) return true;
    }
    return false;
  }

 private:
  std::vector<std::unique_ptr<Stream>> streams_;
  const bool follow_;
  std::vector<uint64_t> pos_;
  std::vector<uint64_t> end_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<LogReader>> OpenTaskLogs(const std::string& dir,
                                                        const LogOptions& options) {
  std::vector<std::unique_ptr<Stream>> streams;
  bool any = false;
  for (const bool err : {false, true}) {
    const char* name = err ? "stderr" : "stdout";
    auto s = std::make_unique<Stream>(err, absl::StrCat(dir, "/", name, ".log"),
                                      absl::StrCat(dir, "/", name, ".idx"));
    absl::StatusOr<bool> exists = s->Open();
    if (!exists.ok()) return exists.status();
    any = any || *exists;
    if (!*exists || (err ? !options.include_stderr : !options.include_stdout)) continue;
    streams.push_back(std::move(s));
  }
  if (!any) return absl::NotFoundError(absl::StrCat("no output of the task in ", dir));
  auto reader = std::make_unique<TaskLogReader>(std::move(streams), options.follow);
  if (absl::Status s = reader->Position(options); !s.ok()) return s;
  return std::unique_ptr<LogReader>(std::move(reader));
}

}  // namespace shoal::worker::process_internal
