#!/bin/bash
# Installs ONNX Runtime for the benchmarks (bench/bench_inference.py), once:
# onnxruntime-node from the npm registry into bench/ort/node_modules. Debian 12
# does not package ONNX Runtime; the npm package ships the CPU library for
# linux-x64 inside it. --ignore-scripts: its postinstall step only fetches the
# optional CUDA/TensorRT providers from another host, which is neither
# reachable here nor wanted. Benchmarks only: nothing in the build or the test
# suite uses it.
set -euo pipefail
cd "$(dirname "$0")/ort"
VERSION=1.30.0
if [ -f node_modules/onnxruntime-node/package.json ] &&
   grep -q "\"version\": \"$VERSION\"" node_modules/onnxruntime-node/package.json; then
  exit 0
fi
if ! command -v npm >/dev/null; then
  echo "bench/setup_ort.sh: installing nodejs and npm (apt-get)" >&2
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends nodejs npm
fi
npm install --no-save --no-package-lock --ignore-scripts --no-audit --no-fund "onnxruntime-node@$VERSION"
