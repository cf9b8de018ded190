#!/usr/bin/env bash
# The whole test suite, from a fresh machine: installs what is needed, builds everything, runs
# every test, and ends with the line `N passed, N failed` counted from Bazel's test results.
#
#   deploy/test.sh              # the suite (what CI runs)
#   deploy/test.sh --asan       # the same under AddressSanitizer + UndefinedBehaviorSanitizer
#   deploy/test.sh -- //raft/... # extra arguments after -- replace the target pattern
set -uo pipefail
cd "$(dirname "$0")/.."

config=()
targets=("//...")
while [ $# -gt 0 ]; do
  case "$1" in
    --asan) config=(--config=asan); shift ;;
    --) shift; targets=("$@"); break ;;
    *) echo "test.sh: unknown argument $1 (use --asan, or -- TARGETS)" >&2; exit 2 ;;
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
python3 deploy/count-tests.py "$testlogs" "${tests[@]}"
count_rc=$?

if [ "${CI:-}" = "true" ]; then
  bazel shutdown >/dev/null 2>&1 || true
fi
[ $rc -eq 0 ] && [ $count_rc -eq 0 ]
