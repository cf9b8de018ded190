#include "raft/bench/load.h"

#include <dlfcn.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <thread>
#include <utility>

#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "common/check.h"

namespace shoal::raft::bench {
namespace {

// What one client thread saw in the measured window. Each thread owns its own, so the hot
// loop takes no lock; they are merged after every thread has joined.
struct ClientRecord {
  std::vector<int64_t> latencies_ns;
  uint64_t errors = 0;
  absl::Time last_done = absl::InfinitePast();
  absl::Time first_error_at = absl::InfiniteFuture();
  std::string first_error;
};

// Records one call that started at `begin` and returned `status` at `end`.
void RecordCall(ClientRecord* record, absl::Time window_start, absl::Time begin, absl::Time end,
                const absl::Status& status) {
  if (begin < window_start) return;  // warm-up
  record->last_done = std::max(record->last_done, end);
  if (status.ok()) {
    record->latencies_ns.push_back(absl::ToInt64Nanoseconds(end - begin));
  } else {
    ++record->errors;
    if (record->first_error.empty()) {
      record->first_error = status.ToString();
      record->first_error_at = begin;
    }
  }
}

void RunClient(int client, const PutFn& put, const std::string& value, const Clock& clock,
               absl::Time window_start, absl::Time window_end, ClientRecord* record) {
  for (uint64_t seq = 0;; ++seq) {
    const absl::Time begin = clock.Now();
    if (begin >= window_end) return;
    absl::Status status = put(client, seq, value);
    RecordCall(record, window_start, begin, clock.Now(), status);
  }
}

LoadResult Summarize(const LoadOptions& o, std::vector<ClientRecord>& records,
                     absl::Time window_start, absl::Time window_end) {
  LoadResult r;
  r.clients = o.clients;
  r.value_bytes = o.value_bytes;
  std::vector<int64_t> latencies;
  absl::Time last_done = window_end;
  absl::Time first_error_at = absl::InfiniteFuture();
  for (ClientRecord& rec : records) {
    latencies.insert(latencies.end(), rec.latencies_ns.begin(), rec.latencies_ns.end());
    r.errors += rec.errors;
    last_done = std::max(last_done, rec.last_done);
    if (!rec.first_error.empty() && rec.first_error_at < first_error_at) {
      first_error_at = rec.first_error_at;
      r.first_error = std::move(rec.first_error);
    }
  }
  r.ops = latencies.size();
  // The window is at least `duration`, longer when the last counted call returned after its end.
  r.seconds = absl::ToDoubleSeconds(last_done - window_start);
  r.throughput = r.seconds > 0 ? static_cast<double>(r.ops) / r.seconds : 0;
  const LatencySummary summary = SummarizeLatencies(std::move(latencies));
  r.p50_ms = summary.p50_ms;
  r.p99_ms = summary.p99_ms;
  r.max_ms = summary.max_ms;
  return r;
}

void CheckOptions(const LoadOptions& o) {
  SHOAL_CHECK(o.clients >= 1, "RunLoad needs at least one client, got ", o.clients);
  SHOAL_CHECK(o.duration > absl::ZeroDuration(), "RunLoad needs a positive duration");
  SHOAL_CHECK(o.warmup >= absl::ZeroDuration(), "RunLoad needs a non-negative warm-up");
}

// One run of RunLoadAsync. A client's next call is made by whoever finishes its previous one:
// the thread that ran `done`, or, when `done` ran before `start` returned (inline, or on
// another thread in the meantime), the thread that called `start`. `starting` decides which:
// both exchange it, and the one that finds it already cleared goes on, so exactly one does
// and a long run of inline completions is a loop, not a recursion.
class AsyncRun {
 public:
  AsyncRun(const LoadOptions& o, const StartFn& start, const Clock& clock)
      : start_(start),
        clock_(clock),
        value_(o.value_bytes, 'v'),
        window_start_(clock.Now() + o.warmup),
        window_end_(window_start_ + o.duration),
        clients_(o.clients),
        running_(o.clients) {
    for (int c = 0; c < o.clients; ++c) clients_[c].id = c;
  }

  std::vector<ClientRecord> Run() {
    for (Client& c : clients_) Continue(&c);
    all_done_.WaitForNotification();
    std::vector<ClientRecord> records;
    records.reserve(clients_.size());
    for (Client& c : clients_) records.push_back(std::move(c.record));
    return records;
  }

  absl::Time window_start() const { return window_start_; }
  absl::Time window_end() const { return window_end_; }

 private:
  struct Client {
    int id = 0;
    uint64_t seq = 0;
    absl::Time begin;
    std::atomic<bool> starting{false};
    ClientRecord record;
  };

  // Makes `c`'s calls until one is left to complete later, or the window is over.
  void Continue(Client* c) {
    while (true) {
      const absl::Time begin = clock_.Now();
      if (begin >= window_end_) {
        // The last client to finish wakes Run; nothing of this object is touched after.
        if (running_.fetch_sub(1) == 1) all_done_.Notify();
        return;
      }
      c->begin = begin;
      c->starting.store(true);
      start_(c->id, c->seq++, value_, [this, c](absl::Status status) {
        RecordCall(&c->record, window_start_, c->begin, clock_.Now(), status);
        if (!c->starting.exchange(false)) Continue(c);  // start has returned: go on from here
      });
      if (c->starting.exchange(false)) return;  // still in flight: its `done` goes on
    }
  }

  const StartFn& start_;
  const Clock& clock_;
  const std::string value_;
  const absl::Time window_start_;
  const absl::Time window_end_;
  std::vector<Client> clients_;
  std::atomic<int> running_;
  absl::Notification all_done_;
};

double NanosToMillis(int64_t ns) { return static_cast<double>(ns) / 1e6; }

std::string JsonQuote(absl::string_view s) {
  std::string out = "\"";
  for (char c : s) {
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          out += absl::StrFormat("\\u%04x", static_cast<unsigned char>(c));
        } else {
          out += c;
        }
    }
  }
  out += '"';
  return out;
}

// JSON has no NaN or infinity; a benchmark that measured nothing reports 0.
std::string JsonNumber(double v, int decimals) {
  if (!std::isfinite(v)) return "0";
  return absl::StrFormat("%.*f", decimals, v);
}

}  // namespace

void PrepareBenchmarkProcess() {
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
  SHOAL_CHECK(ProcessAllocator() == "jemalloc",
              "this benchmark binary was linked without jemalloc (its malloc is ",
              ProcessAllocator(),
              "): both benchmarks' processes must use the same allocator; add "
              "//third_party/system:jemalloc to the binary's deps");
}

std::string ProcessAllocator() {
  // mallctl is jemalloc's own entry point: present in the process only when it is linked in,
  // and then its malloc is the one every library calls (it is loaded before libc).
  return dlsym(RTLD_DEFAULT, "mallctl") != nullptr ? "jemalloc" : "glibc";
}

LoadResult RunLoad(const LoadOptions& o, const PutFn& put) { return RunLoad(o, put, RealClock()); }

LoadResult RunLoad(const LoadOptions& o, const PutFn& put, const Clock& clock) {
  CheckOptions(o);
  const std::string value(o.value_bytes, 'v');
  std::vector<ClientRecord> records(o.clients);
  const absl::Time window_start = clock.Now() + o.warmup;
  const absl::Time window_end = window_start + o.duration;

  std::vector<std::thread> threads;
  threads.reserve(o.clients);
  for (int c = 0; c < o.clients; ++c) {
    threads.emplace_back(RunClient, c, std::cref(put), std::cref(value), std::cref(clock),
                         window_start, window_end, &records[c]);
  }
  for (std::thread& t : threads) t.join();
  return Summarize(o, records, window_start, window_end);
}

LoadResult RunLoadAsync(const LoadOptions& o, const StartFn& start) {
  return RunLoadAsync(o, start, RealClock());
}

LoadResult RunLoadAsync(const LoadOptions& o, const StartFn& start, const Clock& clock) {
  CheckOptions(o);
  AsyncRun run(o, start, clock);
  std::vector<ClientRecord> records = run.Run();
  return Summarize(o, records, run.window_start(), run.window_end());
}

int64_t Percentile(const std::vector<int64_t>& sorted, double p) {
  if (sorted.empty()) return 0;
  // Nearest rank: the ceil(p/100 * n)-th smallest value (1-based), clamped to [1, n].
  const double rank = std::ceil(p / 100.0 * static_cast<double>(sorted.size()));
  const size_t index =
      static_cast<size_t>(std::clamp(rank, 1.0, static_cast<double>(sorted.size()))) - 1;
  return sorted[index];
}

LatencySummary SummarizeLatencies(std::vector<int64_t> latencies_ns) {
  LatencySummary s;
  if (latencies_ns.empty()) return s;
  std::sort(latencies_ns.begin(), latencies_ns.end());
  s.p50_ms = NanosToMillis(Percentile(latencies_ns, 50));
  s.p99_ms = NanosToMillis(Percentile(latencies_ns, 99));
  s.max_ms = NanosToMillis(latencies_ns.back());
  return s;
}

JsonField::JsonField(absl::string_view key, absl::string_view value)
    : key_(key), json_value_(JsonQuote(value)) {}

std::string JsonField::FiniteNumber(double v) {
  if (!std::isfinite(v)) return "0";
  return absl::StrCat(v);
}

std::string ToJson(const LoadResult& r, std::initializer_list<JsonField> extra) {
  std::string out = "{";
  auto add = [&out](absl::string_view key, absl::string_view json_value) {
    if (out.size() > 1) out += ",";
    absl::StrAppend(&out, JsonQuote(key), ":", json_value);
  };
  for (const JsonField& f : extra) add(f.key(), f.json_value());
  add("clients", absl::StrCat(r.clients));
  add("value_bytes", absl::StrCat(r.value_bytes));
  add("ops", absl::StrCat(r.ops));
  add("errors", absl::StrCat(r.errors));
  add("seconds", JsonNumber(r.seconds, 3));
  add("throughput", JsonNumber(r.throughput, 1));
  add("p50_ms", JsonNumber(r.p50_ms, 3));
  add("p99_ms", JsonNumber(r.p99_ms, 3));
  add("max_ms", JsonNumber(r.max_ms, 3));
  if (r.errors > 0) add("first_error", JsonQuote(r.first_error));
  out += "}";
  return out;
}

double ProcessCpuSeconds(int pid) {
  const std::string path = pid == 0 ? "/proc/self/stat" : absl::StrCat("/proc/", pid, "/stat");
  std::FILE* f = std::fopen(path.c_str(), "r");
  if (f == nullptr) return 0;
  char buf[1024];
  const size_t n = std::fread(buf, 1, sizeof(buf) - 1, f);
  std::fclose(f);
  buf[n] = '\0';
  // Fields 14 and 15 (utime, stime) follow the command name, which ends at the last ')'.
  const char* p = std::strrchr(buf, ')');
  if (p == nullptr || p[1] == '\0') return 0;
  std::vector<absl::string_view> fields = absl::StrSplit(p + 2, ' ');
  if (fields.size() < 13) return 0;
  const double ticks = static_cast<double>(sysconf(_SC_CLK_TCK));
  return (std::strtod(std::string(fields[11]).c_str(), nullptr) +
          std::strtod(std::string(fields[12]).c_str(), nullptr)) /
         ticks;
}

}  // namespace shoal::raft::bench
