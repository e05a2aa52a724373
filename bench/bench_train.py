#!/usr/bin/python3
"""Training speed of nnc's generated training step against PyTorch, same machine, same run.

For each model: nnc writes the training module (--emit=train --batch N), the
system compiler builds it with -O3 -march=native as nnc's JIT does (nnc's own
GEMM on the module's threads, one per CPU; --blas: with OpenBLAS behind the
GEMMs instead, the JIT's default before it was measured slower), ctypes loads
it, and one SGD-with-momentum step (forward in training mode, cross-entropy,
backward, update) is timed on the same batch and weights as PyTorch's
(model.train(), zero_grad, forward, loss, backward, optimizer.step()) with
as many threads as the machine has. Prints milliseconds per step and the ratio
nnc / PyTorch (below 1: nnc is faster). ONNX Runtime is not in this one: its
training API ships only in the onnxruntime-training Python wheel, which no
registry reachable here serves (onnxruntime-node, bench_inference.py's, runs
inference only).

    /usr/bin/python3 bench/bench_train.py [--nnc build/nnc] [--batch 32] [--reps 5] [--rounds 3] [--models lenet5,resnet18_cifar] [--blas]
"""
import argparse
import ctypes
import os
import subprocess
import sys
import tempfile

import numpy as np
import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(ROOT, "tests", "oracle"))
import nncutil  # noqa: E402
from test_train_parity import Cfg, LeNet5, resnet18_cifar  # noqa: E402
from benchlib import time_it  # noqa: E402  (same timing as bench_inference.py: warm-up, best of reps)

MODELS = {"lenet5": (LeNet5, (1, 28, 28)), "resnet18_cifar": (resnet18_cifar, (3, 32, 32))}


def bench(nnc, name, batch, reps, rounds, blas):
    make, shape = MODELS[name]
    with tempfile.TemporaryDirectory() as tmp:
        c = os.path.join(tmp, f"{name}_train.c")
        subprocess.run([nnc, os.path.join(ROOT, "models", f"{name}.net"), "--emit=train", "--batch", str(batch),
                        "-o", c], check=True)
        so = os.path.join(tmp, "train.so")
        with_blas = ["-DNNC_USE_CBLAS", "-I/usr/include/x86_64-linux-gnu/openblas-pthread", "-lopenblas"]
        subprocess.run(["cc", "-std=c99", "-O3", "-march=native", "-fno-math-errno", "-fPIC", "-shared", c, "-o",
                        so] + (with_blas if blas else []) + ["-lm"], check=True)
        lib = ctypes.CDLL(so)
        step = getattr(lib, f"{name}_train_step")
        step.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_double,
                         ctypes.c_void_p, ctypes.c_void_p]
        torch.manual_seed(0)
        ref = make().train()
        w = os.path.join(tmp, "w.safetensors")
        nncutil.torch_state_to_safetensors(ref, w)
        t = ctypes.c_void_p()
        cfg = Cfg(0, 0.9, 0.0, 0, 0.9, 0.999, 1e-8, 0, 5e-4, 0.0, 0)
        assert getattr(lib, f"{name}_train_create")(ctypes.byref(t), w.encode(), ctypes.byref(cfg)) == 0
        x = torch.randn(batch, *shape)
        y = torch.randint(0, 10, (batch,))
        xs, ys = np.ascontiguousarray(x.numpy()), np.ascontiguousarray(y.numpy(), dtype=np.int32)
        loss, correct = ctypes.c_float(), ctypes.c_long()
        opt = torch.optim.SGD(ref.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)

        def torch_step():
            opt.zero_grad()
            F.cross_entropy(ref(x), y).backward()
            opt.step()
        t_nnc = t_torch = float("inf")
        for _ in range(rounds):  # turns, so a slow phase of a shared machine falls on both
            t_nnc = min(t_nnc, time_it(lambda: step(t, batch, xs.ctypes.data, ys.ctypes.data, 0.01,
                                                    ctypes.byref(loss), ctypes.byref(correct)), reps))
            t_torch = min(t_torch, time_it(torch_step, reps))
        getattr(lib, f"{name}_train_destroy")(t)
    return t_nnc, t_torch


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--nnc", default=os.path.join(ROOT, "build", "nnc"))
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--rounds", type=int, default=3, help="turns each side takes, interleaved")
    ap.add_argument("--models", default="lenet5,resnet18_cifar")
    ap.add_argument("--blas", action="store_true", help="build the module with OpenBLAS (-DNNC_USE_CBLAS)")
    a = ap.parse_args()
    torch.set_num_threads(os.cpu_count() or 1)  # as many as the module (or OpenBLAS) uses for nnc
    print(f"training step, batch {a.batch}, best of {a.rounds} interleaved rounds of {a.reps}, "
          f"torch threads {torch.get_num_threads()}, nnc {'with OpenBLAS' if a.blas else 'on its own GEMM'}")
    print("| model | nnc ms | PyTorch ms | nnc / PyTorch |")
    print("|---|---|---|---|")
    for name in a.models.split(","):
        n, t = bench(a.nnc, name, a.batch, a.reps, a.rounds, a.blas)
        print(f"| {name} | {n:.1f} | {t:.1f} | {n / t:.2f} |")


if __name__ == "__main__":
    main()
