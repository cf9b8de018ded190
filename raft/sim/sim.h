// Deterministic simulation of a Raft cluster under faults, driven by one seed.
//
// Several members (MemoryLogStore as their disk, a key-value state machine on top) run in one
// thread on a virtual clock. A seeded scheduler delivers messages late, out of order, twice or
// never; partitions and heals the network; crashes members (losing whatever a Ready had not yet
// persisted, keeping what it had) and restarts them, and fails their disks' reads now and then
// (the member stops, as the node stops it, and restarts); adds and removes members (learners first)
// and transfers leadership, while clients put and get keys (gets through ReadIndex or the log).
// Half the seeds also draw, each in a third of all seeds: paused processes (no Step, Tick or
// Ready for 2-90 ticks, leaders often just after asking for a read's confirmation; messages
// and client requests wait in a bounded buffer, the overflow is lost, and the member takes
// them in one shuffled batch with duplicates when it resumes, still believing it leads);
// back-to-back membership changes (a driver proposes one right after each leader change and
// the next as soon as the leader applied it, and now and then crashes, isolates or pauses
// that leader before it commits); minority tails (a leader partitioned with a minority and
// its learners for a while, paused now and then, is given many proposals, with small message
// and in-flight limits); clients that go on asking a deposed leader that does not know it yet.
//
// After every step it checks: at most one leader per term; log matching (same index and term =>
// same entry and same previous term); leader completeness (a new leader holds every entry any
// member applied that was committed in an earlier term: a candidate whose grants waited in a
// paused process may win an old term after later ones committed more); state machine safety
// (no two members apply different entries at one index); membership safety (a member's
// membership after applying index i, installing a snapshot at i or starting with i applied is
// the cluster's membership at i, its removed members included); a member that believes it was
// removed was removed; a read served through ReadIndex is served at an index no lower than
// that of any operation (a read too) a client was answered for before asking it.
// At the end it heals everything and requires convergence, that no acknowledged write was lost,
// and that the clients' history is linearizable.
//
// The same seed always produces the same run; on failure, re-running it with `trace` prints the
// events that led there.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace shoal::raft::sim {

struct SimOptions {
  // Ticks of faults and client load, then a quiet period until the cluster converges.
  int chaos_ticks = 400;
  // The quiet period fails (a liveness bug) if the cluster has not converged by then.
  int max_quiet_ticks = 1000;
  int clients = 3;
  // Keep the last `trace_lines` events for the failure report (0 = no tracing, fastest).
  int trace_lines = 0;
};

struct SimStats {
  uint64_t ticks = 0;
  uint64_t messages = 0;
  uint64_t elections = 0;
  uint64_t crashes = 0;
  uint64_t lost_readies = 0;
  uint64_t partitions = 0;
  uint64_t read_failures = 0;  // members stopped because their storage failed a read
  uint64_t disk_stalls = 0;  // of which a follower fell silent for the stall's length
  uint64_t silent_stalls = 0;
  uint64_t membership_changes = 0;
  // Members away when they were removed that learned it from a member (MSG_REMOVED) or a
  // snapshot when they came back.
  uint64_t removals_told = 0;
  uint64_t transfers = 0;
  // Paused processes (of which longer than an election timeout), and the messages they took
  // in one batch when they resumed.
  uint64_t pauses = 0;
  uint64_t long_pauses = 0;
  uint64_t resumed_messages = 0;
  // Membership changes the driver proposed right after a leader change or the previous
  // change's apply, and leaders it struck before such a change committed.
  uint64_t driven_changes = 0;
  uint64_t strikes = 0;
  // Proposals to leaders cut off with a minority.
  uint64_t tail_entries = 0;
  uint64_t snapshots_sent = 0;
  uint64_t acked_writes = 0;
  uint64_t acked_reads = 0;
  uint64_t unknown_outcomes = 0;
  uint64_t linearizability_states = 0;
};

struct SimResult {
  uint64_t seed = 0;
  bool ok = true;
  // What failed, when !ok.
  std::string failure;
  // The last events before the failure (when tracing).
  std::vector<std::string> trace;
  SimStats stats;
};

SimResult RunSeed(uint64_t seed, const SimOptions& options = SimOptions());

}  // namespace shoal::raft::sim
