#include "raft/bench/load.h"

#include <unistd.h>

#include <atomic>
#include <deque>
#include <thread>
#include <utility>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "common/testing/manual_clock.h"
#include "gtest/gtest.h"

namespace shoal::raft::bench {
namespace {

TEST(PercentileTest, UsesNearestRankOnOneToHundred) {
  std::vector<int64_t> v;
  for (int64_t i = 1; i <= 100; ++i) v.push_back(i);
  EXPECT_EQ(Percentile(v, 50), 50);
  EXPECT_EQ(Percentile(v, 99), 99);
  EXPECT_EQ(Percentile(v, 100), 100);
  EXPECT_EQ(Percentile(v, 1), 1);
}

TEST(PercentileTest, RoundsRankUp) {
  // n = 10: p50 is the 5th value, p99 the ceil(9.9) = 10th, p11 the ceil(1.1) = 2nd.
  const std::vector<int64_t> v = {10, 20, 30, 40, 50, 60, 70, 80, 90, 100};
  EXPECT_EQ(Percentile(v, 50), 50);
  EXPECT_EQ(Percentile(v, 99), 100);
  EXPECT_EQ(Percentile(v, 11), 20);
}

TEST(PercentileTest, SingleValueIsEveryPercentile) {
  const std::vector<int64_t> v = {7};
  EXPECT_EQ(Percentile(v, 0.1), 7);
  EXPECT_EQ(Percentile(v, 50), 7);
  EXPECT_EQ(Percentile(v, 99), 7);
}

TEST(PercentileTest, EmptyIsZero) { EXPECT_EQ(Percentile({}, 50), 0); }

TEST(SummarizeLatenciesTest, SortsAndConvertsToMilliseconds) {
  // 1..200 ms, shuffled by reversing.
  std::vector<int64_t> ns;
  for (int64_t ms = 200; ms >= 1; --ms) ns.push_back(ms * 1000000);
  const LatencySummary s = SummarizeLatencies(ns);
  EXPECT_DOUBLE_EQ(s.p50_ms, 100.0);
  EXPECT_DOUBLE_EQ(s.p99_ms, 198.0);
  EXPECT_DOUBLE_EQ(s.max_ms, 200.0);
}

TEST(SummarizeLatenciesTest, EmptyIsAllZero) {
  const LatencySummary s = SummarizeLatencies({});
  EXPECT_EQ(s.p50_ms, 0);
  EXPECT_EQ(s.p99_ms, 0);
  EXPECT_EQ(s.max_ms, 0);
}

TEST(RunLoadTest, CountsEveryCallStartedInTheWindow) {
  ManualClock clock;
  LoadOptions o;
  o.clients = 1;
  o.duration = absl::Milliseconds(100);
  o.value_bytes = 32;
  std::vector<uint64_t> seqs;
  const LoadResult r = RunLoad(
      o,
      [&](int client, uint64_t seq, const std::string& value) {
        EXPECT_EQ(client, 0);
        EXPECT_EQ(value.size(), 32u);
        seqs.push_back(seq);
        clock.Advance(absl::Milliseconds(1));
        return absl::OkStatus();
      },
      clock);
  EXPECT_EQ(r.ops, 100u);
  EXPECT_EQ(r.errors, 0u);
  EXPECT_DOUBLE_EQ(r.seconds, 0.1);
  EXPECT_DOUBLE_EQ(r.throughput, 1000.0);
  EXPECT_DOUBLE_EQ(r.p50_ms, 1.0);
  EXPECT_DOUBLE_EQ(r.p99_ms, 1.0);
  EXPECT_DOUBLE_EQ(r.max_ms, 1.0);
  EXPECT_EQ(r.clients, 1);
  EXPECT_EQ(r.value_bytes, 32u);
  ASSERT_EQ(seqs.size(), 100u);
  for (uint64_t i = 0; i < seqs.size(); ++i) EXPECT_EQ(seqs[i], i);
}

TEST(RunLoadTest, ErrorsAreCountedApartAndNotAsThroughput) {
  ManualClock clock;
  LoadOptions o;
  o.duration = absl::Milliseconds(100);
  const LoadResult r = RunLoad(
      o,
      [&](int, uint64_t seq, const std::string&) {
        clock.Advance(absl::Milliseconds(1));
        if (seq % 4 == 3) return absl::UnavailableError(absl::StrCat("no leader at ", seq));
        return absl::OkStatus();
      },
      clock);
  EXPECT_EQ(r.ops, 75u);
  EXPECT_EQ(r.errors, 25u);
  EXPECT_DOUBLE_EQ(r.seconds, 0.1);
  EXPECT_DOUBLE_EQ(r.throughput, 750.0);
  EXPECT_EQ(r.first_error, "UNAVAILABLE: no leader at 3");
}

TEST(RunLoadTest, WarmupCallsAreNotRecorded) {
  ManualClock clock;
  LoadOptions o;
  o.duration = absl::Milliseconds(50);
  o.warmup = absl::Milliseconds(20);
  uint64_t calls = 0;
  const LoadResult r = RunLoad(
      o,
      [&](int, uint64_t seq, const std::string&) {
        ++calls;
        // Warm-up calls are slow and fail; neither may show in the result.
        if (seq < 10) {
          clock.Advance(absl::Milliseconds(2));
          return absl::InternalError("cold");
        }
        clock.Advance(absl::Milliseconds(1));
        return absl::OkStatus();
      },
      clock);
  EXPECT_EQ(calls, 60u);
  EXPECT_EQ(r.ops, 50u);
  EXPECT_EQ(r.errors, 0u);
  EXPECT_DOUBLE_EQ(r.max_ms, 1.0);
  EXPECT_DOUBLE_EQ(r.seconds, 0.05);
}

TEST(RunLoadTest, LatenciesFeedExactPercentiles) {
  ManualClock clock;
  LoadOptions o;
  // Calls take 1, 2, ..., 100 ms: 5050 ms in all.
  o.duration = absl::Milliseconds(5050);
  const LoadResult r = RunLoad(
      o,
      [&](int, uint64_t seq, const std::string&) {
        clock.Advance(absl::Milliseconds(static_cast<int64_t>(seq) + 1));
        return absl::OkStatus();
      },
      clock);
  EXPECT_EQ(r.ops, 100u);
  EXPECT_DOUBLE_EQ(r.p50_ms, 50.0);
  EXPECT_DOUBLE_EQ(r.p99_ms, 99.0);
  EXPECT_DOUBLE_EQ(r.max_ms, 100.0);
}

TEST(RunLoadTest, WindowStretchesToTheLastCountedReturn) {
  ManualClock clock;
  LoadOptions o;
  o.duration = absl::Milliseconds(10);
  // The first call starts inside the window and returns 30 ms later.
  const LoadResult r = RunLoad(
      o,
      [&](int, uint64_t, const std::string&) {
        clock.Advance(absl::Milliseconds(30));
        return absl::OkStatus();
      },
      clock);
  EXPECT_EQ(r.ops, 1u);
  EXPECT_DOUBLE_EQ(r.seconds, 0.03);
}

TEST(RunLoadTest, EveryClientRunsItsOwnSequence) {
  ManualClock clock;
  LoadOptions o;
  o.clients = 4;
  o.duration = absl::Milliseconds(200);
  absl::Mutex mu;
  std::vector<std::vector<uint64_t>> seqs(o.clients);
  std::atomic<uint64_t> calls{0};
  const LoadResult r = RunLoad(
      o,
      [&](int client, uint64_t seq, const std::string&) {
        {
          absl::MutexLock lock(&mu);
          seqs.at(client).push_back(seq);
        }
        ++calls;
        // Each call moves the shared clock, so the run ends after ~200 calls in total
        // whatever the interleaving; one call in five fails.
        clock.Advance(absl::Milliseconds(1));
        if (seq % 5 == 4) return absl::UnavailableError("busy");
        return absl::OkStatus();
      },
      clock);
  // Every call started before the end; each client may have one call in flight past it.
  EXPECT_EQ(r.ops + r.errors, calls.load());
  EXPECT_GE(calls.load(), 200u);
  EXPECT_LE(calls.load(), 200u + 4u);
  uint64_t expected_errors = 0;
  for (const std::vector<uint64_t>& s : seqs) {
    for (uint64_t i = 0; i < s.size(); ++i) {
      EXPECT_EQ(s[i], i);
      if (i % 5 == 4) ++expected_errors;
    }
  }
  EXPECT_EQ(r.errors, expected_errors);
  EXPECT_EQ(r.clients, 4);
}

// RunLoadAsync with every call completed inside `start`: the same figures as RunLoad's, and a
// long run of inline completions (100,000 calls) is a loop, not a recursion that would
// overflow the stack.
TEST(RunLoadAsyncTest, CallsCompletedInlineMeasureAsTheBlockingOnesDo) {
  ManualClock clock;
  LoadOptions o;
  o.duration = absl::Milliseconds(100);
  o.warmup = absl::Milliseconds(10);
  o.value_bytes = 16;
  std::vector<uint64_t> seqs;
  const LoadResult r = RunLoadAsync(
      o,
      [&](int client, uint64_t seq, const std::string& value, DoneFn done) {
        EXPECT_EQ(client, 0);
        EXPECT_EQ(value.size(), 16u);
        seqs.push_back(seq);
        clock.Advance(absl::Microseconds(1));
        done(seq % 10 == 9 ? absl::UnavailableError(absl::StrCat("no leader at ", seq))
                           : absl::OkStatus());
      },
      clock);
  ASSERT_EQ(seqs.size(), 110000u);  // 10,000 warm-up calls, then 100,000
  for (uint64_t i = 0; i < seqs.size(); ++i) ASSERT_EQ(seqs[i], i);
  EXPECT_EQ(r.ops, 90000u);
  EXPECT_EQ(r.errors, 10000u);
  EXPECT_EQ(r.first_error, "UNAVAILABLE: no leader at 10009");
  EXPECT_DOUBLE_EQ(r.seconds, 0.1);
  EXPECT_DOUBLE_EQ(r.throughput, 900000.0);
  EXPECT_DOUBLE_EQ(r.p50_ms, 0.001);
  EXPECT_DOUBLE_EQ(r.max_ms, 0.001);
}

// Completions on another thread, as gRPC's completion queue delivers them: each client's next
// call starts only when its previous one completed, every client keeps its own sequence, and
// latency runs from start to completion (not to start's return).
TEST(RunLoadAsyncTest, CallsCompletedOnAnotherThreadAreAClosedLoopPerClient) {
  ManualClock clock;
  LoadOptions o;
  o.clients = 4;
  o.duration = absl::Milliseconds(200);
  struct Calls {
    std::deque<std::pair<int, DoneFn>> pending;  // completed in order by `completer`
    bool stop = false;
    bool Ready() const { return !pending.empty() || stop; }
  };
  absl::Mutex mu;
  Calls q;
  std::vector<std::vector<uint64_t>> seqs(o.clients);
  std::vector<bool> in_flight(o.clients, false);
  uint64_t calls = 0;
  bool overlapped = false;
  std::thread completer([&] {
    while (true) {
      std::pair<int, DoneFn> call;
      {
        absl::MutexLock lock(&mu);
        mu.Await(absl::Condition(&q, &Calls::Ready));
        if (q.pending.empty()) return;
        call = std::move(q.pending.front());
        q.pending.pop_front();
        in_flight[call.first] = false;
        // Each completion takes 1 ms of the shared clock; every fifth call fails.
        clock.Advance(absl::Milliseconds(1));
      }
      const uint64_t seq = seqs[call.first].back();
      call.second(seq % 5 == 4 ? absl::UnavailableError("busy") : absl::OkStatus());
    }
  });
  const LoadResult r = RunLoadAsync(
      o,
      [&](int client, uint64_t seq, const std::string&, DoneFn done) {
        absl::MutexLock lock(&mu);
        if (in_flight[client]) overlapped = true;
        in_flight[client] = true;
        seqs.at(client).push_back(seq);
        ++calls;
        q.pending.emplace_back(client, std::move(done));
      },
      clock);
  {
    absl::MutexLock lock(&mu);
    q.stop = true;
  }
  completer.join();
  EXPECT_FALSE(overlapped);
  EXPECT_EQ(r.ops + r.errors, calls);
  EXPECT_GE(calls, 200u);
  EXPECT_LE(calls, 200u + 4u);
  uint64_t expected_errors = 0;
  for (const std::vector<uint64_t>& s : seqs) {
    EXPECT_FALSE(s.empty());
    for (uint64_t i = 0; i < s.size(); ++i) {
      EXPECT_EQ(s[i], i);
      if (i % 5 == 4) ++expected_errors;
    }
  }
  EXPECT_EQ(r.errors, expected_errors);
  // With four calls queued at a time, each waits for the three ahead of it and its own: 4 ms.
  EXPECT_DOUBLE_EQ(r.p50_ms, 4.0);
  EXPECT_EQ(r.clients, 4);
}

TEST(ToJsonTest, PrintsOneLineWithExtraFieldsFirst) {
  LoadResult r;
  r.clients = 64;
  r.value_bytes = 256;
  r.ops = 30000;
  r.errors = 0;
  r.seconds = 10.0;
  r.throughput = 3000.0;
  r.p50_ms = 1.7;
  r.p99_ms = 12.25;
  r.max_ms = 40.5;
  EXPECT_EQ(ToJson(r, {{"system", "etcd"}, {"members", 3}}),
            "{\"system\":\"etcd\",\"members\":3,\"clients\":64,\"value_bytes\":256,"
            "\"ops\":30000,\"errors\":0,\"seconds\":10.000,\"throughput\":3000.0,"
            "\"p50_ms\":1.700,\"p99_ms\":12.250,\"max_ms\":40.500}");
}

TEST(ToJsonTest, EscapesStringsAndReportsTheFirstError) {
  LoadResult r;
  r.errors = 2;
  r.first_error = "UNAVAILABLE: \"leader\"\nchanged";
  const std::string json = ToJson(r, {{"note", "a\\b"}, {"ratio", 0.5}, {"ok", true}});
  EXPECT_NE(json.find("\"note\":\"a\\\\b\""), std::string::npos) << json;
  EXPECT_NE(json.find("\"ratio\":0.5"), std::string::npos) << json;
  EXPECT_NE(json.find("\"ok\":true"), std::string::npos) << json;
  EXPECT_NE(json.find("\"first_error\":\"UNAVAILABLE: \\\"leader\\\"\\nchanged\""),
            std::string::npos)
      << json;
  EXPECT_EQ(json.find('\n'), std::string::npos);
}

}  // namespace
}  // namespace shoal::raft::bench

namespace shoal::raft::bench {
namespace {

TEST(ProcessCpuSecondsTest, GrowsAsThisProcessWorks) {
  const double before = ProcessCpuSeconds(0);
  ASSERT_GE(before, 0);
  // Work until the kernel has charged at least one clock tick more (bounded: a tick is 10 ms).
  volatile uint64_t sink = 0;
  double after = before;
  for (int round = 0; round < 100000 && after <= before; ++round) {
    for (int i = 0; i < 100000; ++i) sink = sink + static_cast<uint64_t>(i) * 2654435761u;
    after = ProcessCpuSeconds(0);
  }
  EXPECT_GT(after, before);
  EXPECT_GE(ProcessCpuSeconds(getpid()), after);  // the same process, read by its id
}

TEST(ProcessCpuSecondsTest, AnUnreadableProcessIsZero) {
  EXPECT_EQ(ProcessCpuSeconds(-1), 0);
  EXPECT_EQ(ProcessCpuSeconds(1 << 30), 0);  // above any pid_max
}

}  // namespace
}  // namespace shoal::raft::bench
