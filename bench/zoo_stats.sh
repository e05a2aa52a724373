#!/bin/bash
# Prints, for every model of the zoo, what the passes do to it: nodes and
# kernels at -O0 and at -O2, and the planned workspace against the lower bound
# no plan can beat (batch 1). Markdown, for docs/passes.md.
#   bash bench/zoo_stats.sh [path/to/nnc]
set -euo pipefail
cd "$(dirname "$0")/.."
NNC=${1:-build/nnc}
stat() { "$NNC" --stats "$@" | awk -F': ' -v k="$KEY" '$1 == k { print $2 }'; }
echo "| model | nodes -O0 | nodes -O2 | kernels -O0 | kernels -O2 | workspace -O0 (bytes) | workspace -O2 | lower bound -O2 | ratio |"
echo "|---|---|---|---|---|---|---|---|---|"
for f in models/*.net; do
  m=$(basename "$f" .net)
  KEY=nodes;   n0=$(stat "$f" -O0); n2=$(stat "$f" -O2)
  KEY=kernels; k0=$(stat "$f" -O0); k2=$(stat "$f" -O2)
  KEY=workspace_bytes; w0=$(stat "$f" -O0); w2=$(stat "$f" -O2)
  KEY=workspace_lower_bound_bytes; l2=$(stat "$f" -O2)
  ratio=$(awk -v a="$w2" -v b="$l2" 'BEGIN { printf "%.3f", (b > 0 ? a / b : 1) }')
  echo "| $m | $n0 | $n2 | $k0 | $k2 | $w0 | $w2 | $l2 | $ratio |"
done
