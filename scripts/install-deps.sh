#!/bin/bash
# Installs, with apt-get, whatever nnc needs that this Debian 12 machine lacks.
# Idempotent and quick when everything is there: it asks dpkg first and runs
# apt-get only for the missing packages. Needs root (or sudo) to install.
set -euo pipefail

PACKAGES=(
  gcc clang cmake make flex bison pkg-config   # build: compilers (generated code is checked with both), parser generators
  libcmocka-dev                                # unit tests
  libclang-rt-14-dev                           # libFuzzer and the sanitizer runtimes for clang: the fuzz targets (tests/fuzz, build-fuzz/)
  llvm-14-dev libclang-cpp14-dev libclang-14-dev   # the in-process JIT (runtime/jit_llvm.cpp): Clang compiles generated C in memory, ORC links it; without them nnc falls back to cc + dlopen
  libopenblas-dev                              # cblas_sgemm behind convolutions and linear layers
  zlib1g-dev                                   # gzipped IDX data sets
  python3-torch python3-torchvision python3-numpy   # the test oracle (never a runtime dependency)
  dataset-fashion-mnist                        # real data for the quick start and the tests
  graphviz                                     # renders --emit=dot in the tests
)

missing=()
for p in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
echo "nnc: installing ${missing[*]}" >&2
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q
$SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
