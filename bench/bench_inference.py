#!/usr/bin/python3
"""Inference speed of nnc's generated C against PyTorch, same machine, same run.

For each model: nnc writes C (--batch N), the system compiler builds it with
-O3 -march=native and OpenBLAS (-DNNC_USE_CBLAS), ctypes loads it, and the
forward pass is timed on the same random batch and the same weights as
PyTorch's eval-mode forward with as many threads as the machine has (torch's
default). Prints milliseconds per batch and the ratio nnc / PyTorch (below 1:
nnc is faster). ONNX Runtime is not packaged for Debian 12, so it is not in
the comparison.

    /usr/bin/python3 bench/bench_inference.py [--nnc build/nnc] [--batch 8] [--models lenet5,resnet18]
"""
import argparse
import ctypes
import os
import subprocess
import sys
import tempfile
import time

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(ROOT, "tests", "oracle"))
import nncutil  # noqa: E402


def reference(name):
    """The PyTorch module of a zoo model and its input shape."""
    import torchvision.models as tvm
    if name == "lenet5":
        from test_lenet5 import LeNet5
        return LeNet5(), (1, 28, 28)
    return getattr(tvm, name)(weights=None), (3, 224, 224)


def build(nnc, model, batch, tmp):
    c = os.path.join(tmp, "model.c")
    subprocess.run([nnc, model, "-o", c, "--batch", str(batch)], check=True)
    so = os.path.join(tmp, "model.so")
    subprocess.run(["cc", "-std=c99", "-O3", "-march=native", "-fPIC", "-shared", "-DNNC_USE_CBLAS", c, "-o", so,
                    "-lopenblas", "-lm"], check=True)
    return ctypes.CDLL(so)


def time_it(fn, reps):
    fn()  # warm up
    best = float("inf")
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best * 1000.0


def bench(nnc, name, batch, reps):
    module, shape = reference(name)
    module.eval()
    with tempfile.TemporaryDirectory() as tmp:
        w = os.path.join(tmp, "w.safetensors")
        nncutil.torch_state_to_safetensors(module, w)
        lib = build(nnc, os.path.join(ROOT, "models", name + ".net"), batch, tmp)
        prefix = name
        create = getattr(lib, prefix + "_create")
        forward = getattr(lib, prefix + "_forward")
        last_error = getattr(lib, prefix + "_last_error")
        last_error.restype = ctypes.c_char_p
        m = ctypes.c_void_p()
        if create(ctypes.byref(m), w.encode(), None) != 0:
            raise RuntimeError(last_error(m).decode())
        x = np.random.default_rng(0).random((batch, *shape), dtype=np.float32)
        with torch.no_grad():
            ref = module(torch.from_numpy(x)).numpy()
        y = np.empty_like(ref)
        fp = ctypes.POINTER(ctypes.c_float)
        xp, yp = x.ctypes.data_as(fp), y.ctypes.data_as(fp)
        t_nnc = time_it(lambda: forward(m, batch, xp, yp), reps)
        err = nncutil.rel_err(y, ref)
        getattr(lib, prefix + "_destroy")(m)
    with torch.no_grad():
        xt = torch.from_numpy(x)
        t_torch = time_it(lambda: module(xt), reps)
    return t_nnc, t_torch, err


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--nnc", default=os.path.join(ROOT, "build", "nnc"))
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--models", default="lenet5,resnet18,mobilenet_v2,resnet50")
    args = ap.parse_args()
    torch.set_num_threads(os.cpu_count())  # as many as OpenBLAS uses behind nnc
    print(f"batch {args.batch}, best of {args.reps}, torch {torch.__version__} with {torch.get_num_threads()} threads")
    print(f"{'model':<14} {'nnc ms':>10} {'torch ms':>10} {'nnc/torch':>10} {'max rel err':>12}")
    for name in args.models.split(","):
        t_nnc, t_torch, err = bench(args.nnc, name, args.batch, args.reps)
        print(f"{name:<14} {t_nnc:>10.2f} {t_torch:>10.2f} {t_nnc / t_torch:>10.2f} {err:>12.1e}")


if __name__ == "__main__":
    main()
