"""MobileNet v1, MobileNet v2 and the DCGAN generator and discriminator
against PyTorch (issue 3).

Each models/*.net file gets the weights of a PyTorch module (its state_dict
saved as safetensors, loaded by name: the .net files carry the module's
parameter names) and the same random batch at the real input size; `nnc run`
must agree within 1e-4 x max|reference|, and `nnc --stats` must report the
module's learnable parameter count and multiply-accumulates (check_parity).
Batchnorm statistics and affine parameters are randomized first: at their
defaults batchnorm is nearly the identity and would prove little.

MobileNet v2 is torchvision's; MobileNet v1 and the DCGAN nets have no
torchvision model, so their references are written here (the DCGAN ones are
the PyTorch DCGAN tutorial's)."""
import os
import sys
import tempfile
import unittest

import numpy as np
import torch
import torch.nn as nn

from nncutil import SRC, check_parity, nnc, st_read


def conv_bn_relu(cin, cout, k, stride=1, groups=1):
    return nn.Sequential(nn.Conv2d(cin, cout, k, stride, (k - 1) // 2, groups=groups, bias=False),
                         nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class DepthwiseSeparable(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.dw = conv_bn_relu(cin, cin, 3, stride, groups=cin)
        self.pw = conv_bn_relu(cin, cout, 1)

    def forward(self, x):
        return self.pw(self.dw(x))


class MobileNetV1(nn.Module):
    """Howard et al. (2017), Table 1, width 1.0; the last depthwise stride is 1."""
    BLOCKS = [(64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2)] + [(512, 1)] * 5 + [(1024, 2), (1024, 1)]

    def __init__(self, classes=1000):
        super().__init__()
        layers, cin = [conv_bn_relu(3, 32, 3, 2)], 32
        for c, s in self.BLOCKS:
            layers.append(DepthwiseSeparable(cin, c, s))
            cin = c
        self.features = nn.Sequential(*layers)
        self.fc = nn.Linear(1024, classes)

    def forward(self, x):
        x = nn.functional.adaptive_avg_pool2d(self.features(x), 1)
        return self.fc(torch.flatten(x, 1))


class Generator(nn.Module):
    """The PyTorch DCGAN tutorial's generator."""

    def __init__(self, nz=100, ngf=64, nc=3):
        super().__init__()
        self.main = nn.Sequential(
            nn.ConvTranspose2d(nz, ngf * 8, 4, 1, 0, bias=False), nn.BatchNorm2d(ngf * 8), nn.ReLU(True),
            nn.ConvTranspose2d(ngf * 8, ngf * 4, 4, 2, 1, bias=False), nn.BatchNorm2d(ngf * 4), nn.ReLU(True),
            nn.ConvTranspose2d(ngf * 4, ngf * 2, 4, 2, 1, bias=False), nn.BatchNorm2d(ngf * 2), nn.ReLU(True),
            nn.ConvTranspose2d(ngf * 2, ngf, 4, 2, 1, bias=False), nn.BatchNorm2d(ngf), nn.ReLU(True),
            nn.ConvTranspose2d(ngf, nc, 4, 2, 1, bias=False), nn.Tanh())

    def forward(self, x):
        return self.main(x)


class Discriminator(nn.Module):
    """The PyTorch DCGAN tutorial's discriminator."""

    def __init__(self, ndf=64, nc=3):
        super().__init__()
        self.main = nn.Sequential(
            nn.Conv2d(nc, ndf, 4, 2, 1, bias=False), nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(ndf, ndf * 2, 4, 2, 1, bias=False), nn.BatchNorm2d(ndf * 2), nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(ndf * 2, ndf * 4, 4, 2, 1, bias=False), nn.BatchNorm2d(ndf * 4), nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(ndf * 4, ndf * 8, 4, 2, 1, bias=False), nn.BatchNorm2d(ndf * 8), nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(ndf * 8, 1, 4, 1, 0, bias=False), nn.Sigmoid())

    def forward(self, x):
        return self.main(x)


def randomize_batchnorm(module, calibration, gen):
    """Batchnorm far from the identity but on the scale of the activations: the
    running statistics are first measured on a calibration batch (so that the
    normalized values stay near unit size through the depth of the net and
    still depend on the input), then shifted and scaled at random, as are the
    affine weight and bias."""
    bns = [m for m in module.modules() if isinstance(m, nn.BatchNorm2d)]
    with torch.no_grad():
        for m in bns:
            m.momentum = 1.0  # running statistics := those of the calibration batch
        module.train()(calibration)
        for m in bns:
            n = m.num_features
            m.momentum = 0.1
            m.running_mean.add_(torch.randn(n, generator=gen) * 0.3 * m.running_var.sqrt())
            m.running_var.mul_(torch.rand(n, generator=gen) * 1.5 + 0.5)
            m.weight.copy_(torch.rand(n, generator=gen) * 1.5 + 0.25)
            m.bias.copy_(torch.randn(n, generator=gen) * 0.3)
    return module.eval()


class Parity(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        torch.manual_seed(0)
        self.gen = torch.Generator().manual_seed(1)
        self.rng = np.random.default_rng(2)

    def tearDown(self):
        self.tmp.cleanup()

    def parity(self, name, module, inputs, output):
        model = os.path.join(SRC, "models", f"{name}.net")
        # the same parameter and buffer names and shapes as the module's state_dict
        w = os.path.join(self.tmp.name, "init.safetensors")
        nnc("init", model, "-o", w)
        ours = {k: v.shape for k, v in st_read(w).items()}
        theirs = {k: tuple(v.shape) for k, v in module.state_dict().items() if not k.endswith("num_batches_tracked")}
        self.assertEqual(ours, theirs)
        x = next(iter(inputs.values()))
        calibration = torch.from_numpy(self.rng.standard_normal((4, *x.shape[1:]), dtype=np.float32))
        errs = check_parity(self, model, randomize_batchnorm(module, calibration, self.gen), inputs, self.tmp.name,
                            outputs=(output,))
        print(f"{name}: max relative error {errs[output]:.2e}", file=sys.stderr, end=" ... ", flush=True)

    def test_mobilenet_v1(self):
        x = self.rng.standard_normal((2, 3, 224, 224), dtype=np.float32)
        self.parity("mobilenet_v1", MobileNetV1(), {"image": x}, "logits")

    def test_mobilenet_v2(self):
        import torchvision
        x = self.rng.standard_normal((2, 3, 224, 224), dtype=np.float32)
        self.parity("mobilenet_v2", torchvision.models.mobilenet_v2(weights=None), {"image": x}, "logits")

    def test_dcgan_generator(self):
        z = self.rng.standard_normal((2, 100, 1, 1), dtype=np.float32)
        self.parity("dcgan_generator", Generator(), {"z": z}, "image")

    def test_dcgan_discriminator(self):
        x = self.rng.uniform(-1, 1, (2, 3, 64, 64)).astype(np.float32)
        self.parity("dcgan_discriminator", Discriminator(), {"image": x}, "score")


if __name__ == "__main__":
    unittest.main(verbosity=2)
