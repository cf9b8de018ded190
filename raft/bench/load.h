// A closed-loop load generator for the Raft benchmark (issue #3), shared by the Shoal side and
// the etcd side so that both are measured the same way.
//
// `clients` threads each call `put` back to back (closed loop: a client issues its next call
// only when the previous one returned) for a warm-up period, then for `duration`. Only calls
// that start inside the measured window count: successful ones as operations, with their
// latency; failed ones as errors, which never count towards throughput. Percentiles are exact
// (every latency is kept and sorted), by the nearest-rank definition.
//
// Thread-safety: RunLoad calls `put` concurrently from `clients` threads, so `put` must be safe
// to call concurrently for different `client` values; calls for one client are sequential.
// The pure helpers (Percentile, SummarizeLatencies, ToJson) are thread-compatible.
//
//   shoal::raft::bench::LoadOptions o;
//   o.clients = 64;
//   o.duration = absl::Seconds(10);
//   LoadResult r = RunLoad(o, [&](int client, uint64_t seq, const std::string& value) {
//     return store.Put(absl::StrCat("k", client), value);
//   });
//   std::puts(ToJson(r, {{"system", "etcd"}}).c_str());
#pragma once

#include <cstdint>
#include <functional>
#include <initializer_list>
#include <string>
#include <type_traits>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "common/clock.h"

namespace shoal::raft::bench {

struct LoadOptions {
  // Concurrent closed-loop clients (threads). Requires >= 1.
  int clients = 1;
  // Length of the measured window, after the warm-up. Requires > 0.
  absl::Duration duration = absl::Seconds(10);
  // Size of the value passed to every call (bytes of 'x'-like filler; content is irrelevant).
  uint64_t value_bytes = 256;
  // Calls made before the measured window (connections set up, caches warm); not recorded.
  absl::Duration warmup = absl::ZeroDuration();
};

struct LoadResult {
  uint64_t ops = 0;       // successful calls that started in the measured window
  uint64_t errors = 0;    // failed calls that started in the measured window
  double seconds = 0;     // from the window's start to the last counted call's return
  double throughput = 0;  // ops / seconds
  double p50_ms = 0;      // latency percentiles of the successful calls
  double p99_ms = 0;
  double max_ms = 0;
  int clients = 0;  // copied from the options, for the report
  uint64_t value_bytes = 0;
  std::string first_error;  // the first error seen in the window (empty if none)
};

// put(client, seq, value): client in [0, clients), seq = 0, 1, 2, ... per client (warm-up calls
// included), value of value_bytes bytes. Returns OK when the write was acknowledged.
using PutFn = std::function<absl::Status(int client, uint64_t seq, const std::string& value)>;

// The asynchronous form of a call, for RunLoadAsync: start(client, seq, value, done) begins the
// write and returns; `done` must then be called exactly once with its outcome, from any thread,
// before or after start returns (a `done` called inside `start` is not a recursion: the next
// call is made once start has returned). Calls for one client never overlap.
using DoneFn = std::function<void(absl::Status)>;
using StartFn =
    std::function<void(int client, uint64_t seq, const std::string& value, DoneFn done)>;

// Called first thing in main() by both benchmarks' processes (load generators and Shoal's
// members alike). Debian builds Abseil without NDEBUG, which leaves absl::Mutex's deadlock
// detection on: a global graph updated under a global lock on nested acquisitions (pairs of
// locks cost about 3x here), and Debian's gRPC takes its locks through absl::Mutex. Only
// Shoal's side turned it off until 2026-12-03, so etcd's load generator paid that cost and
// Shoal's did not: both must run the same client code at the same cost. For the same reason it
// checks that the process's malloc is jemalloc (both binaries depend on
// //third_party/system:jemalloc; glibc's malloc cost a Raft member a tenth of its CPU, and the
// load generator pays for its allocations too): a binary built without it stops here, saying
// so, rather than measure one side with another allocator.
void PrepareBenchmarkProcess();

// The allocator behind malloc in this process: "jemalloc" when it links
// //third_party/system:jemalloc, else "glibc". Reported in both benchmarks' JSON lines.
std::string ProcessAllocator();

// Runs the load with the system clock and returns what was measured. Blocks for about
// warmup + duration (plus the slowest call in flight at the end).
LoadResult RunLoad(const LoadOptions& o, const PutFn& put);

// The same with an injected clock (tests pass a ManualClock that `put` advances, so no test
// sleeps). The clock times both the window and each call's latency.
LoadResult RunLoad(const LoadOptions& o, const PutFn& put, const Clock& clock);

// The same closed loop, measured the same way, with `clients` logical clients rather than
// threads: each call is started by the completion of the one before it (on whatever thread ran
// `done`). A client's calls are still sequential and each waits for its acknowledgement, as
// etcd's Go clients do on goroutines; what goes is a thread per client, whose wake-up per call
// (the thread that reads the connection handing each response to the thread that waits for
// it) cost the load generator about as much CPU as the leader spent per write. Blocks until
// every client's last call has completed.
LoadResult RunLoadAsync(const LoadOptions& o, const StartFn& start);
LoadResult RunLoadAsync(const LoadOptions& o, const StartFn& start, const Clock& clock);

// CPU time (user + system) that process `pid` (0: this one) has used so far, in seconds, from
// /proc; 0 if it cannot be read. Both benchmarks report CPU per operation of the members and
// of the clients with it: on a machine whose speed varies with its neighbours, the CPU each
// system spends per write compares better across runs than writes per second.
double ProcessCpuSeconds(int pid);

// The nearest-rank percentile `p` (0 < p <= 100) of `sorted` (ascending): the smallest value
// such that at least p% of the values are <= it. 0 for an empty vector.
int64_t Percentile(const std::vector<int64_t>& sorted, double p);

struct LatencySummary {
  double p50_ms = 0;
  double p99_ms = 0;
  double max_ms = 0;
};

// p50, p99 and max, in milliseconds, of latencies given in nanoseconds (any order; sorts them).
LatencySummary SummarizeLatencies(std::vector<int64_t> latencies_ns);

// One extra key of the JSON line: a string (quoted and escaped) or a number.
class JsonField {
 public:
  JsonField(absl::string_view key, absl::string_view value);
  JsonField(absl::string_view key, const char* value) : JsonField(key, absl::string_view(value)) {}
  JsonField(absl::string_view key, const std::string& value)
      : JsonField(key, absl::string_view(value)) {}
  template <typename T,
            typename = std::enable_if_t<std::is_arithmetic_v<T> && !std::is_same_v<T, bool>>>
  JsonField(absl::string_view key, T value) : key_(key) {
    if constexpr (std::is_floating_point_v<T>) {
      json_value_ = FiniteNumber(static_cast<double>(value));
    } else {
      json_value_ = absl::StrCat(value);
    }
  }
  JsonField(absl::string_view key, bool value) : key_(key), json_value_(value ? "true" : "false") {}

  const std::string& key() const { return key_; }
  // The value as JSON text.
  const std::string& json_value() const { return json_value_; }

 private:
  // Six significant digits (absl::StrCat), or 0 for NaN and infinities (JSON has neither).
  static std::string FiniteNumber(double v);

  std::string key_;
  std::string json_value_;
};

// One JSON object on one line (no newline): the `extra` fields first (e.g. "system"), then
// clients, value_bytes, ops, errors, seconds, throughput (ops/s), p50_ms, p99_ms, max_ms, and
// first_error when there were errors.
std::string ToJson(const LoadResult& r, std::initializer_list<JsonField> extra = {});

}  // namespace shoal::raft::bench
