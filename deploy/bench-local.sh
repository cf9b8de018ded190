#!/usr/bin/env bash
# Benchmark: time from `swarmctl service create --replicas N` to N tasks running, on the local
# cluster (3 managers + 2 workers, each in its own network namespace) with the process
# executor, for N = 10, 100, 1000 (or the sizes given). swarmctl waits until the service has
# converged, so its run time is the figure. Needs root; brings the cluster up and down itself.
#
#   sudo deploy/bench-local.sh [N ...]
set -euo pipefail
cd "$(dirname "$0")/.."
sizes=("$@")
[ ${#sizes[@]} -gt 0 ] || sizes=(10 100 1000)
for n in "${sizes[@]}"; do
  [[ "$n" =~ ^[1-9][0-9]*$ ]] || { echo "bench-local: $n is not a positive number" >&2; exit 2; }
done
deploy/local-cluster.sh up --managers 3 --workers 2 --executor process >/dev/null
trap 'deploy/local-cluster.sh down >/dev/null 2>&1' EXIT
eval "$(deploy/local-cluster.sh env)"
for n in "${sizes[@]}"; do
  start=$(date +%s%N)
  swarmctl service create --name "bench$n" --replicas "$n" busybox sleep 100000 >/dev/null
  end=$(date +%s%N)
  printf 'create -> %d running: %d ms\n' "$n" $(( (end - start) / 1000000 ))
  swarmctl service rm "bench$n" >/dev/null
done
