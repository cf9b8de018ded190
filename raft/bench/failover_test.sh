#!/usr/bin/env bash
# raft_bench --kill-leader-rounds: each round kills the leader, measures the time to the next
# commit, restarts the killed member, and waits until it is back and caught up before the next
# round's kill, so that each round measures one failure (before, the next kill came while the
# restarted member was still starting). At the end every acknowledged proposal is on every
# member.
#
#   failover_test.sh path/to/raft_bench
set -euo pipefail
bin="$1"
fail() { echo "FAIL: $*" >&2; exit 1; }
export TMPDIR="$TEST_TMPDIR"

"$bin" --nodes 3 --clients 1 --kill-leader-rounds 3 >"$TEST_TMPDIR/out" 2>"$TEST_TMPDIR/err" \
  || { cat "$TEST_TMPDIR/err" >&2; fail "raft_bench --kill-leader-rounds 3 failed"; }
grep -v '^20' "$TEST_TMPDIR/err" >&2 || true
line=$(tail -n 1 "$TEST_TMPDIR/out")
echo "$line"
case "$line" in *'"failover_rounds":3,'*) ;; *) fail "not 3 rounds: $line" ;; esac
case "$line" in *'"lost":0}') ;; *) fail "acknowledged proposals lost: $line" ;; esac

# The rounds in order: kill, then the same member back and caught up, before the next kill.
events=$(grep -E '^round [0-9]+: (killed member|member [0-9]+ back and caught up)' \
           "$TEST_TMPDIR/err" | sed -E 's/^round ([0-9]+): killed member ([0-9]+).*/\1 kill \2/;
                                         s/^round ([0-9]+): member ([0-9]+) back.*/\1 back \2/')
want=""
for round in 0 1 2; do
  member=$(sed -n "s/^$round kill \([0-9]*\)$/\1/p" <<<"$events")
  [ -n "$member" ] || fail "no kill in round $round: $events"
  want+="$round kill $member"$'\n'"$round back $member"$'\n'
done
[ "$events" = "${want%$'\n'}" ] ||
  fail "the next leader was killed before the restarted member was back: $events"
echo PASS
