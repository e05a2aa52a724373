#!/bin/bash
# Writes a chain of N `linear |> relu` layers (2N ops; 30,000 layers is the
# largest chain under the 65,536-op limit) and times nnc on it: --emit=c and
# --emit=train, wall seconds each. Measures, asserts nothing (DESIGN.md: speed
# is never asserted in tests).
#   bash bench/big_chain.sh [N=30000] [path/to/nnc]
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-30000}
NNC=${2:-build/nnc}
dir=$(mktemp -d "${TMPDIR:-/tmp}/nnc-big-chain.XXXXXX")
trap 'rm -rf "$dir"' EXIT
cat > "$dir/chain.net" <<NET
network chain(layers = $N) {
    input x: [16]
    for i in range(layers) { x = x |> linear(16) |> relu }
    output y = x
}
NET
for emit in c train; do
  start=$(date +%s.%N)
  "$NNC" "$dir/chain.net" --emit=$emit -o "$dir/chain_$emit.c"
  end=$(date +%s.%N)
  awk -v e="$emit" -v n="$N" -v s="$start" -v t="$end" \
    'BEGIN { printf "layers %d  --emit=%-5s  %.2f s\n", n, e, t - s }'
done
