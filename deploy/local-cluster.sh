#!/usr/bin/env bash
# A Shoal cluster on this machine: every node a real swarmd in its own network namespace, with
# its own address on a bridge, joined with real tokens. Needs root (namespaces, veth pairs).
#
#   deploy/local-cluster.sh up [--managers 3] [--workers 2] [--executor process|sim]
#   deploy/local-cluster.sh env           # export lines pointing swarmctl at the cluster
#   deploy/local-cluster.sh status [--json]
#   deploy/local-cluster.sh down          # stops everything it started, by PID; removes it all
#   deploy/local-cluster.sh demo          # the README's main job: packages, build, up (3 + 2),
#                                         # a service with 5 replicas, and `swarmctl service ps`
#
# Everything lives under $SHOAL_LOCAL_DIR (default /tmp/shoal-local): per node its state dir,
# log, control socket and PID; the operator certificate; the binaries it runs. Addresses are
# 10.77.0.0/24 on the bridge shoal-br0 (the host is 10.77.0.1); namespaces are shoal-<node>.
set -euo pipefail
cd "$(dirname "$0")/.."

DIR="${SHOAL_LOCAL_DIR:-/tmp/shoal-local}"
BRIDGE=shoal-br0
NET=10.77.0
PORT=4242

die() { echo "local-cluster: $*" >&2; exit 1; }
need_root() { [ "$(id -u)" = 0 ] || die "needs root (network namespaces); run it with sudo"; }

# The nodes of a running cluster, one "name addr" per line.
nodes() { [ -f "$DIR/nodes" ] && cat "$DIR/nodes" || true; }

swarmctl_on() {  # swarmctl through node $1's socket
  local name="$1"; shift
  "$DIR/bin/swarmctl" --socket "$DIR/$name/swarmd.sock" "$@"
}

start_node() {  # name addr executor
  local name="$1" addr="$2" executor="$3" ns="shoal-$1"
  mkdir -p "$DIR/$name"
  ip netns add "$ns"
  ip link add "vs-$name" type veth peer name eth0 netns "$ns"
  ip link set "vs-$name" master "$BRIDGE" up
  ip -n "$ns" addr add "$addr/24" dev eth0
  ip -n "$ns" link set eth0 up
  ip -n "$ns" link set lo up
  ip -n "$ns" route add default via "$NET.1"
  ip netns exec "$ns" setsid "$DIR/bin/swarmd" \
    --state-dir "$DIR/$name/state" \
    --listen-addr "$addr:$PORT" --advertise-addr "$addr:$PORT" \
    --hostname "$name" --executor "$executor" \
    --control-socket "$DIR/$name/swarmd.sock" \
    >"$DIR/$name/swarmd.log" 2>&1 </dev/null &
  echo $! >"$DIR/$name/pid"
  echo "$name $addr" >>"$DIR/nodes"
  # Ready once its socket answers (bounded).
  for _ in $(seq 1 300); do
    if swarmctl_on "$name" info >/dev/null 2>&1; then return 0; fi
    kill -0 "$(cat "$DIR/$name/pid")" 2>/dev/null || { tail -20 "$DIR/$name/swarmd.log" >&2; die "swarmd of $name exited"; }
    sleep 0.1
  done
  die "swarmd of $name did not open its socket (see $DIR/$name/swarmd.log)"
}

cmd_up() {
  local managers=3 workers=2 executor=process
  while [ $# -gt 0 ]; do
    case "$1" in
      --managers) managers="$2"; shift 2 ;;
      --workers) workers="$2"; shift 2 ;;
      --executor) executor="$2"; shift 2 ;;
      *) die "up: unknown argument $1 (use --managers N, --workers N, --executor process|sim)" ;;
    esac
  done
  [[ "$managers" =~ ^[1-9][0-9]*$ ]] || die "--managers $managers: not a positive number"
  [[ "$workers" =~ ^[0-9]+$ ]] || die "--workers $workers: not a number"
  case "$executor" in process|sim) ;; *) die "--executor $executor: not process or sim (oci comes later)" ;; esac
  need_root
  [ -f "$DIR/nodes" ] && die "a cluster is up already in $DIR: run '$0 down' first"

  bazel build //node:swarmd //cli:swarmctl >&2
  mkdir -p "$DIR/bin"
  cp -f bazel-bin/node/swarmd bazel-bin/cli/swarmctl "$DIR/bin/"
  : >"$DIR/nodes"

  ip link add "$BRIDGE" type bridge
  ip addr add "$NET.1/24" dev "$BRIDGE"
  ip link set "$BRIDGE" up

  local i n=10 first="" addr
  for i in $(seq 1 "$managers"); do
    n=$((n + 1)); addr="$NET.$n"
    start_node "manager$i" "$addr" "$executor"
    if [ -z "$first" ]; then
      first="$addr:$PORT"
      swarmctl_on manager1 init --advertise-addr "$first" --listen-addr "$first" >&2
      swarmctl_on manager1 ca issue-operator --out "$DIR/operator" >&2
    else
      swarmctl_on "manager$i" join --token "$(swarmctl_on manager1 join-token -q manager)" \
        --advertise-addr "$addr:$PORT" --listen-addr "$addr:$PORT" "$first" >&2
    fi
  done
  for i in $(seq 1 "$workers"); do
    n=$((n + 1)); addr="$NET.$n"
    start_node "worker$i" "$addr" "$executor"
    swarmctl_on "worker$i" join --token "$(swarmctl_on manager1 join-token -q worker)" \
      --advertise-addr "$addr:$PORT" "$first" >&2
  done
  echo "local-cluster: $managers managers and $workers workers are up; run: eval \"\$($0 env)\"" >&2
}

cmd_env() {
  [ -f "$DIR/nodes" ] || die "no cluster is up (run '$0 up')"
  local hosts
  hosts=$(awk '$1 ~ /^manager/ {printf "%s%s:'"$PORT"'", sep, $2; sep=","}' "$DIR/nodes")
  echo "export SWARMCTL_HOST=$hosts"
  echo "export SWARMCTL_TLS_DIR=$DIR/operator"
  echo "export PATH=$DIR/bin:\$PATH"
}

cmd_status() {
  local json=0
  [ "${1:-}" = "--json" ] && json=1
  [ -f "$DIR/nodes" ] || { [ $json = 1 ] && echo "[]" || echo "no cluster is up"; return 0; }
  local sep="" name addr pid alive role
  [ $json = 1 ] && echo "["
  while read -r name addr; do
    pid=$(cat "$DIR/$name/pid" 2>/dev/null || echo 0)
    alive=false; kill -0 "$pid" 2>/dev/null && alive=true
    case "$name" in manager*) role=manager ;; *) role=worker ;; esac
    if [ $json = 1 ]; then
      printf '%s  {"name": "%s", "role": "%s", "address": "%s:%s", "namespace": "shoal-%s", "pid": %s, "running": %s}' \
        "$sep" "$name" "$role" "$addr" "$PORT" "$name" "$pid" "$alive"
      sep=$',\n'
    else
      printf '%-10s %-8s %-16s shoal-%-10s pid %-8s %s\n' "$name" "$role" "$addr:$PORT" "$name" "$pid" \
        "$([ $alive = true ] && echo running || echo stopped)"
    fi
  done < <(nodes)
  [ $json = 1 ] && printf '\n]\n'
  return 0
}

# Kills $1 (a PID) and waits for it: TERM, then KILL after $2 seconds.
stop_pid() {
  local pid="$1" grace="$2"
  kill -0 "$pid" 2>/dev/null || return 0
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 1 $((grace * 10))); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.1; done
  kill -KILL "$pid" 2>/dev/null || true
}

cmd_down() {
  need_root
  local name addr task pid start sup
  while read -r name addr; do
    [ -f "$DIR/$name/pid" ] && stop_pid "$(cat "$DIR/$name/pid")" 10
    # The tasks the process executor started for it, by the PIDs in their directories.
    for task in "$DIR/$name"/state/tasks/*/pid; do
      [ -f "$task" ] || continue
      read -r pid start sup _ < <(tr '\n' ' ' <"$task") || true
      [ -n "${pid:-}" ] && kill -KILL -- "-$pid" 2>/dev/null || true
      [ -n "${sup:-}" ] && kill -KILL "$sup" 2>/dev/null || true
    done
    ip netns del "shoal-$name" 2>/dev/null || true
    ip link del "vs-$name" 2>/dev/null || true
  done < <(nodes)
  ip link del "$BRIDGE" 2>/dev/null || true
  # Task cgroups left by a node that was killed (empty once their processes are gone).
  if [ -d /sys/fs/cgroup/shoal ]; then
    find /sys/fs/cgroup/shoal -mindepth 1 -depth -type d -exec rmdir {} \; 2>/dev/null || true
  fi
  rm -rf "$DIR"
  echo "local-cluster: down" >&2
}

cmd_demo() {
  need_root
  deploy/setup.sh >&2
  [ -f "$DIR/nodes" ] || cmd_up --managers 3 --workers 2 --executor process
  eval "$(cmd_env)"
  swarmctl service create --name web --replicas 5 busybox \
    /bin/sh -c 'while true; do echo "hello from $SHOAL_TASK_ID"; sleep 5; done'
  swarmctl service ps web
  echo >&2
  echo "local-cluster: try: eval \"\$($0 env)\"; swarmctl node ls; $0 down" >&2
}

case "${1:-}" in
  up) shift; cmd_up "$@" ;;
  demo) cmd_demo ;;
  env) cmd_env ;;
  status) shift; cmd_status "$@" ;;
  down) cmd_down ;;
  *) die "usage: $0 up [--managers N] [--workers N] [--executor process|sim] | env | status [--json] | down | demo" ;;
esac
