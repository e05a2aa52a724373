"""AlexNet and the eight VGGs end to end against torchvision (issue 3).

Each models/<name>.net is checked against torchvision.models.<name>(weights=None)
in eval mode: the torchvision state_dict, saved as safetensors, loads into nnc
by name with no mapping; `nnc run` on a random [1, 3, 224, 224] batch must be
within 1e-4 x max|reference| of torch; the parameters nnc expects are exactly
torchvision's state_dict keys and shapes; `nnc --stats` must report torchvision's
learnable parameter count and MACs (check_parity). Batchnorm running statistics
and affine parameters are randomized, or batchnorm would be the identity and
prove nothing; so are the biases, which torchvision's VGG initializes to 0.

The models are big (VGG-19: 143M parameters, 19.6 GMACs), so each test builds
one model, checks it, and frees it before the next."""
import gc
import os
import re
import tempfile
import time
import unittest

import numpy as np
import torch
import torch.nn as nn
import torchvision

from nncutil import SRC, check_parity, nnc, nnc_stats

MODELS = ("alexnet", "vgg11", "vgg13", "vgg16", "vgg19", "vgg11_bn", "vgg13_bn", "vgg16_bn", "vgg19_bn")
VERBOSE = os.environ.get("NNC_TEST_VERBOSE")


def model_path(name):
    return os.path.join(SRC, "models", f"{name}.net")


def randomize(module, seed):
    """Random biases and batchnorm statistics, reproducibly. Convolution and
    linear weights keep torchvision's init (scaled so that activations neither
    vanish nor blow up over 19 layers); biases ~ U(-0.1, 0.1); batchnorm gets mean ~ N(0, 0.5), var in [0.5, 2], weight in [0.5, 1.5],
    bias ~ N(0, 0.2), so that it is far from the identity."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in module.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                if m.bias is not None:
                    m.bias.copy_((torch.rand(m.bias.shape, generator=g) - 0.5) * 0.2)
            elif isinstance(m, nn.BatchNorm2d):
                m.running_mean.copy_(torch.randn(m.num_features, generator=g) * 0.5)
                m.running_var.copy_(torch.rand(m.num_features, generator=g) * 1.5 + 0.5)
                m.weight.copy_(torch.rand(m.num_features, generator=g) + 0.5)
                m.bias.copy_(torch.randn(m.num_features, generator=g) * 0.2)
    return module


class ZooParity(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.dir = self.tmp.name
        torch.manual_seed(0)

    def tearDown(self):
        self.tmp.cleanup()
        gc.collect()

    def parity(self, name, seed):
        t0 = time.time()
        torch.manual_seed(seed)
        module = randomize(getattr(torchvision.models, name)(weights=None), seed).eval()
        x = np.random.default_rng(seed).standard_normal((1, 3, 224, 224)).astype(np.float32)
        self.check_names(name, module)
        errs = check_parity(self, model_path(name), module, {"image": x}, os.path.join(self.dir, name))
        # check_parity compares with torch_param_count; say it once more in the words of the issue
        self.assertEqual(nnc_stats(model_path(name))["params"], sum(p.numel() for p in module.parameters()))
        if VERBOSE:
            st = nnc_stats(model_path(name))
            print(f"\n  {name}: rel_err {errs['logits']:.2e} params {st['params']} macs {st['macs']} "
                  f"{time.time() - t0:.1f}s", end=" ")
        del module
        gc.collect()

    def check_names(self, name, module):
        """The parameters nnc expects (listed with their shapes in the generated
        header) are exactly torchvision's state_dict, minus num_batches_tracked:
        `nnc run` ignores extra tensors in a weights file, so parity alone would
        not show that no torchvision tensor is left unused."""
        out = os.path.join(self.dir, f"{name}.c")
        nnc(model_path(name), "-o", out)
        with open(os.path.join(self.dir, f"{name}.h")) as f:
            header = f.read()
        got = {m[1]: tuple(int(d) for d in m[2].split(","))
               for m in re.finditer(r"^ \*   (\S+) +\[([0-9, ]+)\] +[0-9]+(?:  \(create only\))?$", header, re.M)}
        ref = {k: tuple(v.shape) for k, v in module.state_dict().items() if not k.endswith("num_batches_tracked")}
        self.assertEqual(got, ref, name)

    def test_alexnet(self):
        self.parity("alexnet", 1)

    def test_vgg11(self):
        self.parity("vgg11", 2)

    def test_vgg13(self):
        self.parity("vgg13", 3)

    def test_vgg16(self):
        self.parity("vgg16", 4)

    def test_vgg19(self):
        self.parity("vgg19", 5)

    def test_vgg11_bn(self):
        self.parity("vgg11_bn", 6)

    def test_vgg13_bn(self):
        self.parity("vgg13_bn", 7)

    def test_vgg16_bn(self):
        self.parity("vgg16_bn", 8)

    def test_vgg19_bn(self):
        self.parity("vgg19_bn", 9)


class ZooFiles(unittest.TestCase):
    def test_vgg_files_share_the_library(self):
        """Each vggNN file is a few lines over models/lib/vgg.net."""
        for name in MODELS[1:]:
            with open(model_path(name)) as f:
                text = f.read()
            self.assertIn('import "lib/vgg.net"', text)
            self.assertLess(len([l for l in text.splitlines() if l.strip() and not l.lstrip().startswith("#")]), 10)


if __name__ == "__main__":
    unittest.main(verbosity=2)
