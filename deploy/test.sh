#!/usr/bin/env bash
# The whole test suite, from a fresh machine: installs what is needed, builds everything, runs
# every test, and ends with the line `N passed, N failed` counted from Bazel's test results.
#
#   deploy/test.sh              # the suite (what CI runs)
#   deploy/test.sh --asan       # the same under AddressSanitizer + UndefinedBehaviorSanitizer
#   deploy/test.sh -- //raft/... # extra arguments after -- replace the target pattern
#   deploy/test.sh --no-fuzz     # skip the fuzz runs
#
# With the default target pattern (and not --asan), the libFuzzer targets also run, about a
# minute each (deploy/fuzz.sh; SHOAL_FUZZ_SECONDS overrides), and count as one test each.
set -uo pipefail
cd "$(dirname "$0")/.."

config=()
targets=("//...")
fuzz=1
while [ $# -gt 0 ]; do
  case "$1" in
    --asan) config=(--config=asan); fuzz=0; shift ;;
    --no-fuzz) fuzz=0; shift ;;
    --) shift; targets=("$@"); fuzz=0; break ;;
    *) echo "test.sh: unknown argument $1 (use --asan, --no-fuzz, or -- TARGETS)" >&2; exit 2 ;;
  esac
done

deploy/setup.sh || { echo "0 passed, 1 failed"; exit 1; }

# Which test targets there are, before running them, so one that fails to build still counts.
mapfile -t tests < <(bazel query "tests(set(${targets[*]}))" 2>/dev/null)
if [ ${#tests[@]} -eq 0 ]; then
  echo "test.sh: no test targets found in ${targets[*]}" >&2
  echo "0 passed, 1 failed"
  exit 1
fi

start=$(date +%s)
bazel test "${config[@]}" --keep_going "${targets[@]}"
rc=$?
echo "test.sh: bazel test exited $rc after $(( $(date +%s) - start ))s"

testlogs="$(bazel info "${config[@]}" bazel-testlogs 2>/dev/null)"

fuzz_args=()
fuzz_rc=0
if [ $fuzz -eq 1 ]; then
  fuzzlogs="$(mktemp -d)/fuzzlogs"
  start=$(date +%s)
  bash deploy/fuzz.sh --out "$fuzzlogs"
  fuzz_rc=$?
  echo "test.sh: fuzz.sh exited $fuzz_rc after $(( $(date +%s) - start ))s"
  if [ -f "$fuzzlogs/targets" ]; then
    mapfile -t fuzzers < "$fuzzlogs/targets"
    fuzz_args=(--logs "$fuzzlogs" "${fuzzers[@]}")
  else
    fuzz_args=(--logs "$fuzzlogs" //deploy:fuzz.sh)  # counts as one failure
  fi
fi

python3 deploy/count-tests.py "$testlogs" "${tests[@]}" "${fuzz_args[@]}"
count_rc=$?

if [ "${CI:-}" = "true" ]; then
  bazel shutdown >/dev/null 2>&1 || true
fi
[ $rc -eq 0 ] && [ $count_rc -eq 0 ] && [ $fuzz_rc -eq 0 ]
