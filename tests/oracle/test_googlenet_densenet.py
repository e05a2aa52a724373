"""GoogLeNet (Inception v1) and DenseNet-121/169/201 against torchvision (issue 3).

Each model is built by torchvision (weights=None: nothing is downloaded), put in
eval mode, its batchnorm statistics and affine parameters randomized (fresh
batchnorm is almost the identity, which would hide a wrong eps, a swapped
mean/var or a missing layer), saved as safetensors and loaded by name into
`nnc run` on a random [1, 3, 224, 224] image. Logits must be within
1e-4 x max|reference|; the learnable parameter count and the MACs of
`nnc --stats` must equal torch's; nnc's parameter names must be exactly the
state_dict keys. GoogLeNet's auxiliary classifiers (outputs aux1, aux2 with
`aux = true`, the default) are compared with torchvision's aux heads run in eval
mode on the activations of inception4a and inception4d, caught with forward
hooks; torchvision's eval forward leaves the aux heads out, so its MACs are
compared with `--set aux=false`, and its parameter count (which includes them)
with aux on."""
import os
import tempfile
import time
import unittest

import numpy as np
import torch
import torch.nn as nn
import torchvision

from nncutil import SRC, check_parity, nnc, nnc_stats, rel_err, st_read, torch_macs, torch_param_count, \
    torch_state_to_safetensors

MODELS = os.path.join(SRC, "models")
TOL = 1e-4


def randomize_batchnorm(module, seed):
    """Gives every BatchNorm a random running mean/var, weight and bias, so that
    batchnorm is far from the identity (and a wrong eps or a swapped statistic shows)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in module.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                n = m.num_features
                m.running_mean.copy_(torch.randn(n, generator=g) * 0.2)
                m.running_var.copy_(torch.rand(n, generator=g) * 1.5 + 0.25)
                m.weight.copy_(torch.rand(n, generator=g) + 0.5)
                m.bias.copy_(torch.randn(n, generator=g) * 0.2)
    return module


def image(seed):
    return np.random.default_rng(seed).standard_normal((1, 3, 224, 224)).astype(np.float32)


class Zoo(unittest.TestCase):
    """Shared set-up: a temporary directory and a report of errors and timings."""

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory()
        torch.manual_seed(0)
        torch.set_num_threads(max(1, os.cpu_count() or 1))

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def workdir(self, name):
        d = os.path.join(self.tmp.name, name)
        os.makedirs(d, exist_ok=True)
        return d

    def check_names(self, model_path, module, workdir, *extra):
        """nnc's parameter names (from `nnc init`) are exactly the state_dict keys,
        with the same shapes (num_batches_tracked aside)."""
        w = os.path.join(workdir, "init.safetensors")
        nnc("init", model_path, *extra, "-o", w)
        got = {k: v.shape for k, v in st_read(w).items()}
        os.remove(w)
        want = {k: tuple(v.shape) for k, v in module.state_dict().items() if not k.endswith("num_batches_tracked")}
        self.assertEqual(sorted(set(got) - set(want)), [], "names nnc has that torch does not")
        self.assertEqual(sorted(set(want) - set(got)), [], "names torch has that nnc does not")
        for k in want:
            self.assertEqual(got[k], want[k], k)


class DenseNetParity(Zoo):
    def parity(self, depth, seed):
        t0 = time.time()
        module = getattr(torchvision.models, f"densenet{depth}")(weights=None).eval()
        randomize_batchnorm(module, seed)
        path = os.path.join(MODELS, f"densenet{depth}.net")
        wd = self.workdir(f"densenet{depth}")
        self.check_names(path, module, wd)
        errs = check_parity(self, path, module, {"image": image(seed)}, wd, tol=TOL)
        print(f"\ndensenet{depth}: rel err {errs['logits']:.2e}, params {torch_param_count(module)}, "
              f"{time.time() - t0:.1f} s", flush=True)

    def test_densenet121(self):
        self.parity(121, 121)

    def test_densenet169(self):
        self.parity(169, 169)

    def test_densenet201(self):
        self.parity(201, 201)


class GoogLeNetParity(Zoo):
    def test_googlenet(self):
        t0 = time.time()
        path = os.path.join(MODELS, "googlenet.net")
        module = torchvision.models.googlenet(weights=None, aux_logits=True, init_weights=True).eval()
        self.assertFalse(module.transform_input)
        randomize_batchnorm(module, 1)
        wd = self.workdir("googlenet")
        self.check_names(path, module, wd)

        # Reference: eval forward for the logits; the aux heads (eval mode: dropout
        # is the identity) on the outputs of inception4a and inception4d.
        x = image(1)
        caught = {}
        hooks = [getattr(module, n).register_forward_hook(lambda m, i, o, n=n: caught.__setitem__(n, o))
                 for n in ("inception4a", "inception4d")]
        with torch.no_grad():
            ref = {"logits": module(torch.from_numpy(x))}
            ref["aux1"] = module.aux1(caught["inception4a"])
            ref["aux2"] = module.aux2(caught["inception4d"])
        for h in hooks:
            h.remove()

        w = os.path.join(wd, "weights.safetensors")
        torch_state_to_safetensors(module, w)
        np.save(os.path.join(wd, "x.npy"), x)
        args = ["run", path, "--weights", w, "--input", f"image={os.path.join(wd, 'x.npy')}"]
        for name in ref:
            args += ["--output", f"{name}={os.path.join(wd, name + '.npy')}"]
        nnc(*args)
        errs = {}
        for name, r in ref.items():
            got = np.load(os.path.join(wd, name + ".npy"))
            self.assertEqual(got.shape, (1, 1000), name)
            errs[name] = rel_err(got, r.numpy())
            self.assertLessEqual(errs[name], TOL, name)

        # Without the aux heads: the same logits, only the main output.
        nnc("run", path, "--set", "aux=false", "--weights", w, "--input", f"image={os.path.join(wd, 'x.npy')}",
            "--output", f"logits={os.path.join(wd, 'noaux.npy')}")
        self.assertLessEqual(rel_err(np.load(os.path.join(wd, "noaux.npy")), ref["logits"].numpy()), TOL)
        p = nnc("run", path, "--set", "aux=false", "--weights", w, "--input", f"image={os.path.join(wd, 'x.npy')}",
                "--output", f"aux1={os.path.join(wd, 'none.npy')}", check=False)
        self.assertEqual(p.returncode, 1, p.stderr)
        self.assertIn("aux1", p.stderr)

        # Parameters include the aux heads (as torchvision counts them); the
        # MACs of torchvision's eval forward do not.
        params = torch_param_count(module)
        self.assertEqual(nnc_stats(path)["params"], params)
        macs = torch_macs(module, torch.from_numpy(x))
        self.assertEqual(nnc_stats(path, "--set", "aux=false")["macs"], macs)
        print(f"\ngooglenet: rel err " + ", ".join(f"{k} {v:.2e}" for k, v in errs.items()) +
              f", params {params}, macs {macs}, {time.time() - t0:.1f} s", flush=True)


if __name__ == "__main__":
    unittest.main(verbosity=2)
