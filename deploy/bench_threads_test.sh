#!/usr/bin/env bash
# Checks deploy/bench-threads.py against a fake benchmark: a driver whose member 2 (the leader
# it names) burns a core while members 1 and 3 sleep; the report must charge that core to the
# leader, per write, and name every process. And a benchmark that fails is reported as failed.
set -euo pipefail

dir="${TEST_TMPDIR:-$(mktemp -d)}/bench-threads"
rm -rf "$dir"
mkdir -p "$dir"
fail() { echo "FAIL: $*" >&2; exit 1; }

cat > "$dir/fake_bench" <<'FAKE'
#!/usr/bin/env python3
import subprocess, sys, time
seconds = float(sys.argv[sys.argv.index("--seconds") + 1])
busy = "import sys\nwhile True: pass"
idle = "import time\ntime.sleep(600)"
kids = [subprocess.Popen([sys.executable, "-c", busy if i == 2 else idle, "--member", str(i)])
        for i in (1, 2, 3)]
print("raft_bench: member 2 leads; 64 client(s)", file=sys.stderr, flush=True)
time.sleep(seconds)  # the fake's run: the report reads its processes meanwhile
for k in kids:
    k.kill()
    k.wait()
print('{"system":"shoal","throughput":1000.0}')
FAKE
chmod +x "$dir/fake_bench"

out="$(deploy/bench-threads.py --binary "$dir/fake_bench" --seconds 3 --skip 1 --window 1)"
echo "$out"
grep -q '^{"system":"shoal","throughput":1000.0}$' <<<"$out" || fail "the benchmark's JSON line"
leader_total="$(awk '$1 == "leader" && $2 == "(total)" {print $3}' <<<"$out")"
[ -n "$leader_total" ] || fail "no leader total"
# One core through the window at 1,000 writes/s: about 1,000 us per write.
awk -v v="$leader_total" 'BEGIN { exit !(v > 500 && v < 1500) }' ||
  fail "leader's CPU per write is $leader_total, not about 1,000 us"
for role in driver follower-1 follower-3; do
  total="$(awk -v r="$role" '$1 == r && $2 == "(total)" {print $3}' <<<"$out")"
  [ -n "$total" ] || fail "no total for $role"
  awk -v v="$total" 'BEGIN { exit !(v < 100) }' || fail "$role used $total us per write"
done
grep -q '^leader .*python3' <<<"$out" || fail "the leader's thread is not named"

cat > "$dir/broken_bench" <<'FAKE'
#!/usr/bin/env bash
echo "cannot start" >&2
exit 3
FAKE
chmod +x "$dir/broken_bench"
if deploy/bench-threads.py --binary "$dir/broken_bench" --skip 0.1 --window 0.1 \
    >"$dir/out" 2>"$dir/err"; then
  fail "a failed benchmark was reported as a success"
fi
grep -q "the benchmark failed (exit 3)" "$dir/err" || fail "no failure message: $(cat "$dir/err")"
grep -q "cannot start" "$dir/err" || fail "the benchmark's own words are not passed on"
echo "PASS"
