"""The training kernels of runtime/snippets/grad_kernels.c against torch autograd.

tests/unit/test_grad_kernels.c checks every backward against finite
differences of references written from the definitions; this file checks the
definitions themselves where PyTorch has choices of its own: which of tied
maxima receives the gradient, the divisor of padded and ceil-mode average
pooling, batchnorm's biased/unbiased variances and momentum, the
label-smoothing formula of CrossEntropyLoss, and parameter layouts of grouped
and transposed convolutions. A small C harness includes kernels.c and
grad_kernels.c (as generated training code pastes them) and is loaded with
ctypes.

Tolerance: rel_err (max |got - ref| / max |ref|) <= 1e-5; both sides compute
in fp32 and differ only in summation order, over at most a few hundred terms.
Routing of tied maxima is compared for exact equality."""
import ctypes
import os
import subprocess
import tempfile
import unittest

import numpy as np
import torch
import torch.nn.functional as F

from nncutil import SRC, rel_err

HARNESS = r"""
#include <stdlib.h>
#include "kernels.c"
#include "grad_kernels.c"

/* a: n c h w k oh ow kh kw sh sw ph pw dh dw groups */
void h_conv_backward(int transposed, const int *a, const float *x, const float *w, const float *dy, float *dx,
                     float *dw, float *db);
void h_conv_backward(int transposed, const int *a, const float *x, const float *w, const float *dy, float *dx,
                     float *dw, float *db)
{
    size_t s = transposed ? nnc_conv_transpose2d_backward_scratch(a[2], a[3], a[4], a[7], a[8], a[15])
                          : nnc_conv2d_backward_scratch(a[1], a[4], a[7], a[8], a[5], a[6], a[15]);
    float *scratch = malloc((s ? s : 1) * sizeof(float));
    nnc_ctx ctx;  /* two threads: the split kernels against torch */
    nnc_ctx_init(&ctx, 2);
    if (transposed)
        nnc_conv_transpose2d_backward(&ctx, a[0], x, a[1], a[2], a[3], w, dy, a[4], a[5], a[6], a[7], a[8], a[9], a[10],
                                      a[11], a[12], a[13], a[14], a[15], dx, dw, db, scratch);
    else
        nnc_conv2d_backward(&ctx, a[0], x, a[1], a[2], a[3], w, dy, a[4], a[5], a[6], a[7], a[8], a[9], a[10],
                            a[11], a[12], a[13], a[14], a[15], dx, dw, db, scratch);
    nnc_ctx_stop(&ctx);
    free(scratch);
}

void h_linear_backward(int n, const float *x, int in, const float *w, const float *dy, int out, float *dx,
                       float *dw, float *db);
void h_linear_backward(int n, const float *x, int in, const float *w, const float *dy, int out, float *dx,
                       float *dw, float *db)
{
    nnc_ctx ctx;
    nnc_ctx_init(&ctx, 2);
    nnc_linear_backward(&ctx, n, x, in, w, dy, out, dx, dw, db);
    nnc_ctx_stop(&ctx);
}

/* a: n c h w oh ow kh kw sh sw ph pw dh dw count_include_pad */
void h_pool_backward(int avg, const int *a, const float *x, const float *dy, float *dx);
void h_pool_backward(int avg, const int *a, const float *x, const float *dy, float *dx)
{
    nnc_ctx ctx;
    nnc_ctx_init(&ctx, 2);
    if (avg)
        nnc_avgpool2d_backward(a[0], dy, a[1], a[2], a[3], a[4], a[5], a[6], a[7], a[8], a[9], a[10], a[11], a[14],
                               dx);
    else
        nnc_maxpool2d_backward(&ctx, a[0], x, a[1], a[2], a[3], dy, a[4], a[5], a[6], a[7], a[8], a[9], a[10],
                               a[11], a[12], a[13], dx);
    nnc_ctx_stop(&ctx);
}

void h_bn(int n, const float *x, int c, long hw, const float *gamma, const float *beta, float eps, float momentum,
          float *rm, float *rv, float *y, const float *dy, float *dx, float *dgamma, float *dbeta);
void h_bn(int n, const float *x, int c, long hw, const float *gamma, const float *beta, float eps, float momentum,
          float *rm, float *rv, float *y, const float *dy, float *dx, float *dgamma, float *dbeta)
{
    float *mean = malloc((size_t)c * sizeof(float)), *invstd = malloc((size_t)c * sizeof(float));
    nnc_batchnorm_train(n, x, c, hw, gamma, beta, eps, momentum, rm, rv, y, mean, invstd);
    nnc_batchnorm_backward(n, x, c, hw, gamma, mean, invstd, dy, dx, dgamma, dbeta);
    free(mean), free(invstd);
}

float h_cross_entropy(int n, const float *z, int c, const int *labels, float eps, float *dz);
float h_cross_entropy(int n, const float *z, int c, const int *labels, float eps, float *dz)
{
    return nnc_cross_entropy(n, z, c, labels, eps, dz);
}

float h_bce(size_t count, const float *x, const float *t, float *dx);
float h_bce(size_t count, const float *x, const float *t, float *dx)
{
    return nnc_bce_with_logits(count, x, t, dx);
}

void h_lrn_backward(int n, const float *x, int c, long hw, const float *dy, int size, float alpha, float beta,
                    float k, float *dx);
void h_lrn_backward(int n, const float *x, int c, long hw, const float *dy, int size, float alpha, float beta,
                    float k, float *dx)
{
    float *scratch = malloc(nnc_lrn_backward_scratch(c) * sizeof(float));
    nnc_lrn_backward(n, x, c, hw, dy, size, alpha, beta, k, dx, scratch);
    free(scratch);
}
"""

F32P = np.ctypeslib.ndpointer(dtype=np.float32, flags="C_CONTIGUOUS")
I32P = np.ctypeslib.ndpointer(dtype=np.int32, flags="C_CONTIGUOUS")
I, L, Z, FL = ctypes.c_int, ctypes.c_long, ctypes.c_size_t, ctypes.c_float


def build_harness(workdir):
    c = os.path.join(workdir, "harness.c")
    so = os.path.join(workdir, "harness.so")
    with open(c, "w") as f:
        f.write(HARNESS)
    cmd = ["cc", "-O2", "-std=c99", "-shared", "-fPIC", "-Wall", "-Wextra", "-Werror", "-pedantic", "-Wshadow",
           "-Wstrict-prototypes", "-Wmissing-prototypes", "-I", os.path.join(SRC, "runtime", "snippets"),
           "-DNNC_PAR_MIN_WORK=0", "-pthread", "-o", so, c, "-lm"]
    p = subprocess.run(cmd, capture_output=True, text=True)
    if p.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed:\n{p.stderr}")
    lib = ctypes.CDLL(so)
    lib.h_conv_backward.argtypes = [I, I32P, F32P, F32P, F32P, F32P, F32P, F32P]
    lib.h_linear_backward.argtypes = [I, F32P, I, F32P, F32P, I, F32P, F32P, F32P]
    lib.h_pool_backward.argtypes = [I, I32P, F32P, F32P, F32P]
    lib.h_bn.argtypes = [I, F32P, I, L, F32P, F32P, FL, FL, F32P, F32P, F32P, F32P, F32P, F32P, F32P]
    lib.h_cross_entropy.argtypes = [I, F32P, I, I32P, FL, F32P]
    lib.h_cross_entropy.restype = FL
    lib.h_bce.argtypes = [Z, F32P, F32P, F32P]
    lib.h_bce.restype = FL
    lib.h_lrn_backward.argtypes = [I, F32P, I, L, F32P, I, FL, FL, FL, F32P]
    for fn in (lib.h_conv_backward, lib.h_linear_backward, lib.h_pool_backward, lib.h_bn, lib.h_lrn_backward):
        fn.restype = None
    return lib


def f32(t):
    return np.ascontiguousarray(t.detach().numpy(), dtype=np.float32)


def grads_of(y, dy, *leaves):
    """The gradients of sum(y * dy) with respect to leaves, as numpy arrays."""
    gs = torch.autograd.grad(y, leaves, grad_outputs=dy)
    return [f32(g) for g in gs]


class GradKernels(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory()
        cls.lib = build_harness(cls.tmp.name)

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def setUp(self):
        torch.manual_seed(0)

    def close(self, got, ref, what, tol=1e-5):
        e = rel_err(got, ref)
        self.assertLessEqual(e, tol, f"{what}: rel_err {e:g}")

    def test_conv2d_and_transposed(self):
        # n c h w k kh kw s p d groups (stride/pad/dilation given per axis)
        cases = [(2, 4, 9, 8, 6, 3, 3, (2, 1), (1, 0), (1, 2), 2, 0),
                 (1, 3, 7, 7, 6, 3, 3, (2, 2), (1, 1), (1, 1), 3, 1),
                 (2, 6, 5, 6, 4, 1, 1, (1, 1), (0, 0), (1, 1), 2, 0),
                 (2, 2, 4, 5, 3, 4, 2, (3, 2), (1, 0), (1, 1), 1, 2)]
        for n, c, h, w, k, kh, kw, s, p, d, g, opad in cases:
            for transposed in (0, 1):
                x = torch.randn(n, c, h, w, requires_grad=True)
                if transposed:
                    wt = torch.randn(c, k // g, kh, kw, requires_grad=True)
                    b = torch.randn(k, requires_grad=True)
                    op = (opad if opad < max(s[0], d[0]) else 0, opad if opad < max(s[1], d[1]) else 0)
                    y = F.conv_transpose2d(x, wt, b, s, p, op, g, d)
                else:
                    wt = torch.randn(k, c // g, kh, kw, requires_grad=True)
                    b = torch.randn(k, requires_grad=True)
                    y = F.conv2d(x, wt, b, s, p, d, g)
                dy = torch.randn_like(y)
                rx, rw, rb = grads_of(y, dy, x, wt, b)
                a = np.array([n, c, h, w, k, y.shape[2], y.shape[3], kh, kw, s[0], s[1], p[0], p[1], d[0], d[1], g],
                             dtype=np.int32)
                dx, dw, db = np.zeros_like(rx), np.zeros_like(rw), np.zeros_like(rb)
                self.lib.h_conv_backward(transposed, a, f32(x), f32(wt), f32(dy), dx, dw, db)
                what = f"{'conv_transpose2d' if transposed else 'conv2d'} {a.tolist()}"
                self.close(dx, rx, what + " dx")
                self.close(dw, rw, what + " dw")
                self.close(db, rb, what + " db")

    def test_linear(self):
        x = torch.randn(5, 13, requires_grad=True)
        wt = torch.randn(7, 13, requires_grad=True)
        b = torch.randn(7, requires_grad=True)
        y = F.linear(x, wt, b)
        dy = torch.randn_like(y)
        rx, rw, rb = grads_of(y, dy, x, wt, b)
        dx, dw, db = np.zeros_like(rx), np.zeros_like(rw), np.zeros_like(rb)
        self.lib.h_linear_backward(5, f32(x), 13, f32(wt), f32(dy), 7, dx, dw, db)
        self.close(dx, rx, "linear dx")
        self.close(dw, rw, "linear dw")
        self.close(db, rb, "linear db")

    def test_maxpool_ties(self):
        # small integers: most windows hold tied maxima; dilation, padding and ceil mode
        for (h, w, k, s, p, d, ceil) in [(6, 6, 2, 1, 0, 1, False), (7, 8, 3, 2, 1, 1, True),
                                         (9, 9, 3, 2, 1, 2, False), (5, 7, 2, 2, 1, 1, True)]:
            x = torch.randint(-1, 2, (2, 3, h, w)).float().requires_grad_()
            y = F.max_pool2d(x, k, s, p, d, ceil_mode=ceil)
            dy = torch.randn_like(y)
            (rx,) = grads_of(y, dy, x)
            a = np.array([2, 3, h, w, y.shape[2], y.shape[3], k, k, s, s, p, p, d, d, 0], dtype=np.int32)
            dx = np.zeros_like(rx)
            self.lib.h_pool_backward(0, a, f32(x), f32(dy), dx)
            np.testing.assert_array_equal(dx, rx, f"maxpool2d with ties {a.tolist()}")

    def test_avgpool(self):
        for (h, w, k, s, p, ceil) in [(7, 7, 2, 2, 0, True), (10, 11, 3, 2, 1, True), (6, 5, 3, 1, 1, False)]:
            for cip in (True, False):
                x = torch.randn(2, 2, h, w, requires_grad=True)
                y = F.avg_pool2d(x, k, s, p, ceil_mode=ceil, count_include_pad=cip)
                dy = torch.randn_like(y)
                (rx,) = grads_of(y, dy, x)
                a = np.array([2, 2, h, w, y.shape[2], y.shape[3], k, k, s, s, p, p, 1, 1, int(cip)], dtype=np.int32)
                dx = np.zeros_like(rx)
                self.lib.h_pool_backward(1, a, f32(x), f32(dy), dx)
                self.close(dx, rx, f"avgpool2d {a.tolist()}")

    def test_batchnorm_train(self):
        for shape in [(4, 3, 5, 5), (8, 6), (1, 2, 3, 3)]:
            c = shape[1]
            bn = torch.nn.BatchNorm2d(c) if len(shape) == 4 else torch.nn.BatchNorm1d(c)
            with torch.no_grad():
                bn.weight.uniform_(0.5, 2.0)
                bn.bias.uniform_(-1.0, 1.0)
                bn.running_mean.uniform_(-1.0, 1.0)
                bn.running_var.uniform_(0.5, 2.0)
            rm, rv = f32(bn.running_mean), f32(bn.running_var)
            bn.train()
            x = (torch.randn(*shape) * 2 + 3).requires_grad_()
            y = bn(x)
            dy = torch.randn_like(y)
            rx, rg, rb = grads_of(y, dy, x, bn.weight, bn.bias)
            hw = int(np.prod(shape[2:])) if len(shape) == 4 else 1
            yy = np.zeros(shape, np.float32)
            dx, dg, db = np.zeros_like(rx), np.zeros_like(rg), np.zeros_like(rb)
            self.lib.h_bn(shape[0], f32(x), c, hw, f32(bn.weight), f32(bn.bias), bn.eps, bn.momentum, rm, rv, yy,
                          f32(dy), dx, dg, db)
            self.close(yy, f32(y), f"batchnorm {shape} y")
            self.close(rm, f32(bn.running_mean), f"batchnorm {shape} running_mean", 1e-6)
            self.close(rv, f32(bn.running_var), f"batchnorm {shape} running_var", 1e-6)
            self.close(dx, rx, f"batchnorm {shape} dx", 1e-4)  # dx is a difference of O(1) terms
            self.close(dg, rg, f"batchnorm {shape} dgamma")
            self.close(db, rb, f"batchnorm {shape} dbeta")

    def test_losses(self):
        for eps in (0.0, 0.1, 0.3):
            z = (torch.randn(6, 9) * 4).requires_grad_()
            labels = torch.randint(0, 9, (6,))
            loss = F.cross_entropy(z, labels, label_smoothing=eps)
            (rz,) = grads_of(loss, torch.tensor(1.0), z)
            dz = np.zeros_like(rz)
            got = self.lib.h_cross_entropy(6, f32(z), 9, labels.numpy().astype(np.int32), eps, dz)
            self.assertAlmostEqual(got, loss.item(), delta=1e-5 * max(1.0, abs(loss.item())))
            self.close(dz, rz, f"cross_entropy eps={eps} dlogits")
        x = (torch.randn(4, 5) * 10).requires_grad_()
        t = torch.rand(4, 5)
        loss = F.binary_cross_entropy_with_logits(x, t)
        (rx,) = grads_of(loss, torch.tensor(1.0), x)
        dx = np.zeros_like(rx)
        got = self.lib.h_bce(20, f32(x), f32(t), dx)
        self.assertAlmostEqual(got, loss.item(), delta=1e-5 * max(1.0, abs(loss.item())))
        self.close(dx, rx, "bce_with_logits dx")

    def test_lrn(self):
        for size in (5, 4):
            x = torch.randn(2, 7, 3, 4, requires_grad=True)
            y = F.local_response_norm(x, size, alpha=0.1, beta=0.75, k=2.0)
            dy = torch.randn_like(y)
            (rx,) = grads_of(y, dy, x)
            dx = np.zeros_like(rx)
            self.lib.h_lrn_backward(2, f32(x), 7, 12, f32(dy), size, 0.1, 0.75, 2.0, dx)
            self.close(dx, rx, f"lrn size {size} dx", 1e-4)


if __name__ == "__main__":
    unittest.main(verbosity=2)
