#!/bin/bash
# The README's second command, and what CI runs (.ci/run): install what is
# missing, then build three times and run the whole suite on each build:
#   build/       warnings as errors, optimized, with asserts;
#   build-asan/  AddressSanitizer + UndefinedBehaviorSanitizer;
#   build-fuzz/  clang, the libFuzzer targets of tests/fuzz only: each replays
#                its regressions and seeds, then fuzzes NNC_FUZZ_SECONDS (25 s;
#                0: replay only). Longer runs: scripts/fuzz.sh.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/install-deps.sh
JOBS=${JOBS:-2}
status=0
# build-asan skips the model zoo (label "zoo"): its time is spent in generated
# code, which the sanitizers do not instrument, and build/ runs it already.
# The builds' tests share one disk cache of compiled generated code,
# build/jit-cache (runtime/jit_cache.h): build-asan's tests load what
# build/'s compiled instead of compiling it again (the same generated
# sources, compiler, flags and CPU: the same keys).
cache=-DNNC_TEST_CACHE_DIR=$PWD/build/jit-cache  # tests/CMakeLists.txt
for cfg in "build::-DNNC_WERROR=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo $cache" \
           "build-asan:-LE zoo:-DNNC_WERROR=ON -DNNC_SANITIZE=ON -DCMAKE_BUILD_TYPE=Debug $cache" \
           "build-fuzz::-DCMAKE_C_COMPILER=clang -DNNC_FUZZ=ON -DNNC_TESTS=OFF -DNNC_BLAS=OFF -DNNC_WERROR=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo"; do
  dir=${cfg%%:*}
  rest=${cfg#*:}
  select=${rest%%:*}
  flags=${rest#*:}
  echo "== $dir ($flags)"
  cmake -S . -B "$dir" $flags >/dev/null
  cmake --build "$dir" -j"$JOBS"
  ASAN_OPTIONS=detect_leaks=1 ctest --test-dir "$dir" -j"$JOBS" --output-on-failure $select || status=1
done
exit $status
