// bazel run //raft:sim -- --seeds N --first-seed S [--trace-lines L] [--chaos-ticks T]
//
// Runs the deterministic Raft simulation for seeds S..S+N-1 and prints a summary. A failing
// seed is re-run with tracing and its last events are printed; rerun just that seed with
// `--seeds 1 --first-seed <seed>` to replay it exactly.
#include <chrono>
#include <cstdio>

#include <CLI/CLI.hpp>

#include "raft/sim/sim.h"

int main(int argc, char** argv) {
  CLI::App app{"Deterministic simulation of Raft under faults"};
  uint64_t seeds = 100;
  uint64_t first = 1;
  int trace_lines = 400;
  shoal::raft::sim::SimOptions opts;
  bool verbose = false;
  app.add_option("--seeds", seeds, "number of seeds to run")->check(CLI::PositiveNumber);
  app.add_option("--first-seed", first, "first seed");
  app.add_option("--trace-lines", trace_lines, "events printed for a failing seed");
  app.add_option("--chaos-ticks", opts.chaos_ticks, "ticks of faults per seed");
  app.add_option("--clients", opts.clients, "concurrent clients");
  app.add_flag("-v,--verbose", verbose, "print every seed's statistics");
  CLI11_PARSE(app, argc, argv);

  const auto start = std::chrono::steady_clock::now();
  uint64_t failed = 0;
  shoal::raft::sim::SimStats total;
  for (uint64_t seed = first; seed < first + seeds; ++seed) {
    shoal::raft::sim::SimResult r = shoal::raft::sim::RunSeed(seed, opts);
    const auto& s = r.stats;
    total.elections += s.elections;
    total.crashes += s.crashes;
    total.lost_readies += s.lost_readies;
    total.partitions += s.partitions;
    total.disk_stalls += s.disk_stalls;
    total.read_failures += s.read_failures;
    total.silent_stalls += s.silent_stalls;
    total.membership_changes += s.membership_changes;
    total.removals_told += s.removals_told;
    total.transfers += s.transfers;
    total.pauses += s.pauses;
    total.long_pauses += s.long_pauses;
    total.resumed_messages += s.resumed_messages;
    total.driven_changes += s.driven_changes;
    total.strikes += s.strikes;
    total.tail_entries += s.tail_entries;
    total.snapshots_sent += s.snapshots_sent;
    total.acked_writes += s.acked_writes;
    total.acked_reads += s.acked_reads;
    total.unknown_outcomes += s.unknown_outcomes;
    total.messages += s.messages;
    if (verbose) {
      std::printf(
          "seed %lu: %s ticks=%lu msgs=%lu elections=%lu crashes=%lu writes=%lu reads=%lu "
          "pauses=%lu driven=%lu tail=%lu\n",
          (unsigned long)seed, r.ok ? "ok" : "FAILED", (unsigned long)s.ticks,
          (unsigned long)s.messages, (unsigned long)s.elections, (unsigned long)s.crashes,
          (unsigned long)s.acked_writes, (unsigned long)s.acked_reads, (unsigned long)s.pauses,
          (unsigned long)s.driven_changes, (unsigned long)s.tail_entries);
    }
    if (!r.ok) {
      ++failed;
      opts.trace_lines = trace_lines;
      shoal::raft::sim::SimResult traced = shoal::raft::sim::RunSeed(seed, opts);
      opts.trace_lines = 0;
      std::printf("seed %lu FAILED: %s\n", (unsigned long)seed, r.failure.c_str());
      for (const std::string& line : traced.trace) std::printf("  %s\n", line.c_str());
      std::printf("replay: bazel run //raft:sim -- --seeds 1 --first-seed %lu\n",
                  (unsigned long)seed);
    }
  }
  const double secs =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::printf(
      "seeds %lu..%lu: %lu passed, %lu failed in %.1fs (elections %lu, crashes %lu of which %lu "
      "lost an unpersisted Ready and %lu followed a failed read, partitions %lu, disk stalls %lu "
      "(%lu silencing a follower), "
      "membership changes %lu (%lu back to back, %lu leaders struck), removals learned on "
      "return %lu, transfers %lu, pauses %lu (%lu past an election timeout, %lu messages taken "
      "on resuming), minority-tail proposals %lu, "
      "snapshots sent %lu, acknowledged writes %lu, reads %lu, unknown outcomes %lu, messages "
      "%lu)\n",
      (unsigned long)first, (unsigned long)(first + seeds - 1), (unsigned long)(seeds - failed),
      (unsigned long)failed, secs, (unsigned long)total.elections, (unsigned long)total.crashes,
      (unsigned long)total.lost_readies, (unsigned long)total.read_failures,
      (unsigned long)total.partitions,
      (unsigned long)total.disk_stalls, (unsigned long)total.silent_stalls,
      (unsigned long)total.membership_changes, (unsigned long)total.driven_changes,
      (unsigned long)total.strikes, (unsigned long)total.removals_told,
      (unsigned long)total.transfers, (unsigned long)total.pauses,
      (unsigned long)total.long_pauses, (unsigned long)total.resumed_messages,
      (unsigned long)total.tail_entries, (unsigned long)total.snapshots_sent,
      (unsigned long)total.acked_writes, (unsigned long)total.acked_reads,
      (unsigned long)total.unknown_outcomes, (unsigned long)total.messages);
  return failed == 0 ? 0 : 1;
}
