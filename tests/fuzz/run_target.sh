#!/bin/bash
# run_target.sh FUZZER NAME WORKDIR SECONDS: one fuzz target as a test.
#
#   1. replays every input of tests/fuzz/regressions/NAME/ (each crash ever
#      found) and tests/fuzz/corpus/NAME/ (the seeds) once (fuzz_frontend
#      compiles the C of each with cc: NNC_FUZZ_CC_REPLAY=1);
#   2. fuzzes for SECONDS (env NNC_FUZZ_SECONDS overrides; 0 skips this) from
#      the seeds and the corpus earlier runs left in WORKDIR/corpus, with the
#      dictionary NAME.dict, in this one process (no -jobs), 10 s per input at
#      most.
#
# Everything it writes goes under WORKDIR, and scratch files (TMPDIR, for the
# harnesses' own folders) under /dev/shm; never into the source tree. On a crash it says which target,
# prints the input (path and hex) and how to replay it, and exits 1. Also
# used by scripts/fuzz.sh for long runs.
set -uo pipefail
fuzzer=$(realpath "$1") name=$2 work=$3 seconds=${NNC_FUZZ_SECONDS:-$4}
here=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$work" && work=$(realpath "$work")  # absolute: fuzz_frontend works in a folder of its own
corpus=$here/corpus/$name regressions=$here/regressions/$name dict=$here/$name.dict
mkdir -p "$work/corpus" "$work/crashes"
# the harnesses' scratch files: in memory when /dev/shm is there (ext4 writeback
# costs more than the readers), removed when this script ends
if tmp=$(mktemp -d /dev/shm/nnc-fuzz-"$name".XXXXXX 2>/dev/null); then :; else tmp=$(mktemp -d "$work/tmp.XXXXXX"); fi
trap 'rm -rf "$tmp"' EXIT
export TMPDIR=$tmp
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1}:abort_on_error=1:symbolize=1
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1}
opts=(-timeout=10 -rss_limit_mb=2560 -malloc_limit_mb=2048 -print_final_stats=1)
[ -f "$dict" ] && opts+=(-dict="$dict")

fail() {  # fail INPUT WHAT
  echo "FUZZ FAILURE: target $name: $2"
  if [ -n "$1" ] && [ -f "$1" ]; then
    echo "input: $1 ($(stat -c %s "$1") bytes)"
    od -A d -t x1z -v "$1" | head -n 64
    echo "replay: $fuzzer $1"
    echo "keep it: cp $1 $regressions/   (after minimizing: $fuzzer -minimize_crash=1 -runs=10000 $1)"
  fi
  exit 1
}

# 1. the regressions and the seeds, each input once
inputs=()
for d in "$regressions" "$corpus"; do
  [ -d "$d" ] && while IFS= read -r f; do inputs+=("$f"); done < <(find "$d" -type f ! -name '.*' ! -name README | sort)
done
if [ ${#inputs[@]} -gt 0 ]; then
  echo "== $name: replaying ${#inputs[@]} regression and seed inputs"
  log=$work/replay.log
  # fuzz_frontend compiles the C of every replayed input (not a sample of them)
  if ! NNC_FUZZ_CC=${NNC_FUZZ_CC_REPLAY:-1} "$fuzzer" "${opts[@]}" "${inputs[@]}" >"$log" 2>&1; then
    tail -n 80 "$log"
    bad=$(grep -o 'Running: .*' "$log" | tail -n 1 | sed 's/^Running: //')
    fail "$bad" "an input of the regressions or the corpus fails"
  fi
fi

# 2. a bounded run
[ "$seconds" -gt 0 ] 2>/dev/null || exit 0
echo "== $name: fuzzing for $seconds s"
log=$work/fuzz.log
seeds=()
[ -d "$corpus" ] && seeds+=("$corpus")
[ -d "$regressions" ] && seeds+=("$regressions")
"$fuzzer" "${opts[@]}" -max_total_time="$seconds" -artifact_prefix="$work/crashes/" \
  "$work/corpus" "${seeds[@]}" >"$log" 2>&1
rc=$?
grep -E '^#[0-9]+[[:space:]]+(INITED|DONE)|^stat::number_of_executed_units|^Done [0-9]+ runs' "$log" | sed "s/^/   $name: /"
if [ $rc -ne 0 ]; then
  tail -n 100 "$log"
  crash=$(grep -o "Test unit written to [^ ]*" "$log" | tail -n 1 | sed 's/^Test unit written to //')
  fail "$crash" "the fuzzer found a failing input (log: $log)"
fi
exit 0
