"""LeNet-5 end to end against PyTorch (issue 2).

Same weights, same batch: `nnc init` weights loaded into a torch module by
name (strict), and torch-initialized weights loaded into nnc; `nnc run` output
must be within 1e-4 x max|reference| of torch's. Also: the generated C compiles
warning-free under gcc and clang with -Werror -pedantic, and bad files given to
`nnc run` fail with exit status 1 and a message naming the culprit."""
import os
import subprocess
import tempfile
import unittest

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from nncutil import SRC, nnc, rel_err, st_read, st_write

MODEL = os.path.join(SRC, "models", "lenet5.net")
TOL = 1e-4


class LeNet5(nn.Module):
    """The reference: the modern LeNet-5 of models/lenet5.net, same layer names."""

    def __init__(self, classes=10):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 6, 5, padding=2)
        self.conv2 = nn.Conv2d(6, 16, 5)
        self.fc1 = nn.Linear(400, 120)
        self.fc2 = nn.Linear(120, 84)
        self.fc3 = nn.Linear(84, classes)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)
        x = torch.flatten(x, 1)
        return self.fc3(F.relu(self.fc2(F.relu(self.fc1(x)))))


class LeNet5Parity(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.dir = self.tmp.name
        torch.manual_seed(0)

    def tearDown(self):
        self.tmp.cleanup()

    def path(self, name):
        return os.path.join(self.dir, name)

    def run_nnc(self, weights, x):
        np.save(self.path("x.npy"), x)
        nnc("run", MODEL, "--weights", weights, "--input", f"image={self.path('x.npy')}",
            "--output", f"logits={self.path('y.npy')}")
        return np.load(self.path("y.npy"))

    def test_nnc_init_weights_load_into_torch(self):
        nnc("init", MODEL, "--seed", 7, "-o", self.path("w.safetensors"))
        sd = {k: torch.from_numpy(v) for k, v in st_read(self.path("w.safetensors")).items()}
        net = LeNet5().eval()
        net.load_state_dict(sd, strict=True)  # same names, same shapes
        # PyTorch's default init bounds: |w| <= 1/sqrt(fan_in)
        self.assertLessEqual(float(sd["conv1.weight"].abs().max()), 1 / 5.0 + 1e-6)
        self.assertGreater(float(sd["conv1.weight"].abs().max()), 0.1)
        x = np.random.default_rng(1).standard_normal((5, 1, 28, 28)).astype(np.float32)
        ref = net(torch.from_numpy(x)).detach().numpy()
        got = self.run_nnc(self.path("w.safetensors"), x)
        self.assertEqual(got.shape, (5, 10))
        self.assertLessEqual(rel_err(got, ref), TOL)

    def test_torch_weights_load_into_nnc(self):
        net = LeNet5().eval()
        st_write(self.path("t.safetensors"), {k: v.numpy() for k, v in net.state_dict().items()})
        for batch in (1, 3, 17):
            x = np.random.default_rng(batch).random((batch, 1, 28, 28), dtype=np.float32)
            ref = net(torch.from_numpy(x)).detach().numpy()
            got = self.run_nnc(self.path("t.safetensors"), x)
            self.assertLessEqual(rel_err(got, ref), TOL, f"batch {batch}")

    def test_init_is_deterministic(self):
        nnc("init", MODEL, "--seed", 3, "-o", self.path("a.safetensors"))
        nnc("init", MODEL, "--seed", 3, "-o", self.path("b.safetensors"))
        nnc("init", MODEL, "--seed", 4, "-o", self.path("c.safetensors"))
        a, b, c = (st_read(self.path(f)) for f in ("a.safetensors", "b.safetensors", "c.safetensors"))
        self.assertEqual(sorted(a), sorted(b))
        for k in a:
            np.testing.assert_array_equal(a[k], b[k])
        self.assertFalse(np.array_equal(a["fc1.weight"], c["fc1.weight"]))

    def test_generated_code_compiles_strictly(self):
        out = self.path("lenet5.c")
        nnc(MODEL, "-o", out, "--batch", 64)
        with open(self.path("lenet5.h")) as f:
            header = f.read()
        self.assertIn("LENET5_WORKSPACE_BYTES", header)
        self.assertIn("LENET5_MAX_BATCH", header)
        for cc in ("gcc", "clang"):
            for blas in ([], ["-DNNC_USE_CBLAS"]):
                cmd = [cc, "-std=c99", "-Wall", "-Wextra", "-Werror", "-pedantic", *blas, "-c", out,
                       "-o", self.path("lenet5.o")]
                p = subprocess.run(cmd, capture_output=True, text=True)
                self.assertEqual(p.returncode, 0, f"{' '.join(cmd)}\n{p.stderr}")


class Emitters(unittest.TestCase):
    """--emit=ir and --emit=dot: text a person (or Graphviz) can read."""

    def test_ir_text(self):
        out = nnc(MODEL, "--emit=ir").stdout
        self.assertIn("graph lenet5", out)
        self.assertIn("param  %1 conv1.weight [6, 1, 5, 5]", out)
        self.assertIn("output logits = ", out)

    def test_dot_renders(self):
        out = nnc(MODEL, "--emit=dot").stdout
        self.assertTrue(out.startswith('digraph "lenet5"'))
        p = subprocess.run(["dot", "-Tsvg"], input=out, capture_output=True, text=True)
        self.assertEqual(p.returncode, 0, p.stderr)
        for op in ("conv2d", "maxpool2d", "linear", "input image", "output logits"):
            self.assertIn(op, p.stdout)


class Stats(unittest.TestCase):
    """`nnc --stats`: the keys scripts rely on, and what the passes do to them."""

    def test_keys_and_levels(self):
        from nncutil import nnc_stats
        o0, o2 = nnc_stats(MODEL, "-O0"), nnc_stats(MODEL)
        for k in ("params", "macs", "activation_bytes", "nodes", "kernels", "workspace_bytes",
                  "workspace_lower_bound_bytes"):
            self.assertIn(k, o2)
        self.assertEqual(o2["params"], 61706)
        self.assertEqual(o2["macs"], 416520)
        self.assertEqual(o0["params"], o2["params"])
        self.assertLess(o2["kernels"], o0["kernels"])          # relu fused into conv/linear, flatten a view
        self.assertLess(o2["workspace_bytes"], o0["workspace_bytes"])
        self.assertGreaterEqual(o2["workspace_bytes"], o2["workspace_lower_bound_bytes"])
        self.assertLessEqual(o2["workspace_bytes"], 1.05 * o2["workspace_lower_bound_bytes"])
        # the per-layer table follows the keys
        out = nnc("--stats", MODEL).stdout
        self.assertIn("layers:", out)
        self.assertIn("conv1", out)

    def test_bad_net_file_exit_status(self):
        """A malformed .net file: a positioned error and exit status 1, never a crash."""
        errors = os.path.join(SRC, "tests", "errors")
        for name in ("syntax_missing_paren.net", "shape_add_in_block.net", "lex_non_ascii.net"):
            p = nnc(os.path.join(errors, name), "--emit=ir", check=False)
            self.assertEqual(p.returncode, 1, p.stderr)
            self.assertTrue(p.stderr.startswith(os.path.join(errors, name) + ":"), p.stderr)
            self.assertIn(": error: ", p.stderr.splitlines()[0])

    def test_print_after(self):
        p = nnc(MODEL, "--emit=ir", "--print-after=all")
        self.assertIn("# after cleanup", p.stderr)
        self.assertIn("# after fuse_epilogue", p.stderr)
        p = nnc(MODEL, "--print-after=nosuchpass", check=False)
        self.assertEqual(p.returncode, 2)
        self.assertIn("no pass named 'nosuchpass'", p.stderr)


class RunErrors(unittest.TestCase):
    """`nnc run` on bad files: exit status 1 and a message naming the culprit."""

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory()
        cls.dir = cls.tmp.name
        cls.w = os.path.join(cls.dir, "w.safetensors")
        nnc("init", MODEL, "-o", cls.w)
        cls.x = os.path.join(cls.dir, "x.npy")
        np.save(cls.x, np.zeros((2, 1, 28, 28), np.float32))

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def expect_error(self, args, *needles):
        p = nnc("run", MODEL, *args, check=False)
        self.assertEqual(p.returncode, 1, p.stderr)
        for n in needles:
            self.assertIn(n, p.stderr)
        self.assertNotIn("internal error", p.stderr)

    def test_missing_tensor(self):
        w = st_read(self.w)
        del w["fc2.bias"]
        bad = os.path.join(self.dir, "missing.safetensors")
        st_write(bad, w)
        self.expect_error(["--weights", bad, "--input", f"image={self.x}"], "missing.safetensors", "fc2.bias")

    def test_extra_tensors_are_noted(self):
        w = st_read(self.w)
        w["fc4.weight"] = np.zeros((3, 3), np.float32)
        extra = os.path.join(self.dir, "extra.safetensors")
        st_write(extra, w)
        p = nnc("run", MODEL, "--weights", extra, "--input", f"image={self.x}")
        self.assertIn("1 tensor is not used by network 'lenet5' (fc4.weight)", p.stderr)

    def test_wrong_weight_shape(self):
        w = st_read(self.w)
        w["conv1.weight"] = np.zeros((6, 1, 3, 3), np.float32)
        bad = os.path.join(self.dir, "shape.safetensors")
        st_write(bad, w)
        self.expect_error(["--weights", bad, "--input", f"image={self.x}"], "conv1.weight", "[6, 1, 5, 5]")

    def test_wrong_input_shape(self):
        bad = os.path.join(self.dir, "small.npy")
        np.save(bad, np.zeros((2, 1, 14, 14), np.float32))
        self.expect_error(["--weights", self.w, "--input", f"image={bad}"], "small.npy", "image")

    def test_wrong_dtype(self):
        bad = os.path.join(self.dir, "f64.npy")
        np.save(bad, np.zeros((2, 1, 28, 28), np.float64))
        self.expect_error(["--weights", self.w, "--input", f"image={bad}"], "f64.npy", "float32")

    def test_unknown_input_and_output(self):
        self.expect_error(["--weights", self.w, "--input", f"picture={self.x}"], "picture")
        self.expect_error(["--weights", self.w, "--input", f"image={self.x}", "--output", "probs=o.npy"], "probs")

    def test_missing_input(self):
        self.expect_error(["--weights", self.w], "image")

    def test_mutated_files(self):
        """Random corruptions of a valid .npy and .safetensors: never a crash."""
        rng = np.random.default_rng(5)
        with open(self.w, "rb") as f:
            wbytes = bytearray(f.read())
        with open(self.x, "rb") as f:
            xbytes = bytearray(f.read())
        for i in range(6):
            for src, name in ((wbytes, "m.safetensors"), (xbytes, "m.npy")):
                b = bytearray(src)
                cut = int(rng.integers(1, len(b)))
                if i % 2:
                    b = b[:cut]
                else:
                    for _ in range(8):
                        b[int(rng.integers(0, min(len(b), 200)))] = int(rng.integers(0, 256))
                path = os.path.join(self.dir, name)
                with open(path, "wb") as f:
                    f.write(b)
                w = path if name.endswith("safetensors") else self.w
                x = path if name.endswith("npy") else self.x
                p = nnc("run", MODEL, "--weights", w, "--input", f"image={x}", "--output",
                        f"logits={os.path.join(self.dir, 'o.npy')}", check=False)
                self.assertIn(p.returncode, (0, 1), p.stderr)
                if p.returncode:
                    self.assertIn(name, p.stderr)
                    self.assertNotIn("internal error", p.stderr)


if __name__ == "__main__":
    unittest.main(verbosity=2)
