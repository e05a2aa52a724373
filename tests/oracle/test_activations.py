"""silu, hardswish and gelu (issue 10's proof of the activation table) against
PyTorch: torch.nn.SiLU, Hardswish and GELU (exact, erf form).

Each activation was added as one row of runtime/snippets/activations.h. This
test checks that the row alone made it a whole activation of the language:

- inference (`nnc run`, check_parity): in one network the activation is an
  epilogue fused into a convolution and into a linear layer, the activation of
  a prologue (batchnorm -> act -> conv, fused into the conv at -O2) and of a
  residual epilogue (conv + add -> act); -O0 runs each as its own kernel, and
  both must match PyTorch within 1e-5 of the largest output;
- training (`nnc --emit=train`, runtime/train_abi.h): one SGD step with lr = 1
  and no momentum from the same weights on the same batch, in training mode
  (batch statistics); w0 - w1 is the gradient, compared with autograd's
  per tensor within 1e-4 of its largest element, and the losses within 1e-5.
  The activation after the batchnorm cannot run fused with it (its backward
  needs its input), and the test covers that the training fusion left it alone.

Values at the kinks and tails (hardswish at +-3, large |x| for silu and gelu)
are checked element by element against the definitions in float64: within
2e-6, and no further from them than torch's own float32 result (gelu uses
erfc where torch's 1 + erf cancels: at x = -3 torch is 4e-5 off, nnc 1e-6)."""
import math
import os
import tempfile
import unittest

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from nncutil import check_parity, nnc, rel_err, st_write, torch_state_to_safetensors
from test_train_parity import Cfg, Module

ACTS = {"silu": nn.SiLU(), "hardswish": nn.Hardswish(), "gelu": nn.GELU()}

NET = """network acts(classes = 4) {{
    input image: [3, 8, 8]
    x = image |> conv(6, 3, pad: 1) as c1 |> {a}
    y = x |> batchnorm as bn |> {a} |> conv(6, 1) as c2
    w = y |> conv(6, 1) as c3 |> batchnorm as bn2 |> {a} |> conv(6, 1) as c4
    z = (x + w) |> {a} |> maxpool(2)
    output logits = z |> flatten |> linear(classes) as fc |> {a}
}}
"""


class Acts(nn.Module):
    def __init__(self, act):
        super().__init__()
        self.act = act
        self.c1 = nn.Conv2d(3, 6, 3, padding=1)
        self.bn = nn.BatchNorm2d(6)
        self.c2 = nn.Conv2d(6, 6, 1)
        self.c3 = nn.Conv2d(6, 6, 1)
        self.bn2 = nn.BatchNorm2d(6)
        self.c4 = nn.Conv2d(6, 6, 1)
        self.fc = nn.Linear(96, 4)

    def forward(self, image):
        x = self.act(self.c1(image))
        y = self.c2(self.act(self.bn(x)))
        w = self.c4(self.act(self.bn2(self.c3(y))))
        z = F.max_pool2d(self.act(x + w), 2)
        return self.act(self.fc(torch.flatten(z, 1)))


def make(name, seed):
    torch.manual_seed(seed)
    m = Acts(ACTS[name])
    with torch.no_grad():  # batchnorm statistics and affine map away from the identity
        for bn in (m.bn, m.bn2):
            bn.weight.uniform_(0.5, 1.5)
            bn.bias.uniform_(-0.5, 0.5)
            bn.running_mean.uniform_(-0.5, 0.5)
            bn.running_var.uniform_(0.5, 2.0)
    return m


class Activations(unittest.TestCase):
    def test_inference_matches_torch(self):
        for name in ACTS:
            with self.subTest(act=name), tempfile.TemporaryDirectory() as d:
                model = os.path.join(d, "acts.net")
                with open(model, "w") as f:
                    f.write(NET.format(a=name))
                ir = nnc(model, "--emit=ir", "-O2").stdout
                self.assertRegex(ir, rf"conv2d\(.*\) .*k=3x3.* {name} ", "the activation fused into the conv")
                self.assertRegex(ir, rf"pro {name} ", "the batchnorm and activation in front of c2: a prologue")
                self.assertRegex(ir, rf"\+res {name} ", "the add and activation after c4: a residual epilogue")
                self.assertRegex(ir, rf"linear\(.*\) out=4 {name}", "the activation fused into the linear layer")
                m = make(name, 7).eval()
                x = np.random.default_rng(3).standard_normal((3, 3, 8, 8)).astype(np.float32) * 3
                errs = check_parity(self, model, m, {"image": x}, d, tol=1e-5)
                print(f"{name}: inference rel err {errs['logits']:.2e}")

    def test_training_step_matches_autograd(self):
        for name in ACTS:
            with self.subTest(act=name), tempfile.TemporaryDirectory() as d:
                model = os.path.join(d, "acts.net")
                with open(model, "w") as f:
                    f.write(NET.format(a=name))
                # conv -> batchnorm -> act trains fused only when the act's backward can read its output: here
                # the batchnorm takes the conv's sums, and the activation stays a node of its own
                dump = nnc(model, "--emit=train", "--print-after=fuse_bn_train", "-o", os.path.join(d, "t.c")).stderr
                bn2 = next(line for line in dump.splitlines() if "batchnorm(" in line and ":5:" in line)
                self.assertIn(" fused ", bn2 + " ")
                self.assertNotIn(f"fused {name}", bn2)
                self.assertIn(f"= {name}(%{bn2.split('=')[0].strip()[1:]})", dump)
                m = make(name, 11).train()
                w = os.path.join(d, "w.safetensors")
                torch_state_to_safetensors(m, w)
                rng = np.random.default_rng(5)
                x = rng.standard_normal((4, 3, 8, 8)).astype(np.float32) * 2
                y = np.array([0, 3, 1, 2], dtype=np.int32)
                mod = Module(d, model, 4)
                t = mod.create(w, Cfg(0, 0.0, 0.0, 0, 0.9, 0.999, 1e-8, 0, 0.0, 0.0, 0))
                w0 = mod.tensors(t)
                loss, _ = mod.step(t, x, y, 1.0)
                w1 = mod.tensors(t)
                mod.fn("destroy")(t)
                out = m(torch.from_numpy(x))
                ref = F.cross_entropy(out, torch.from_numpy(y).long())
                ref.backward()
                self.assertLessEqual(abs(loss - ref.item()) / abs(ref.item()), 1e-5, f"{name}: loss")
                worst = 0.0
                # c2's and c3's biases shift channels that bn2 (batch statistics) takes the mean of: their true
                # gradient is 0, and both sides hold rounding noise; so errors are relative to the tensor's
                # largest gradient or, if larger, 1e-2 of the network's
                scale = max(float(p.grad.abs().max()) for p in m.parameters())
                for pname, p in m.named_parameters():
                    g, want = w0[pname][1] - w1[pname][1], p.grad.numpy().reshape(-1)
                    e = float(np.max(np.abs(g - want))) / max(float(np.max(np.abs(want))), 1e-2 * scale)
                    worst = max(worst, e)
                    self.assertLessEqual(e, 1e-4, f"{name}: gradient of {pname}")
                for buf in ("bn.running_mean", "bn.running_var"):  # the batch statistics reached the buffers
                    self.assertLessEqual(rel_err(w1[buf][1], dict(m.named_buffers())[buf].numpy()), 1e-5, buf)
                print(f"{name}: training loss {loss:.6f} (torch {ref.item():.6f}), worst gradient rel err {worst:.2e}")

    def test_relu_trains_fused(self):
        """The control for the training test's claim: relu's backward reads its output, so it joins."""
        with tempfile.TemporaryDirectory() as d:
            model = os.path.join(d, "acts.net")
            with open(model, "w") as f:
                f.write(NET.format(a="relu"))
            dump = nnc(model, "--emit=train", "--print-after=fuse_bn_train", "-o", os.path.join(d, "t.c")).stderr
            self.assertRegex(dump, r"batchnorm\(.*fused relu")
            self.assertRegex(dump, r"conv2d\(.*\+bn_stats")

    def test_tails_and_kinks(self):
        """The kernels element by element: large |x|, hardswish's kinks, zero."""
        with tempfile.TemporaryDirectory() as d:
            v = np.array([-100, -20, -8, -3.0001, -3, -2.9999, -1, -0.0, 0, 1e-6, 1, 2.9999, 3, 3.0001, 8, 20, 100],
                         dtype=np.float32)
            for name, f in ACTS.items():
                model = os.path.join(d, f"{name}.net")
                with open(model, "w") as fh:
                    fh.write(f"network one {{\n    input x: [{len(v)}]\n    output y = x |> {name}\n}}\n")
                xin, yout, w = os.path.join(d, "x.npy"), os.path.join(d, "y.npy"), os.path.join(d, "none.safetensors")
                np.save(xin, v[None, :])
                st_write(w, {})  # the network has no parameters; nnc run asks for a weights file all the same
                nnc("run", model, "--weights", w, "--input", f"x={xin}", "--output", f"y={yout}")
                got = np.load(yout)[0]
                if name == "gelu":  # x Phi(x), by erfc: torch's float64 1 + erf cancels too (2% off at x = -8)
                    exact = np.array([0.5 * float(t) * math.erfc(-float(t) / math.sqrt(2.0)) for t in v])
                else:
                    exact = f(torch.from_numpy(v).double()).numpy()  # the definition, in float64
                torch32 = f(torch.from_numpy(v)).numpy()
                np.testing.assert_allclose(got, exact, rtol=2e-6, atol=1e-30, err_msg=name)
                # no further from the definition than torch's own float32, give or take an ulp
                self.assertTrue(np.all(np.abs(got - exact) <= np.abs(torch32 - exact) + 1.2e-7 * np.abs(exact) + 1e-30),
                                f"{name}: {got} vs torch {torch32}")


if __name__ == "__main__":
    unittest.main()
