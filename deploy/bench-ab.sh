#!/usr/bin/env bash
# Two or more builds of the Raft benchmark against each other, alternating, so that a change's
# effect can be told from this machine's noise (issue #3: single runs of one binary ranged from
# 3,300 to 7,600 writes/s at 64 clients in one morning).
#
#   deploy/bench-ab.sh [--clients C] [--rounds R] [--seconds T] BINARY BINARY...
#
# Each BINARY is a raft_bench built with -c opt, e.g. for a revision:
#   git worktree add /tmp/base REV && (cd /tmp/base && bazel build -c opt //raft:bench &&
#     cp "$(bazel info -c opt bazel-bin)/raft/bench/raft_bench" /tmp/bench-base && bazel shutdown)
#   git worktree remove --force /tmp/base
# Every round runs every binary once, the order rotating from round to round. At the end, per
# binary: the medians (throughput, p50, p99 and, when the binary reports it, CPU per proposal),
# each round's throughput, and how many rounds it beat the first binary in (paired by round).
# Everything but that summary goes to stderr. Each run stops the members it starts.
# raft_bench built before 2026-12-04 drives its clients with a thread each; later builds use
# asynchronous clients unless given --client-api sync, which the older ones do not know: an A/B
# across that date compares load generators as well as builds (see raft/bench/README.md).
set -euo pipefail

clients=64
rounds=6
seconds=5
usage='usage: deploy/bench-ab.sh [--clients C] [--rounds R] [--seconds T] BINARY BINARY...'
binaries=()
while [ $# -gt 0 ]; do
  case "$1" in
    --clients) clients="${2:?$usage}"; shift 2 ;;
    --rounds) rounds="${2:?$usage}"; shift 2 ;;
    --seconds) seconds="${2:?$usage}"; shift 2 ;;
    -h|--help) echo "$usage"; exit 0 ;;
    -*) echo "bench-ab: unknown option $1" >&2; echo "$usage" >&2; exit 2 ;;
    *) binaries+=("$1"); shift ;;
  esac
done
if [ "${#binaries[@]}" -lt 2 ]; then
  echo "bench-ab: give at least two benchmark binaries" >&2
  echo "$usage" >&2
  exit 2
fi
for b in "${binaries[@]}"; do
  if [ ! -x "$b" ]; then
    echo "bench-ab: $b is not an executable file" >&2
    exit 2
  fi
done

results="$(mktemp "${TMPDIR:-/tmp}/shoal-bench-ab.XXXXXX")"
trap 'rm -f "$results"' EXIT
n=${#binaries[@]}
for round in $(seq 1 "$rounds"); do
  for k in $(seq 0 $((n - 1))); do
    i=$(( (k + round) % n ))
    echo "bench-ab: round $round/$rounds, ${binaries[$i]}" >&2
    line="$("${binaries[$i]}" --nodes 3 --clients "$clients" --seconds "$seconds" 2>/dev/null |
            tail -n 1)" || true
    case "$line" in
      "{"*) echo "$i $round $line" >>"$results" ;;
      *) echo "bench-ab: ${binaries[$i]} printed no result in round $round" >&2 ;;
    esac
  done
done

python3 - "$results" "${binaries[@]}" <<'EOF'
import json, statistics, sys

names = sys.argv[2:]
runs = {}  # binary index -> {round: result}
for line in open(sys.argv[1]):
    i, rnd, text = line.split(" ", 2)
    runs.setdefault(int(i), {})[int(rnd)] = json.loads(text)
base = runs.get(0, {})
for i, name in enumerate(names):
    rs = runs.get(i, {})
    if not rs:
        print("%s: no result" % name)
        continue
    med = lambda k: statistics.median(r.get(k, 0) for r in rs.values())
    wins = sum(1 for rnd, r in rs.items()
               if i > 0 and rnd in base and r["throughput"] > base[rnd]["throughput"])
    cpu = ""
    if "cpu_us_per_op_leader" in next(iter(rs.values())):
        cpu = " cpu_us/op leader %.1f followers %.1f clients %.1f" % (
            med("cpu_us_per_op_leader"), med("cpu_us_per_op_followers"),
            med("cpu_us_per_op_clients"))
    print("%s: %.0f/s p50 %.3f ms p99 %.3f ms%s; rounds %s%s" % (
        name, med("throughput"), med("p50_ms"), med("p99_ms"), cpu,
        " ".join("%.0f" % rs[k]["throughput"] for k in sorted(rs)),
        "; faster than %s in %d of %d rounds" % (names[0], wins, len(rs)) if i > 0 else ""))
EOF
