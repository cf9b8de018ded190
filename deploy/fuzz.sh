#!/usr/bin/env bash
# Builds every libFuzzer target (cc_binary named *_fuzzer, tagged manual) with Debian's clang
# (--config=fuzz: libFuzzer + ASan + UBSan) and runs each for a bounded time, seeded from its
# corpus (<package>/corpus/<name without _fuzzer>/; the corpus in the repo is never modified).
# Writes one JUnit XML per fuzzer to OUT/<package>/<name>/test.xml for deploy/count-tests.py.
# A crash fails the run; its input is copied to OUT/<package>/<name>/ and should be added to the
# corpus, where the <name>_replay test keeps it as a regression test.
#
#   deploy/fuzz.sh [--seconds N] [--out DIR]     (default 60 s each, fuzzers run in parallel)
#
# The fuzz build uses its own Bazel output base, so switching compilers never discards the
# analysis cache of the main (gcc) build; the disk cache is shared.
set -uo pipefail
cd "$(dirname "$0")/.."

seconds="${SHOAL_FUZZ_SECONDS:-60}"
out="${TMPDIR:-/tmp}/shoal-fuzzlogs"
while [ $# -gt 0 ]; do
  case "$1" in
    --seconds) seconds="$2"; shift 2 ;;
    --out) out="$2"; shift 2 ;;
    *) echo "fuzz.sh: unknown argument $1 (use --seconds N, --out DIR)" >&2; exit 2 ;;
  esac
done

output_base="${HOME}/.cache/shoal-fuzz-$(pwd | md5sum | cut -c1-8)"
fbazel() { bazel --output_base="$output_base" "$@"; }

# Discovered with the main Bazel server, which knows its own bazel-* symlinks.
mapfile -t fuzzers < <(bazel query 'attr(name, "_fuzzer$", kind(cc_binary, //...))' 2>/dev/null)
if [ ${#fuzzers[@]} -eq 0 ]; then
  echo "fuzz.sh: no fuzz targets found" >&2
  exit 1
fi
# Only ever clear a directory this script made (it leaves a `targets` file there).
if [ -d "$out" ] && [ -n "$(ls -A "$out")" ] && [ ! -f "$out/targets" ]; then
  echo "fuzz.sh: $out is not empty and not a previous fuzz output; refusing to clear it" >&2
  exit 2
fi
rm -rf "$out"
mkdir -p "$out"
printf '%s\n' "${fuzzers[@]}" > "$out/targets"

build_rc=0
fbazel build --config=fuzz --keep_going "${fuzzers[@]}" || build_rc=$?
bin="$(fbazel info --config=fuzz bazel-bin 2>/dev/null)"

xml_escape() { sed -e 's/&/\&amp;/g' -e 's/</\&lt;/g' -e 's/>/\&gt;/g' -e 's/"/\&quot;/g'; }

run_one() {  # target
  local target="$1" pkg name corpus dir work log rc crash
  pkg="${target#//}"; pkg="${pkg%%:*}"; name="${target##*:}"
  corpus="$pkg/corpus/${name%_fuzzer}"
  dir="$out/$pkg/$name"
  mkdir -p "$dir"
  if [ ! -x "$bin/$pkg/$name" ]; then
    return  # no XML: counted as failed (did not build)
  fi
  work="$(mktemp -d)"
  mkdir -p "$work/corpus"
  log="$dir/fuzz.log"
  "$bin/$pkg/$name" -max_total_time="$seconds" -timeout=25 -rss_limit_mb=2048 \
    -print_final_stats=1 -artifact_prefix="$work/" "$work/corpus" "$corpus" >"$log" 2>&1
  rc=$?
  local runs
  runs="$(grep -o 'Done [0-9]* runs' "$log" | grep -o '[0-9]*' | tail -1)"
  {
    echo '<testsuites><testsuite name="'"$name"'">'
    echo '<testcase name="FuzzFor'"$seconds"'s" classname="'"$pkg/$name"'">'
    if [ $rc -ne 0 ]; then
      for crash in "$work"/crash-* "$work"/leak-* "$work"/timeout-* "$work"/oom-*; do
        [ -e "$crash" ] && cp "$crash" "$dir/"
      done
      echo '<failure message="fuzzer exited '"$rc"'">'
      tail -n 40 "$log" | xml_escape
      echo '</failure>'
    fi
    echo '</testcase></testsuite></testsuites>'
  } >"$dir/test.xml"
  echo "fuzz.sh: $target: exit $rc, ${runs:-?} runs in ${seconds}s, corpus $(ls "$work/corpus" | wc -l) inputs"
  rm -rf "$work"
}

pids=()
for t in "${fuzzers[@]}"; do
  run_one "$t" &
  pids+=($!)
done
for p in "${pids[@]}"; do wait "$p"; done

if [ "${CI:-}" = "true" ]; then
  fbazel shutdown >/dev/null 2>&1 || true
fi
failed=0
for t in "${fuzzers[@]}"; do
  pkg="${t#//}"; pkg="${pkg%%:*}"; name="${t##*:}"
  if ! [ -f "$out/$pkg/$name/test.xml" ] || grep -q '<failure' "$out/$pkg/$name/test.xml"; then
    echo "fuzz.sh: $t FAILED (see $out/$pkg/$name/)" >&2
    failed=1
  fi
done
[ $build_rc -eq 0 ] && [ $failed -eq 0 ]
