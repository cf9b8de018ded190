// Puts the calling thread under Linux's SCHED_BATCH policy: the scheduler treats it as
// throughput-bound, so a thread of this kind that wakes up does not preempt the one running
// (CFS wakeup preemption) but waits for the next scheduling point, as busy server threads
// that hand work to each other should. It keeps its nice value and its share of the CPU; no
// privilege is needed.
//
// Why: on this project's 2-core hosts a Raft leader's network thread was switched out
// involuntarily (preempted) about 3,300 times a second at 64 clients, each a context switch.
// With the members' threads under SCHED_BATCH the followers' CPU per write fell by a quarter
// and throughput rose 16% (2026-12-04 A/B, raft/README.md; the whole process under it gained
// only 9%). Latency-bound threads (a ticker) stay as they are.
//
//   std::thread([] { shoal::TryRunAsBatchThread("raft"); ... });
#pragma once

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace shoal {

// Best effort: an error (a kernel without the policy, a seccomp filter refusing
// sched_setscheduler) leaves the thread as it was and says why.
absl::Status RunAsBatchThread();

// RunAsBatchThread, with a failure logged (as a warning from `component`) once a process.
void TryRunAsBatchThread(absl::string_view component);

// Whether the calling thread runs under SCHED_BATCH.
bool IsBatchThread();

}  // namespace shoal
