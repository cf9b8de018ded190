#!/usr/bin/env bash
# Checks deploy/count-tests.py on hand-made Bazel test logs.
set -euo pipefail

counter="deploy/count-tests.py"
logs="${TEST_TMPDIR:-$(mktemp -d)}/testlogs"
rm -rf "$logs"
fail() { echo "FAIL: $*" >&2; exit 1; }

mkdir -p "$logs/a/ok_test" "$logs/a/bad_test" "$logs/b/sharded_test/shard_1_of_2" \
  "$logs/b/sharded_test/shard_2_of_2" "$logs/c/empty_test" "$logs/d/sh_test"
cat > "$logs/a/ok_test/test.xml" <<'XML'
<?xml version="1.0" encoding="UTF-8"?>
<testsuites tests="3" failures="0" disabled="1" errors="0" name="AllTests">
  <testsuite name="S" tests="3">
    <testcase name="One" status="run" result="completed" classname="S" />
    <testcase name="Two" status="run" result="completed" classname="S" />
    <testcase name="DISABLED_Three" status="notrun" result="suppressed" classname="S" />
  </testsuite>
</testsuites>
XML
cat > "$logs/a/bad_test/test.xml" <<'XML'
<testsuites><testsuite name="S">
  <testcase name="Good" classname="S" />
  <testcase name="Bad" classname="S"><failure message="x">boom</failure></testcase>
</testsuite></testsuites>
XML
for i in 1 2; do
  cat > "$logs/b/sharded_test/shard_${i}_of_2/test.xml" <<XML
<testsuites><testsuite name="S"><testcase name="Case$i" classname="S" /></testsuite></testsuites>
XML
done
echo '<testsuites><testsuite name="S" tests="0"></testsuite></testsuites>' \
  > "$logs/c/empty_test/test.xml"
# Bazel's own XML for a non-GoogleTest test that exited non-zero.
cat > "$logs/d/sh_test/test.xml" <<'XML'
<testsuites><testsuite name="d/sh_test" tests="1" failures="0" errors="1">
  <testcase name="d/sh_test" status="run" duration="0"><error message="exited with error code 1"></error></testcase>
</testsuite></testsuites>
XML

check() {  # expected-last-line expected-rc targets...
  local want="$1" want_rc="$2"; shift 2
  set +e
  out="$(python3 "$counter" "$logs" "$@")"
  rc=$?
  set -e
  last="$(echo "$out" | tail -n 1)"
  [ "$last" = "$want" ] || fail "targets $*: got '$last', want '$want'"
  [ "$rc" = "$want_rc" ] || fail "targets $*: exit $rc, want $want_rc"
}

check "2 passed, 0 failed, 1 skipped" 0 //a:ok_test
check "3 passed, 1 failed, 1 skipped" 1 //a:ok_test //a:bad_test
check "2 passed, 0 failed" 0 //b:sharded_test
check "0 passed, 1 failed" 1 //c:empty_test
check "0 passed, 1 failed" 1 //x:never_built
check "0 passed, 1 failed" 1 //d:sh_test
# A second group of results from another directory (the fuzz runs), summed with the first.
fuzzlogs="${logs}-fuzz"
rm -rf "$fuzzlogs"
mkdir -p "$fuzzlogs/f/x_fuzzer"
echo '<testsuites><testsuite name="f"><testcase name="FuzzFor60s" classname="f" /></testsuite></testsuites>' \
  > "$fuzzlogs/f/x_fuzzer/test.xml"
check "3 passed, 0 failed, 1 skipped" 0 //a:ok_test --logs "$fuzzlogs" //f:x_fuzzer
check "2 passed, 1 failed, 1 skipped" 1 //a:ok_test --logs "$fuzzlogs" //f:y_fuzzer
out="$(python3 "$counter" "$logs" //a:bad_test || true)"
grep -q "//a:bad_test: S.Bad failed" <<<"$out" || fail "the failing case is not named: $out"
echo "count-tests.py: all checks passed"
