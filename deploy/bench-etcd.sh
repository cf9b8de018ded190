#!/usr/bin/env bash
# The etcd side of the Raft benchmark (issue #3): starts a 3-member etcd 3.4 cluster on
# 127.0.0.1 with etcd's default settings (the baseline), waits until it is healthy, drives
# closed-loop KV.Put on its leader with //raft:bench_etcd and prints that tool's JSON line on
# stdout. Everything else (progress, bazel, etcd's failures) goes to stderr.
#
#   deploy/bench-etcd.sh [--clients C] [--value-bytes N] [--seconds T] [--warmup-seconds W]
#                        [--client-api async|sync]
#
# Installs Debian's etcd-server with apt-get when `etcd` is missing. Members listen on client
# ports 2379, 22379, 32379 and peer ports 2380, 22380, 32380 (refuses to start if any is taken),
# keep their data in a fresh `mktemp -d` directory (on disk, not tmpfs: the writes must be
# durable), and are stopped by PID, with their directory removed, however the script ends.
set -euo pipefail
cd "$(dirname "$0")/.."

clients=1
value_bytes=256
seconds=10
warmup_seconds=1
client_api=async
usage="usage: deploy/bench-etcd.sh [--clients C] [--value-bytes N] [--seconds T] [--warmup-seconds W] [--client-api async|sync]"
while [ $# -gt 0 ]; do
  case "$1" in
    --clients) clients="${2:?$usage}"; shift 2 ;;
    --value-bytes) value_bytes="${2:?$usage}"; shift 2 ;;
    --seconds) seconds="${2:?$usage}"; shift 2 ;;
    --warmup-seconds) warmup_seconds="${2:?$usage}"; shift 2 ;;
    --client-api) client_api="${2:?$usage}"; shift 2 ;;
    -h|--help) echo "$usage"; exit 0 ;;
    *) echo "bench-etcd: unknown argument $1" >&2; echo "$usage" >&2; exit 2 ;;
  esac
done

log() { echo "bench-etcd: $*" >&2; }

names=(m1 m2 m3)
client_ports=(2379 22379 32379)
peer_ports=(2380 22380 32380)
# Seconds to wait for the cluster to elect a leader that every member agrees on.
health_timeout=60
# Seconds a member gets to exit after SIGTERM before SIGKILL.
stop_timeout=10

# --- etcd itself --------------------------------------------------------------------------
if ! command -v etcd >/dev/null 2>&1; then
  log "etcd is missing; installing Debian's etcd-server"
  sudo=""
  if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get update -q >&2
  $sudo apt-get install -y -q etcd-server >&2
fi
etcd_version="$(etcd --version 2>/dev/null | sed -n 's/^etcd Version: //p')"
log "etcd ${etcd_version:-(unknown version)} at $(command -v etcd)"
case "$etcd_version" in
  3.4.*) ;;
  *) log "warning: the baseline is etcd 3.4; this is ${etcd_version:-unknown}" ;;
esac

for port in "${client_ports[@]}" "${peer_ports[@]}"; do
  if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
    log "port $port on 127.0.0.1 is already in use (a system etcd? \`service etcd stop\`); not starting"
    exit 1
  fi
done

# --- cleanup: every member by PID, then the temp directory --------------------------------
pids=()
workdir=""
child=""
cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  local pid
  # The probe or the benchmark, if a signal interrupted the wait for it.
  if [ -n "$child" ]; then kill -TERM "$child" 2>/dev/null || true; fi
  for pid in "${pids[@]}"; do
    kill -TERM "$pid" 2>/dev/null || true
  done
  local deadline=$((SECONDS + stop_timeout))
  for pid in "${pids[@]}"; do
    while kill -0 "$pid" 2>/dev/null && [ $SECONDS -lt $deadline ]; do sleep 0.1; done
    if kill -0 "$pid" 2>/dev/null; then
      log "etcd pid $pid ignored SIGTERM for ${stop_timeout}s; killing it"
      kill -KILL "$pid" 2>/dev/null || true
    fi
    wait "$pid" 2>/dev/null || true
  done
  if [ $rc -ne 0 ] && [ -n "$workdir" ]; then
    local name
    for name in "${names[@]}"; do
      if [ -f "$workdir/$name.log" ]; then
        log "last lines of $name's log:"
        tail -n 15 "$workdir/$name.log" >&2 || true
      fi
    done
  fi
  if [ -n "$workdir" ]; then rm -rf "$workdir"; fi
  exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# Runs a command in the background and waits for it: unlike a foreground command, `wait` lets
# the INT/TERM traps run at once, and cleanup can stop the command by its PID.
run_child() {
  "$@" &
  child=$!
  local rc=0
  wait "$child" || rc=$?
  child=""
  return $rc
}

workdir="$(mktemp -d "${TMPDIR:-/tmp}/shoal-bench-etcd.XXXXXX")"
fstype="$(stat -f -c %T "$workdir")"
if [ "$fstype" = "tmpfs" ] || [ "$fstype" = "ramfs" ]; then
  log "warning: $workdir is on $fstype, where fsync costs nothing: set TMPDIR to a disk directory"
fi

# --- build the client first, so that the cluster does not idle during the build ----------
log "building //raft:bench_etcd (-c opt)"
bazel build -c opt //raft:bench_etcd >&2
bench_bin="$(bazel info -c opt bazel-bin 2>/dev/null)/raft/bench/etcd_bench"

# --- start the cluster --------------------------------------------------------------------
initial_cluster=""
for i in "${!names[@]}"; do
  initial_cluster+="${initial_cluster:+,}${names[$i]}=http://127.0.0.1:${peer_ports[$i]}"
done
endpoints=""
for i in "${!names[@]}"; do
  endpoints+="${endpoints:+,}127.0.0.1:${client_ports[$i]}"
done
# etcd reads ETCD_* variables as flags: keep the caller's out of the baseline.
unset_etcd_env=()
for var in $(compgen -e | grep '^ETCD_' || true); do unset_etcd_env+=(-u "$var"); done

for i in "${!names[@]}"; do
  name="${names[$i]}"
  env "${unset_etcd_env[@]}" etcd \
    --name "$name" \
    --data-dir "$workdir/$name" \
    --listen-client-urls "http://127.0.0.1:${client_ports[$i]}" \
    --advertise-client-urls "http://127.0.0.1:${client_ports[$i]}" \
    --listen-peer-urls "http://127.0.0.1:${peer_ports[$i]}" \
    --initial-advertise-peer-urls "http://127.0.0.1:${peer_ports[$i]}" \
    --initial-cluster "$initial_cluster" \
    --initial-cluster-token "shoal-bench-$$" \
    --initial-cluster-state new \
    >"$workdir/$name.log" 2>&1 &
  pids+=($!)
done
log "started etcd members ${names[*]} (pids ${pids[*]}) in $workdir"

# --- wait until healthy: every member answers Status and names the same leader -----------
if ! run_child "$bench_bin" --endpoints "$endpoints" --leader-only \
    --leader-timeout "$health_timeout" >"$workdir/leader" 2>"$workdir/probe.log"; then
  cat "$workdir/probe.log" >&2
  log "the cluster did not become healthy within ${health_timeout}s"
  exit 1
fi
log "cluster healthy; leader at $(cat "$workdir/leader")"

# --- the benchmark ------------------------------------------------------------------------
# The binary itself, as bench-raft.sh runs Shoal's: not under `bazel run`.
run_child "$bench_bin" \
  --endpoints "$endpoints" \
  --member-pids "$(IFS=,; echo "${pids[*]}")" \
  --clients "$clients" \
  --value-bytes "$value_bytes" \
  --seconds "$seconds" \
  --warmup-seconds "$warmup_seconds" \
  --client-api "$client_api" \
  --leader-timeout 10
