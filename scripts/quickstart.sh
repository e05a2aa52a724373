#!/bin/bash
# The README's first command: install what is missing, build nnc, and run the
# main job: compile LeNet-5 from models/lenet5.net and classify real
# Fashion-MNIST test images with it.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/install-deps.sh
cmake -S . -B build >/dev/null
cmake --build build -j2 --target nnc

DATA=/usr/share/datasets/fashion-mnist
mkdir -p out
echo "== nnc: LeNet-5 as C (out/lenet5.c, out/lenet5.h)"
./build/nnc models/lenet5.net -o out/lenet5.c --batch 64
./build/nnc --stats models/lenet5.net | head -5
echo "== nnc init: weights (out/lenet5.safetensors)"
./build/nnc init models/lenet5.net --seed 1 -o out/lenet5.safetensors
echo "== nnc run: 10 Fashion-MNIST test images"
echo "   (weights are freshly initialized, not trained: expect chance-level accuracy)"
./build/nnc run models/lenet5.net --weights out/lenet5.safetensors \
  --input image=$DATA/t10k-images-idx3-ubyte.gz --limit 10 \
  --labels $DATA/t10k-labels-idx1-ubyte.gz
