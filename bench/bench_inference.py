#!/usr/bin/python3
"""Inference speed of nnc's generated C against PyTorch and ONNX Runtime, same
machine, same run.

For each model: nnc writes C (--batch N), the system compiler builds it with
-O3 -march=native and OpenBLAS (-DNNC_USE_CBLAS), ctypes loads it, and the
forward pass is timed on the same random batch and the same weights as
PyTorch's eval-mode forward, and as ONNX Runtime running the same module
exported by torch.onnx (all graph optimizations on), each with as many
threads as the machine has, taking turns over several rounds (--rounds) so a
slow phase of a shared machine falls on all three alike. Prints milliseconds per batch and the ratios
nnc / PyTorch and nnc / ONNX Runtime (below 1: nnc is faster), and each
result's largest relative difference from PyTorch's, so a ratio never
compares a wrong answer.

ONNX Runtime comes from the npm registry (Debian does not package it):
`bash bench/setup_ort.sh` installs it under bench/ort/ once; without it the
ONNX Runtime columns say "-" (--no-ort skips them).

    /usr/bin/python3 bench/bench_inference.py [--nnc build/nnc] [--batch 8] [--reps 5] [--rounds 3]
                                              [--models lenet5,resnet18] [--no-ort]
"""
import argparse
import ctypes
import os
import subprocess
import tempfile

import numpy as np
import torch

from benchlib import NNC_SETS, ROOT, export_onnx, ort_available, reference, time_it, time_ort
import nncutil  # noqa: E402  (tests/oracle, on the path benchlib sets)


def build(nnc, model, batch, tmp):
    c = os.path.join(tmp, "model.c")
    sets = [a for kv in NNC_SETS.get(os.path.basename(model)[:-4], ()) for a in ("--set", kv)]
    subprocess.run([nnc, model, "-o", c, "--batch", str(batch), *sets], check=True)
    so = os.path.join(tmp, "model.so")
    subprocess.run(["cc", "-std=c99", "-O3", "-march=native", "-fPIC", "-shared", "-DNNC_USE_CBLAS", c, "-o", so,
                    "-lopenblas", "-lm"], check=True)
    return ctypes.CDLL(so)


def bench(nnc, name, batch, reps, rounds, ort):
    """Best times of nnc, PyTorch and ONNX Runtime over `rounds` rounds of
    `reps` runs each, the contenders taking turns within every round, so a
    slow phase of this shared machine falls on all of them alike."""
    module, shape = reference(name)
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
        xt = torch.from_numpy(x)
        with torch.no_grad():
            ref = module(xt).numpy()
        y = np.empty_like(ref)
        fp = ctypes.POINTER(ctypes.c_float)
        xp, yp = x.ctypes.data_as(fp), y.ctypes.data_as(fp)
        onnx = export_onnx(module, x, tmp) if ort else None
        t_nnc = t_torch = t_ort = float("inf")
        err_ort = None
        for _ in range(rounds):
            t_nnc = min(t_nnc, time_it(lambda: forward(m, batch, xp, yp), reps))
            with torch.no_grad():
                t_torch = min(t_torch, time_it(lambda: module(xt), reps))
            if ort:
                t, y_ort = time_ort(onnx, x, reps, tmp)
                t_ort = min(t_ort, t)
                err_ort = nncutil.rel_err(y_ort.reshape(ref.shape), ref)
        err = nncutil.rel_err(y, ref)
        getattr(lib, prefix + "_destroy")(m)
    return t_nnc, t_torch, err, (t_ort if ort else None), err_ort


def cell(v, spec):
    """v formatted, or "-" right-aligned in the same width when there is none."""
    return format(v, spec) if v is not None else "-".rjust(int(spec.split(".")[0]))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--nnc", default=os.path.join(ROOT, "build", "nnc"))
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--rounds", type=int, default=3, help="turns each contender takes, interleaved")
    ap.add_argument("--models", default="lenet5,resnet18,mobilenet_v2,resnet50")
    ap.add_argument("--no-ort", action="store_true", help="leave ONNX Runtime out")
    args = ap.parse_args()
    ort = not args.no_ort and ort_available()
    if not args.no_ort and not ort:
        print("ONNX Runtime: not installed (bash bench/setup_ort.sh installs it); its columns say -")
    torch.set_num_threads(os.cpu_count())  # as many as OpenBLAS uses behind nnc
    print(f"batch {args.batch}, best of {args.rounds} interleaved rounds of {args.reps}, torch {torch.__version__} with {torch.get_num_threads()} threads"
          + (f", ONNX Runtime with {os.cpu_count()} threads" if ort else ""))
    print(f"{'model':<14} {'nnc ms':>9} {'torch ms':>9} {'ort ms':>9} {'nnc/torch':>10} {'nnc/ort':>8}"
          f" {'nnc err':>8} {'ort err':>8}")
    for name in args.models.split(","):
        t_nnc, t_torch, err, t_ort, err_ort = bench(args.nnc, name, args.batch, args.reps, args.rounds, ort)
        print(f"{name:<14} {t_nnc:>9.2f} {t_torch:>9.2f} {cell(t_ort, '9.2f')} {t_nnc / t_torch:>10.2f}"
              f" {cell(t_ort and t_nnc / t_ort, '8.2f')} {err:>8.1e} {cell(err_ort, '8.1e')}")


if __name__ == "__main__":
    main()
