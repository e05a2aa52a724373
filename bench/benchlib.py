"""What the benchmark scripts under bench/ share: the PyTorch module of each
zoo model, ONNX export, and the ONNX Runtime plumbing (onnxruntime-node,
installed by bench/setup_ort.sh, driven through the small node scripts in
bench/ort/). Kept apart so bench_zoo.py, bench_inference.py and
bench_train.py compare against the very same reference modules.

Runs under Debian's /usr/bin/python3 (python3-torch, python3-torchvision)."""
import json
import os
import shutil
import subprocess
import sys
import time

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(ROOT, "tests", "oracle"))

ORT_DIR = os.path.join(HERE, "ort")
ORT_JS = os.path.join(ORT_DIR, "ort_time.js")
ORT_SERVE_JS = os.path.join(ORT_DIR, "ort_serve.js")

# nnc's --set for a zoo model, so that nnc computes what the reference
# module's eval forward does: torchvision's GoogLeNet leaves the auxiliary
# heads out in eval mode, nnc's googlenet.net has them unless aux=false.
NNC_SETS = {"googlenet": ("aux=false",)}


def reference(name):
    """The PyTorch module of a zoo model (eval mode) and its input shape
    without the batch: the oracle tests' LeNet-5 and torchvision's models,
    whose layer names models/NAME.net follows."""
    import torchvision.models as tvm
    if name == "lenet5":
        from test_lenet5 import LeNet5
        return LeNet5().eval(), (1, 28, 28)
    if name == "resnet18_cifar":
        from test_train_parity import resnet18_cifar
        return resnet18_cifar().eval(), (3, 32, 32)
    if name == "googlenet":
        # init_weights=False: the weights' values do not change the timing, and
        # it keeps torchvision from warning about its default init.
        return tvm.googlenet(weights=None, aux_logits=False, init_weights=False).eval(), (3, 224, 224)
    return getattr(tvm, name)(weights=None).eval(), (3, 224, 224)


def time_it(fn, reps):
    """Best of reps calls of fn after one warm-up call, in milliseconds."""
    fn()
    best = float("inf")
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best * 1000.0


def ort_available():
    return shutil.which("node") is not None and os.path.isdir(os.path.join(ORT_DIR, "node_modules", "onnxruntime-node"))


def ort_version():
    try:
        with open(os.path.join(ORT_DIR, "node_modules", "onnxruntime-node", "package.json")) as f:
            return json.load(f)["version"]
    except (OSError, ValueError, KeyError):
        return None


def export_onnx(module, x, tmp):
    """module exported by torch.onnx (opset 13) for ONNX Runtime, with input x
    (a numpy batch); returns the file."""
    onnx = os.path.join(tmp, "model.onnx")
    with torch.no_grad():
        torch.onnx.export(module, torch.from_numpy(x), onnx, input_names=["input"], output_names=["output"],
                          opset_version=13)
    return onnx


def time_ort(onnx, x, reps, tmp, threads=None):
    """ONNX Runtime's best time for the exported model on x in a fresh node
    process (ort_time.js), and its output."""
    import numpy as np
    xin, yout = os.path.join(tmp, "x.f32"), os.path.join(tmp, "y.f32")
    x.tofile(xin)
    r = subprocess.run(["node", ORT_JS, onnx, "input", ",".join(map(str, x.shape)), xin, yout, str(reps),
                        str(threads or os.cpu_count())], check=True, capture_output=True, text=True)
    return json.loads(r.stdout)["ms"], np.fromfile(yout, dtype=np.float32)


class OrtSession:
    """An ONNX Runtime session held open in a node process (ort_serve.js), timed
    on request: the session's start-up is paid once, not every round."""

    def __init__(self, onnx, x, threads, tmp):
        import numpy as np
        xin, yout = os.path.join(tmp, "ort_x.f32"), os.path.join(tmp, "ort_y.f32")
        x.tofile(xin)
        self.proc = subprocess.Popen(["node", ORT_SERVE_JS, onnx, "input", ",".join(map(str, x.shape)), xin, yout,
                                      str(threads)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True)
        hello = self._reply()
        self.version = hello.get("version")
        self.output = np.fromfile(yout, dtype=np.float32)

    def _reply(self):
        line = self.proc.stdout.readline()
        if not line:
            err = self.proc.stderr.read().strip()
            self.proc.wait()
            raise RuntimeError(err or f"node exited with status {self.proc.returncode}")
        return json.loads(line)

    def times(self, runs, warmup):
        """runs timed calls after warmup untimed ones, in milliseconds."""
        self.proc.stdin.write(f"{runs} {warmup}\n")
        self.proc.stdin.flush()
        return self._reply()["times"]

    def close(self):
        if self.proc.poll() is None:
            self.proc.stdin.close()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
