#!/usr/bin/env bash
# Checks deploy/bench-ab.sh with fake benchmark binaries: arguments, rotation, medians, the
# per-round pairing against the first binary, and a binary that prints nothing.
set -euo pipefail

dir="${TEST_TMPDIR:-$(mktemp -d)}/bench-ab"
rm -rf "$dir"
mkdir -p "$dir"
fail() { echo "FAIL: $*" >&2; exit 1; }

# fake NAME THROUGHPUTS...: prints the next throughput of its list on every call (after the
# members' chatter on stderr), and logs its name and arguments.
fake() {
  local name="$1"; shift
  cat > "$dir/$name" <<FAKE
#!/usr/bin/env bash
echo "$name \$*" >> "$dir/calls"
n=\$(grep -c "^$name " "$dir/calls")
values=($*)
echo "member 1: follower" >&2
echo '{"system":"shoal","throughput":'"\${values[\$((n - 1))]}"',"p50_ms":1.5,"p99_ms":3,"cpu_us_per_op_leader":90,"cpu_us_per_op_followers":70,"cpu_us_per_op_clients":75}'
FAKE
  chmod +x "$dir/$name"
}
fake base 100 100 100
fake better 150 150 50
cat > "$dir/broken" <<FAKE
#!/usr/bin/env bash
echo "broken \$*" >> "$dir/calls"
echo "cannot start" >&2
exit 1
FAKE
chmod +x "$dir/broken"

out="$(deploy/bench-ab.sh --clients 7 --rounds 3 --seconds 2 "$dir/base" "$dir/better" \
       "$dir/broken" 2>"$dir/stderr")"
echo "$out"

grep -q "^$dir/base: 100/s p50 1.500 ms p99 3.000 ms cpu_us/op leader 90.0" <<<"$out" ||
  fail "base summary"
grep -q "^$dir/better: 150/s .*rounds 150 150 50; faster than $dir/base in 2 of 3 rounds$" \
  <<<"$out" || fail "better: median or pairing"
grep -q "^$dir/broken: no result$" <<<"$out" || fail "broken binary not reported"
[ "$(grep -c 'printed no result' "$dir/stderr")" = 3 ] || fail "broken rounds not reported"
[ "$(grep -c -- '--nodes 3 --clients 7 --seconds 2$' "$dir/calls")" = 9 ] ||
  fail "arguments not passed on"
# The order rotates: round 1 does not start with the binary round 2 starts with.
first1="$(sed -n 1p "$dir/calls" | cut -d' ' -f1)"
first2="$(sed -n 4p "$dir/calls" | cut -d' ' -f1)"
[ "$first1" != "$first2" ] || fail "the order does not rotate ($first1 first twice)"

deploy/bench-ab.sh "$dir/base" 2>/dev/null && fail "one binary accepted"
deploy/bench-ab.sh --rounds 2 "$dir/base" "$dir/missing" 2>/dev/null && fail "missing binary accepted"
echo PASS
