#!/usr/bin/env bash
# raft_bench --answer-at-once measures the benchmark's gRPC calls alone: the leader answers each
# proposal as it arrives and nothing reaches Raft. The members' own reports say how many
# entries they wrote: a handful (the bootstrap and the election), far fewer than the writes the
# clients saw acknowledged; without the mode every acknowledged write is an entry on every
# member. It refuses a failover measurement, which needs Raft.
#
#   answer_at_once_test.sh path/to/raft_bench
set -euo pipefail
bin="$1"
fail() { echo "FAIL: $*" >&2; exit 1; }
export TMPDIR="$TEST_TMPDIR"

"$bin" --nodes 3 --clients 4 --seconds 1 --answer-at-once >"$TEST_TMPDIR/out" 2>"$TEST_TMPDIR/err" \
  || { cat "$TEST_TMPDIR/err" >&2; fail "raft_bench --answer-at-once failed"; }
cat "$TEST_TMPDIR/err" >&2
line=$(tail -n 1 "$TEST_TMPDIR/out")
echo "$line"
case "$line" in *'"mode":"answer-at-once"'*) ;; *) fail "no \"mode\":\"answer-at-once\" in: $line" ;; esac
# The binary's malloc is jemalloc, as etcd_bench's is (PrepareBenchmarkProcess checks both).
case "$line" in *'"allocator":"jemalloc"'*) ;; *) fail "no \"allocator\":\"jemalloc\" in: $line" ;; esac
ops=$(echo "$line" | sed -n 's/.*"ops":\([0-9]*\).*/\1/p')
[ -n "$ops" ] && [ "$ops" -ge 100 ] || fail "expected at least 100 acknowledged calls, got '$ops'"
written=$(sed -n 's/.* \([0-9]*\) entries written.*/\1/p' "$TEST_TMPDIR/err")
[ "$(echo $written | wc -w)" = 3 ] || fail "expected 3 members' reports, got: $written"
for w in $written; do
  [ "$w" -lt 10 ] || fail "a member wrote $w entries for $ops calls answered at once"
done

rc=0
"$bin" --nodes 3 --kill-leader-rounds 1 --answer-at-once >/dev/null 2>"$TEST_TMPDIR/err2" || rc=$?
[ "$rc" = 2 ] || fail "--answer-at-once with --kill-leader-rounds: exit $rc, expected 2"
grep -q "needs Raft" "$TEST_TMPDIR/err2" || fail "no reason given: $(cat "$TEST_TMPDIR/err2")"
echo PASS
