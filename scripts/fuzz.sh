#!/bin/bash
# scripts/fuzz.sh [TARGET|all] [SECONDS]: fuzzing campaigns with the libFuzzer
# targets of tests/fuzz (frontend, safetensors, npy, idx, checkpoint), one
# after the other, SECONDS each (default 600), in this one process per target.
#
# Builds build-fuzz/ (clang, NNC_FUZZ=ON) when needed. The corpus each target
# grows and any crash it finds live in a work folder outside the repository,
# $NNC_FUZZ_WORK (default ~/.cache/nnc-fuzz/TARGET/: corpus/, crashes/,
# fuzz.log), so later campaigns start where earlier ones stopped and the tree
# stays clean. Prints, per target, the executions, libFuzzer's final coverage
# (cov: edges, ft: features) and the corpus, and, on a crash, the input and
# how to keep it as a regression (tests/fuzz/regressions/TARGET/).
#
#   scripts/fuzz.sh                  every target, 10 minutes each
#   scripts/fuzz.sh frontend 3600    one hour of the frontend
#   NNC_FUZZ_CC=16 scripts/fuzz.sh frontend   compile the emitted C of 1 input in 16
#   NNC_FUZZ_CC_STRICT=1 ...         ... with -Wall -Wextra -Werror
set -uo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
target=${1:-all}
seconds=${2:-600}
work=${NNC_FUZZ_WORK:-${XDG_CACHE_HOME:-$HOME/.cache}/nnc-fuzz}
all=$(cd tests/fuzz && ls fuzz_*.c | sed -n 's/^fuzz_\(.*\)\.c$/\1/p' | grep -vx common)
if [ "$target" = all ]; then targets=$all; else
  echo "$all" | grep -qx "$target" || { echo "scripts/fuzz.sh: no target '$target'; the targets: $(echo $all)" >&2; exit 2; }
  targets=$target
fi
case $work in "$root"|"$root"/*) echo "scripts/fuzz.sh: NNC_FUZZ_WORK must be outside the repository" >&2; exit 2;; esac

bash scripts/install-deps.sh
cmake -S . -B build-fuzz -DCMAKE_C_COMPILER=clang -DNNC_FUZZ=ON -DNNC_TESTS=OFF -DNNC_BLAS=OFF \
      -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null || exit 1
cmake --build build-fuzz -j"${JOBS:-2}" >/dev/null || { cmake --build build-fuzz -j1 2>&1 | tail -n 30; exit 1; }

status=0
summary=()
for t in $targets; do
  NNC_FUZZ_SECONDS=$seconds bash tests/fuzz/run_target.sh build-fuzz/tests/fuzz/fuzz_"$t" "$t" "$work/$t" "$seconds"
  rc=$?
  log=$work/$t/fuzz.log
  done_line=$(grep -E '^#[0-9]+[[:space:]]+DONE' "$log" 2>/dev/null | tail -n 1)
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" 2>/dev/null | tail -n 1)
  cov=$(echo "$done_line" | grep -o 'cov: [0-9]*' | cut -d' ' -f2)
  ft=$(echo "$done_line" | grep -o 'ft: [0-9]*' | cut -d' ' -f2)
  corp=$(echo "$done_line" | grep -o 'corp: [^ ]*' | cut -d' ' -f2)
  summary+=("$(printf '%-12s %-6s %12s %8s %8s %14s' "$t" "$([ $rc -eq 0 ] && echo ok || echo CRASH)" \
               "${execs:--}" "${cov:--}" "${ft:--}" "${corp:--}")")
  [ $rc -eq 0 ] || status=1
done
echo
printf '%-12s %-6s %12s %8s %8s %14s\n' target result executions cov ft corpus
printf '%s\n' "${summary[@]}"
echo "(work folder: $work)"
exit $status
