#!/usr/bin/env bash
# Shoal's Raft against etcd 3.4 in one run of the machine (issue #3): the same load generator,
# the same value size and concurrency, the two systems alternating so that both see the same
# disk and the same neighbours.
#
#   deploy/bench-raft.sh [--rounds R] [--clients "1 64"] [--seconds T] [--value-bytes N]
#                        [--client-api async|sync] [--with-floor]
#
# For each round and each client count it runs deploy/bench-etcd.sh and //raft:bench, etcd
# first in odd rounds and Shoal first in even ones, keeps every JSON line in a results file,
# and ends with a table of medians and ratios and one JSON line per client count on stdout:
#   {"clients":64,"client_api":"async","rounds":3,"etcd_throughput":...,"shoal_throughput":...,
#    "throughput_ratio":...,"etcd_p50_ms":...,"shoal_p50_ms":...,"etcd_p99_ms":...,"shoal_p99_ms":...,
#    "etcd_cpu_us_per_op":...,"shoal_cpu_us_per_op":...,"cpu_ratio":...}
# CPU per op is the median over the rounds of members plus clients (user + system time per
# write, from /proc); cpu_ratio = etcd's / Shoal's. When the machine is CPU-bound (64 clients
# here) it predicts the throughput ratio, and it varies far less with the neighbours' load.
# --with-floor adds a third run to every round (first in odd rounds, last in even ones),
# raft_bench --answer-at-once (the leader answers each call as it arrives, no Raft), and "floor_throughput", "floor_cpu_us_per_op" and
# "floor_ratio" (the floor's throughput over etcd's): the ceiling the benchmark's gRPC calls
# set on this host for any Raft behind them.
# Everything else goes to stderr. Both sides stop every process they start (by PID).
# SHOAL_BENCH_RAFT_BIN / SHOAL_BENCH_ETCD (environment): see below.
set -euo pipefail
cd "$(dirname "$0")/.."

rounds=3
clients_list="1 64"
seconds=10
value_bytes=256
client_api=async
with_floor=0
usage='usage: deploy/bench-raft.sh [--rounds R] [--clients "1 64"] [--seconds T] [--value-bytes N] [--client-api async|sync] [--with-floor]'
while [ $# -gt 0 ]; do
  case "$1" in
    --rounds) rounds="${2:?$usage}"; shift 2 ;;
    --clients) clients_list="${2:?$usage}"; shift 2 ;;
    --seconds) seconds="${2:?$usage}"; shift 2 ;;
    --value-bytes) value_bytes="${2:?$usage}"; shift 2 ;;
    --client-api) client_api="${2:?$usage}"; shift 2 ;;
    --with-floor) with_floor=1; shift ;;
    -h|--help) echo "$usage"; exit 0 ;;
    *) echo "bench-raft: unknown argument $1" >&2; echo "$usage" >&2; exit 2 ;;
  esac
done

log() { echo "bench-raft: $*" >&2; }

results="$(mktemp "${TMPDIR:-/tmp}/shoal-bench-raft.XXXXXX")"
log "results in $results"
# SHOAL_BENCH_RAFT_BIN and SHOAL_BENCH_ETCD: a raft_bench binary and an etcd benchmark command
# to use instead of building them (deploy/bench_raft_test.sh gives fakes; an A/B of a past
# build can give its binary).
shoal_bin="${SHOAL_BENCH_RAFT_BIN:-}"
etcd_cmd="${SHOAL_BENCH_ETCD:-deploy/bench-etcd.sh}"
if [ -z "$shoal_bin" ]; then
  bazel build -c opt //raft:bench //raft:bench_etcd >&2
  shoal_bin="$(bazel info -c opt bazel-bin 2>/dev/null)/raft/bench/raft_bench"
fi

# record WHAT COMMAND...: runs one benchmark and keeps its JSON line; a run that prints none
# (a member that did not start, etcd missing) is reported and left out, not the whole run.
record() {
  local what="$1" line
  shift
  line="$("$@" | tail -n 1)" || true
  case "$line" in
    "{"*) echo "$line" >>"$results" ;;
    *) log "$what printed no result in round $round at $c client(s)" ;;
  esac
}
run_etcd() {
  record etcd "$etcd_cmd" --clients "$1" --seconds "$seconds" --value-bytes "$value_bytes" \
    --client-api "$client_api"
}
run_shoal() {
  record shoal "$shoal_bin" --nodes 3 --clients "$1" --seconds "$seconds" \
    --value-bytes "$value_bytes" --client-api "$client_api"
}
run_floor() {
  record floor "$shoal_bin" --nodes 3 --clients "$1" --seconds "$seconds" \
    --value-bytes "$value_bytes" --client-api "$client_api" --answer-at-once
}

for round in $(seq 1 "$rounds"); do
  for c in $clients_list; do
    log "round $round/$rounds, $c client(s)"
    # The floor goes first in odd rounds and last in even ones: no run always gets the
    # quieter minute.
    if [ "$with_floor" = 1 ] && [ $((round % 2)) -eq 1 ]; then run_floor "$c"; fi
    if [ $((round % 2)) -eq 1 ]; then
      run_etcd "$c"
      run_shoal "$c"
    else
      run_shoal "$c"
      run_etcd "$c"
    fi
    if [ "$with_floor" = 1 ]; then
      if [ $((round % 2)) -eq 0 ]; then run_floor "$c"; fi
      tail -n 3 "$results" >&2
    else
      tail -n 2 "$results" >&2
    fi
  done
done

python3 - "$results" "$client_api" <<'EOF'
import json, statistics, sys
client_api = sys.argv[2]

runs = [json.loads(line) for line in open(sys.argv[1]) if line.strip()]
# A failed call is not in the latencies; a run with failures is not like for like.
for r in runs:
    if r.get("errors", 0) > 0:
        print("warning: %s at %d client(s) had %d failed calls in one round: its figures leave "
              "them out" % (r["system"], r["clients"], r["errors"]), file=sys.stderr)
by = {}
compared = 0
for r in runs:
    # raft_bench --answer-at-once: Shoal's members answering without Raft, the "floor"
    system = "floor" if r.get("mode") == "answer-at-once" else r["system"]
    by.setdefault((r["clients"], system), []).append(r)
print("%-8s %-6s %12s %10s %10s   (median of %s)" % ("clients", "system", "writes/s", "p50 ms",
      "p99 ms", "rounds"), file=sys.stderr)
for clients in sorted({c for c, _ in by}):
    med = {}
    for system in ("etcd", "shoal", "floor"):
        rs = by.get((clients, system), [])
        if not rs:
            continue
        med[system] = {k: statistics.median(r[k] for r in rs)
                       for k in ("throughput", "p50_ms", "p99_ms")}
        cpu = [r["cpu_us_per_op_leader"] + r["cpu_us_per_op_followers"] +
               r["cpu_us_per_op_clients"] for r in rs if "cpu_us_per_op_leader" in r]
        if cpu:
            med[system]["cpu"] = statistics.median(cpu)
        print("%-8d %-6s %12.0f %10.3f %10.3f   %s" % (clients, system, med[system]["throughput"],
              med[system]["p50_ms"], med[system]["p99_ms"],
              " ".join("%.0f" % r["throughput"] for r in rs)), file=sys.stderr)
    for system in ("etcd", "shoal", "floor"):
        if "cpu" in med.get(system, {}):
            rs = by[(clients, system)]
            print("%-8d %-6s CPU per write %.0f us (members + clients; leader %.0f, followers %.0f,"
                  " clients %.0f)" % (clients, system, med[system]["cpu"],
                  statistics.median(r["cpu_us_per_op_leader"] for r in rs),
                  statistics.median(r["cpu_us_per_op_followers"] for r in rs),
                  statistics.median(r["cpu_us_per_op_clients"] for r in rs)), file=sys.stderr)
    if "etcd" in med and "shoal" in med:
        e, s = med["etcd"], med["shoal"]
        cpu = {}
        if "cpu" in e and "cpu" in s:
            cpu = {"etcd_cpu_us_per_op": round(e["cpu"], 1), "shoal_cpu_us_per_op": round(s["cpu"], 1),
                   "cpu_ratio": round(e["cpu"] / s["cpu"], 2)}
        floor = {}
        if "floor" in med:
            f = med["floor"]
            floor = {"floor_throughput": round(f["throughput"], 1),
                     "floor_ratio": round(f["throughput"] / e["throughput"], 2)}
            if "cpu" in f:
                floor["floor_cpu_us_per_op"] = round(f["cpu"], 1)
        print(json.dumps({
            "clients": clients, "client_api": client_api, "rounds": len(by[(clients, "shoal")]),
            "etcd_throughput": round(e["throughput"], 1),
            "shoal_throughput": round(s["throughput"], 1),
            "throughput_ratio": round(s["throughput"] / e["throughput"], 2),
            "etcd_p50_ms": e["p50_ms"], "shoal_p50_ms": s["p50_ms"],
            "etcd_p99_ms": e["p99_ms"], "shoal_p99_ms": s["p99_ms"], **cpu, **floor}))
        compared += 1
if compared == 0:
    print("bench-raft: no client count has results from both systems: nothing to compare",
          file=sys.stderr)
    sys.exit(1)
EOF
