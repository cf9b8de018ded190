#!/usr/bin/env bash
# An interrupted raft_bench (Ctrl-C, SIGTERM) stops its members and removes its data
# directory, and exits with 128 + the signal as a shell reports it. It used to leave the
# directory in TMPDIR after every interrupted run.
#
#   interrupt_test.sh path/to/raft_bench
set -euo pipefail
# Job control: a background job keeps SIGINT's default action, as a command run from a
# terminal does (without it, bash starts background jobs with SIGINT ignored).
set -m
bin="$1"
fail() { echo "FAIL: $*" >&2; exit 1; }

for sig in INT TERM; do
  tmp="$TEST_TMPDIR/$sig"
  mkdir -p "$tmp"
  fifo="$TEST_TMPDIR/$sig.stderr"
  mkfifo "$fifo"
  TMPDIR="$tmp" "$bin" --nodes 3 --clients 1 --seconds 600 >/dev/null 2>"$fifo" &
  pid=$!
  exec 3<"$fifo"
  started=0
  # The driver says when the load starts (a leader was elected): the members are all up.
  while IFS= read -r -t 120 line <&3; do
    echo "$line" >&2
    case "$line" in *" leads; "*) started=1; break ;; esac
  done
  [ "$started" = 1 ] || { kill -KILL "$pid" 2>/dev/null || true; fail "raft_bench never started"; }
  members=$(cat /proc/"$pid"/task/*/children)
  [ "$(echo $members | wc -w)" = 3 ] || fail "expected 3 member processes, found: $members"
  [ -n "$(ls -A "$tmp")" ] || fail "no data directory in $tmp while running"
  kill -"$sig" "$pid"
  cat <&3 >&2 &  # the rest of its stderr, so that it never blocks writing it
  drain=$!
  # A bound, not a synchronisation: a driver that ignored the signal fails the test here.
  (sleep 60; kill -KILL "$pid" 2>/dev/null) &
  watchdog=$!
  rc=0
  wait "$pid" || rc=$?
  kill "$watchdog" 2>/dev/null || true
  wait "$drain" || true
  exec 3<&-
  want=$((128 + $(kill -l "$sig")))
  [ "$rc" = "$want" ] || fail "SIG$sig: exit status $rc, expected $want"
  left=$(ls -A "$tmp")
  [ -z "$left" ] || fail "SIG$sig: left behind in TMPDIR: $left"
  for m in $members; do
    [ ! -e /proc/"$m" ] || fail "SIG$sig: member process $m still there"
  done
  echo "SIG$sig: exit $rc, members $members gone, nothing left in TMPDIR" >&2
done
echo PASS
