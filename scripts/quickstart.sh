#!/bin/bash
# The README's first command: install what is missing, build nnc, and run the
# main job: compile LeNet-5 from models/lenet5.net, train it on Fashion-MNIST
# (Debian's dataset-fashion-mnist) for a few epochs with the recipe of its
# `train` section, report the test accuracy, and classify real test images
# with the trained weights. EPOCHS=10 reaches about 90.8% (a few minutes).
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
EPOCHS=${EPOCHS:-3}
echo "== nnc train: $EPOCHS epochs on Fashion-MNIST (out/lenet5.safetensors, out/lenet5_log.csv)"
./build/nnc train models/lenet5.net --data fashion-mnist:$DATA --epochs "$EPOCHS" \
  --out out/lenet5.safetensors --log out/lenet5_log.csv
echo "== nnc eval: the 10,000 test images"
./build/nnc eval models/lenet5.net --weights out/lenet5.safetensors --data fashion-mnist:$DATA
echo "== nnc run: 10 Fashion-MNIST test images with the trained weights"
./build/nnc run models/lenet5.net --weights out/lenet5.safetensors \
  --input image=$DATA/t10k-images-idx3-ubyte.gz --limit 10 \
  --labels $DATA/t10k-labels-idx1-ubyte.gz
