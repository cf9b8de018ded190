#!/usr/bin/env bash
# Checks deploy/bench-raft.sh with a fake raft_bench and a fake etcd benchmark: the order of the
# runs in each round, the arguments passed on, the medians, ratios and CPU figures of the JSON
# summary, the floor, a run that prints no result, failed calls, and bad arguments.
set -euo pipefail

dir="${TEST_TMPDIR:-$(mktemp -d)}/bench-raft"
rm -rf "$dir"
mkdir -p "$dir"
export TMPDIR="$dir"
fail() { echo "FAIL: $*" >&2; exit 1; }

# A fake benchmark: logs its kind and arguments, and prints the JSON line given for its n-th
# call of that kind in $dir/KIND.values ("throughput p50 p99 cpu_leader errors"), or nothing
# (and fails) for a line "none". Kind: etcd, shoal, or floor (shoal with --answer-at-once).
cat > "$dir/fake" <<'FAKE'
#!/usr/bin/env bash
dir="$(dirname "$0")"
system="$(basename "$0")"
kind="$system"
clients=0
while [ $# -gt 0 ]; do
  case "$1" in
    --answer-at-once) kind=floor; shift ;;
    --clients) clients="$2"; shift 2 ;;
    *) shift ;;
  esac
done
echo "$kind $clients" >>"$dir/calls"
n=$(grep -c "^$kind $clients\$" "$dir/calls")
read -r tp p50 p99 cpu errors < <(sed -n "${n}p" "$dir/$kind.$clients.values")
echo "member 1: follower" >&2
if [ "$tp" = none ]; then echo "cannot start" >&2; exit 1; fi
mode=raft
[ "$kind" = floor ] && mode=answer-at-once
echo "{\"system\":\"$system\",\"mode\":\"$mode\",\"clients\":$clients,\"throughput\":$tp,\"p50_ms\":$p50,\"p99_ms\":$p99,\"cpu_us_per_op_leader\":$cpu,\"cpu_us_per_op_followers\":20,\"cpu_us_per_op_clients\":10,\"errors\":$errors}"
FAKE
chmod +x "$dir/fake"
cp "$dir/fake" "$dir/etcd"
cp "$dir/fake" "$dir/shoal"
# Every argument as given, for the check that they are passed on.
cat > "$dir/args-etcd" <<FAKE
#!/usr/bin/env bash
echo "etcd-args \$*" >>"$dir/args"
exec "$dir/etcd" "\$@"
FAKE
cat > "$dir/args-shoal" <<FAKE
#!/usr/bin/env bash
echo "shoal-args \$*" >>"$dir/args"
exec "$dir/shoal" "\$@"
FAKE
chmod +x "$dir/args-etcd" "$dir/args-shoal"

printf '%s\n' "100 5 10 70 0" "200 4 9 80 0" "150 6 12 90 0" >"$dir/etcd.4.values"
printf '%s\n' "300 2 5 30 0" "500 1 4 40 0" "100 3 8 50 0" >"$dir/shoal.4.values"
printf '%s\n' "900 1 2 10 0" "none" "700 1 2 10 0" >"$dir/floor.4.values"
printf '%s\n' "10 1.5 3 300 0" "none" "12 1.4 3 310 0" >"$dir/etcd.1.values"
printf '%s\n' "11 0.9 2 200 2" "13 0.8 2 210 0" "12 0.7 2 220 0" >"$dir/shoal.1.values"
printf '%s\n' "50 0.1 1 10 0" "60 0.1 1 10 0" "55 0.1 1 10 0" >"$dir/floor.1.values"

out="$(SHOAL_BENCH_RAFT_BIN="$dir/args-shoal" SHOAL_BENCH_ETCD="$dir/args-etcd" \
       deploy/bench-raft.sh --rounds 3 --clients "1 4" --seconds 2 --value-bytes 64 \
       --client-api sync --with-floor 2>"$dir/stderr")" || {
  cat "$dir/stderr" >&2
  fail "bench-raft.sh failed"
}
echo "$out"
cat "$dir/stderr"

# The order: the floor first in odd rounds and last in even ones, etcd before Shoal in odd
# rounds and after it in even ones.
order="$(cut -d' ' -f1,2 "$dir/calls" | tr '\n' ',')"
want="floor 1,etcd 1,shoal 1,floor 4,etcd 4,shoal 4,shoal 1,etcd 1,floor 1,shoal 4,etcd 4,floor 4,"
want+="floor 1,etcd 1,shoal 1,floor 4,etcd 4,shoal 4,"
[ "$order" = "$want" ] || fail "order of the runs: $order"

# Arguments passed on to both.
[ "$(grep -c -- '^etcd-args --clients [14] --seconds 2 --value-bytes 64 --client-api sync$' \
      "$dir/args")" = 6 ] || fail "etcd's arguments"
[ "$(grep -c -- '^shoal-args --nodes 3 --clients [14] --seconds 2 --value-bytes 64 --client-api sync$' \
      "$dir/args")" = 6 ] || fail "Shoal's arguments"
[ "$(grep -c -- '^shoal-args .* --answer-at-once$' "$dir/args")" = 6 ] || fail "the floor's"

line4="$(grep '"clients": 4,' <<<"$out")" || fail "no summary for 4 clients"
line1="$(grep '"clients": 1,' <<<"$out")" || fail "no summary for 1 client"
field() { python3 -c 'import json,sys; print(json.loads(sys.argv[1])[sys.argv[2]])' "$1" "$2"; }
expect() {  # LINE FIELD VALUE
  local got
  got="$(field "$1" "$2")"
  [ "$got" = "$3" ] || fail "$2: $got, expected $3 in $1"
}
# 4 clients: medians etcd 150, Shoal 300 (ratio 2.0); floor of the two rounds that gave one, 800.
expect "$line4" etcd_throughput 150
expect "$line4" shoal_throughput 300
expect "$line4" throughput_ratio 2.0
expect "$line4" etcd_p50_ms 5
expect "$line4" shoal_p99_ms 5
expect "$line4" floor_throughput 800.0
expect "$line4" floor_ratio 5.33
# CPU per write: median over rounds of leader + followers + clients (80+30 etcd, 40+30 Shoal).
expect "$line4" etcd_cpu_us_per_op 110
expect "$line4" shoal_cpu_us_per_op 70
expect "$line4" cpu_ratio 1.57
expect "$line4" rounds 3
expect "$line4" client_api sync
# 1 client: etcd printed nothing in round 2, so its medians are of two rounds.
expect "$line1" etcd_throughput 11.0
expect "$line1" etcd_p50_ms 1.45
expect "$line1" shoal_p50_ms 0.8
grep -q 'etcd printed no result in round 2 at 1 client(s)' "$dir/stderr" || fail "missing run not reported"
grep -q 'floor printed no result in round 2 at 4 client(s)' "$dir/stderr" || fail "missing floor not reported"
grep -q 'warning: shoal at 1 client(s) had 2 failed calls' "$dir/stderr" || fail "failed calls not reported"

# Nothing from etcd at all: no comparison, and the script says so and fails.
printf '%s\n' none none none > "$dir/etcd.4.values"
rm -f "$dir/calls"
if SHOAL_BENCH_RAFT_BIN="$dir/shoal" SHOAL_BENCH_ETCD="$dir/etcd" \
   deploy/bench-raft.sh --rounds 1 --clients 4 --seconds 1 >"$dir/out2" 2>"$dir/stderr2"; then
  fail "a run with no etcd results succeeded"
fi
grep -q 'nothing to compare' "$dir/stderr2" || fail "no word on the missing comparison"

# A bad argument: usage, exit 2, nothing run.
rm -f "$dir/calls"
set +e
deploy/bench-raft.sh --round 3 >/dev/null 2>"$dir/stderr3"
code=$?
set -e
[ "$code" = 2 ] || fail "unknown argument exit code $code"
grep -q 'unknown argument --round' "$dir/stderr3" || fail "unknown argument not named"
[ ! -e "$dir/calls" ] || fail "a benchmark ran after a bad argument"
echo PASS
