"""ResNet-18/34/50/101/152 and fcn_resnet18 against PyTorch (issue 3).

The reference for models/resnetNN.net is torchvision's resnetNN (weights=None:
nothing is downloaded), for models/fcn_resnet18.net the FCNResNet18 module
below. Each model runs at its real input size, [3, 224, 224]: the module's
state_dict, saved as safetensors, is loaded into `nnc run` by name, with no
mapping; outputs must agree within 1e-4 x max|reference|, and the learnable
parameter count and the MACs must equal `nnc --stats` (check_parity).

Batchnorm is randomized (running statistics, weight and bias): freshly built,
it is the identity (mean 0, variance 1, weight 1, bias 0) and a parity test
would not see a mix-up of its four tensors, or of two batchnorms' tensors."""
import os
import tempfile
import time
import unittest
from collections import OrderedDict

import numpy as np
import torch
import torch.nn as nn
import torchvision

from nncutil import SRC, check_parity, nnc, st_read

DEPTHS = (18, 34, 50, 101, 152)
TIMES = {}


def model_path(name):
    return os.path.join(SRC, "models", f"{name}.net")


def randomize_batchnorm(module, seed):
    """Gives every batchnorm distinct, non-trivial statistics and affine terms."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in module.modules():
            if isinstance(m, nn.BatchNorm2d):
                n = m.num_features
                m.running_mean.copy_(torch.randn(n, generator=g) * 0.1)
                m.running_var.copy_(torch.rand(n, generator=g) + 0.5)   # [0.5, 1.5)
                m.weight.copy_(torch.rand(n, generator=g) + 0.5)        # [0.5, 1.5)
                m.bias.copy_(torch.randn(n, generator=g) * 0.1)
    return module


class FCNResNet18(nn.Module):
    """The reference of models/fcn_resnet18.net: torchvision's resnet18 up to
    layer4 as `backbone` (torchvision's own names, as in its fcn_resnet50), a
    1x1 convolution to the classes, and a transposed convolution (kernel 64,
    stride 32, padding 16, no bias) from H/32 back to H."""

    def __init__(self, classes=21):
        super().__init__()
        r = torchvision.models.resnet18(weights=None)
        self.backbone = nn.Sequential(OrderedDict(list(r.named_children())[:-2]))  # drop avgpool, fc
        self.classifier = nn.Conv2d(512, classes, 1)
        self.upsample = nn.ConvTranspose2d(classes, classes, 64, stride=32, padding=16, bias=False)

    def forward(self, x):
        return self.upsample(self.classifier(self.backbone(x)))


def reference(name):
    if name == "fcn_resnet18":
        module = FCNResNet18()
    else:
        module = getattr(torchvision.models, name)(weights=None)
    return module


class ResNetParity(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        torch.set_num_threads(os.cpu_count() or 1)
        cls.tmp = tempfile.TemporaryDirectory()

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()
        if TIMES:
            print("\n" + "\n".join(f"  {k:<22} {v}" for k, v in TIMES.items()))

    def parity(self, name, batch=1, seed=0, output="logits"):
        t0 = time.time()
        torch.manual_seed(seed)
        module = randomize_batchnorm(reference(name), seed + 1).eval()
        x = np.random.default_rng(seed).standard_normal((batch, 3, 224, 224)).astype(np.float32)
        workdir = os.path.join(self.tmp.name, f"{name}-{batch}")
        errs = check_parity(self, model_path(name), module, {"image": x}, workdir, outputs=(output,))
        TIMES[f"{name} batch {batch}"] = f"rel err {errs[output]:.2e}  {time.time() - t0:.1f} s"
        return errs

    def test_resnet18(self):
        self.parity("resnet18")

    def test_resnet18_batch2(self):
        self.parity("resnet18", batch=2, seed=5)

    def test_resnet34(self):
        self.parity("resnet34")

    def test_resnet50(self):
        self.parity("resnet50")

    def test_resnet101(self):
        self.parity("resnet101")

    def test_resnet152(self):
        self.parity("resnet152")

    def test_fcn_resnet18(self):
        self.parity("fcn_resnet18", output="out")


class ResNetNames(unittest.TestCase):
    """The names and shapes of `nnc init` are exactly the reference's state_dict
    (less num_batches_tracked): nothing missing, nothing extra."""

    def test_state_dict_keys(self):
        with tempfile.TemporaryDirectory() as d:
            for name in ("fcn_resnet18",) + tuple(f"resnet{n}" for n in DEPTHS):
                with self.subTest(name):
                    w = os.path.join(d, f"{name}.safetensors")
                    nnc("init", model_path(name), "--seed", 1, "-o", w)
                    got = {k: v.shape for k, v in st_read(w).items()}
                    os.remove(w)
                    ref = {k: tuple(v.shape) for k, v in reference(name).state_dict().items()
                           if not k.endswith("num_batches_tracked")}
                    self.assertEqual(sorted(got), sorted(ref))
                    self.assertEqual(got, ref)

    def test_nnc_weights_load_into_torchvision(self):
        """The other direction: `nnc init` weights load strictly into torchvision."""
        with tempfile.TemporaryDirectory() as d:
            w = os.path.join(d, "w.safetensors")
            nnc("init", model_path("resnet50"), "--seed", 2, "-o", w)
            module = torchvision.models.resnet50(weights=None)
            missing, unexpected = module.load_state_dict({k: torch.from_numpy(v) for k, v in st_read(w).items()},
                                                         strict=False)
            self.assertEqual([k for k in missing if not k.endswith("num_batches_tracked")], [])
            self.assertEqual(unexpected, [])

    def test_classes(self):
        out = nnc("--stats", model_path("resnet18"), "--set", "classes=10").stdout
        self.assertIn(f"params: {11689512 - 990 * 513}", out)
        out = nnc("--stats", model_path("fcn_resnet18"), "--set", "classes=2").stdout
        module = FCNResNet18(classes=2)
        self.assertIn(f"params: {sum(p.numel() for p in module.parameters())}", out)


if __name__ == "__main__":
    unittest.main(verbosity=2)
