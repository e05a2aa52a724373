"""The optimizers and schedules of runtime/snippets/optim.c against torch.optim.

A small C harness #includes optim.c, is compiled as a shared library (cc -O2
-std=c99 -shared, warnings as errors, -ffp-contract=off so the compiler adds no
FMA of its own) and loaded with ctypes. Each optimizer config runs 20 steps on
three random tensors (1003, 16 and 1 elements: torch's vector loops, their
tails, and a scalar) beside torch.optim with foreach=False, the same gradients
and the same learning rate at every step; parameters and every state tensor
must match.

Tolerances, and why:
  - torch's CPU kernels at ATEN_CPU_CAPABILITY=default do one rounding per
    operation, as optim.c does, so there the result must be bit for bit equal
    (test_bit_exact_at_default_capability reruns this file in a child process
    with that setting and a tolerance of 0);
  - at the machine's own capability (AVX2, AVX-512) torch fuses x + a * y into
    one FMA, one rounding fewer: about an ulp (6e-8 relative) per step, so
    after 20 steps max|got - torch| / max|torch| must be below 1e-6.
Schedules: nnc_lr_at (closed forms) against torch's schedulers stepped as in
training (recursive forms), over 30 epochs, to 1e-12 relative to base_lr (they
differ by double rounding only)."""
import contextlib
import ctypes
import os
import subprocess
import sys
import tempfile
import unittest
import warnings

import numpy as np

EXACT = os.environ.get("NNC_OPTIM_EXACT") == "1"  # the child run at ATEN_CPU_CAPABILITY=default
if EXACT:
    os.environ["ATEN_CPU_CAPABILITY"] = "default"  # before torch is imported

import torch  # noqa: E402

from nncutil import SRC, rel_err  # noqa: E402

OPTIM_C = os.path.join(SRC, "runtime", "snippets", "optim.c")
TOL = 0.0 if EXACT else 1e-6
SCHED_TOL = 1e-12
STEPS = 20
SIZES = (1003, 16, 1)


@contextlib.contextmanager
def quiet_schedulers():
    """SequentialLR steps its next scheduler with an explicit epoch at a milestone,
    which torch 1.13 warns about from inside its own code (unittest resets global
    warning filters, hence a context around each use)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="The epoch parameter in ")
        yield

HARNESS = r"""
#include "optim.c"

int harness_state_floats(int kind, double momentum, int amsgrad);
void harness_step(int kind, double momentum, double dampening, int nesterov, double beta1, double beta2,
                  double eps, int amsgrad, double weight_decay,
                  float *param, const float *grad, float *state, size_t count, long step, double lr);
double harness_lr(int kind, double base_lr, long step_size, double gamma, const long *milestones,
                  size_t n_milestones, long t_max, double eta_min, long warmup, double warmup_start, long t);

static nnc_optim harness_optim(int kind, double momentum, double dampening, int nesterov, double beta1,
                               double beta2, double eps, int amsgrad, double weight_decay)
{
    nnc_optim o;
    o.kind = kind, o.momentum = momentum, o.dampening = dampening, o.nesterov = nesterov;
    o.beta1 = beta1, o.beta2 = beta2, o.eps = eps, o.amsgrad = amsgrad, o.weight_decay = weight_decay;
    return o;
}

int harness_state_floats(int kind, double momentum, int amsgrad)
{
    nnc_optim o = harness_optim(kind, momentum, 0.0, 0, 0.9, 0.999, 1e-8, amsgrad, 0.0);
    return (int)nnc_optim_state_floats(&o);
}

void harness_step(int kind, double momentum, double dampening, int nesterov, double beta1, double beta2,
                  double eps, int amsgrad, double weight_decay,
                  float *param, const float *grad, float *state, size_t count, long step, double lr)
{
    nnc_optim o = harness_optim(kind, momentum, dampening, nesterov, beta1, beta2, eps, amsgrad, weight_decay);
    nnc_optim_step(param, grad, state, count, step, lr, &o);
}

double harness_lr(int kind, double base_lr, long step_size, double gamma, const long *milestones,
                  size_t n_milestones, long t_max, double eta_min, long warmup, double warmup_start, long t)
{
    nnc_lr_schedule s;
    s.kind = kind, s.base_lr = base_lr, s.step_size = step_size, s.gamma = gamma;
    s.milestones = milestones, s.n_milestones = n_milestones, s.t_max = t_max, s.eta_min = eta_min;
    s.warmup = warmup, s.warmup_start = warmup_start;
    return nnc_lr_at(&s, t);
}
"""

SGD, ADAM, ADAMW = 0, 1, 2                          # NNC_OPTIM_*
CONSTANT, STEP, MULTISTEP, COSINE = 0, 1, 2, 3      # NNC_LR_*

F32P = np.ctypeslib.ndpointer(dtype=np.float32, flags="C_CONTIGUOUS")
I64P = np.ctypeslib.ndpointer(dtype=np.int64, flags="C_CONTIGUOUS")


def build_harness(workdir):
    c = os.path.join(workdir, "harness.c")
    so = os.path.join(workdir, "harness.so")
    with open(c, "w") as f:
        f.write(HARNESS)
    cmd = ["cc", "-O2", "-std=c99", "-shared", "-fPIC", "-ffp-contract=off", "-Wall", "-Wextra", "-Werror",
           "-pedantic", "-Wshadow", "-Wstrict-prototypes", "-Wmissing-prototypes",
           "-I", os.path.dirname(OPTIM_C), "-o", so, c, "-lm"]
    p = subprocess.run(cmd, capture_output=True, text=True)
    if p.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed:\n{p.stderr}")
    lib = ctypes.CDLL(so)
    lib.harness_state_floats.argtypes = [ctypes.c_int, ctypes.c_double, ctypes.c_int]
    lib.harness_state_floats.restype = ctypes.c_int
    lib.harness_step.argtypes = [ctypes.c_int, ctypes.c_double, ctypes.c_double, ctypes.c_int, ctypes.c_double,
                                 ctypes.c_double, ctypes.c_double, ctypes.c_int, ctypes.c_double,
                                 F32P, F32P, F32P, ctypes.c_size_t, ctypes.c_long, ctypes.c_double]
    lib.harness_step.restype = None
    lib.harness_lr.argtypes = [ctypes.c_int, ctypes.c_double, ctypes.c_long, ctypes.c_double, I64P,
                               ctypes.c_size_t, ctypes.c_long, ctypes.c_double, ctypes.c_long, ctypes.c_double,
                               ctypes.c_long]
    lib.harness_lr.restype = ctypes.c_double
    return lib


# An optimizer config: torch class and keyword arguments; the C side reads the same values.
def sgd(**kw):
    return ("SGD", SGD, kw)


def adam(**kw):
    return ("Adam", ADAM, kw)


def adamw(**kw):
    return ("AdamW", ADAMW, kw)


OPTIM_CONFIGS = [
    sgd(lr=0.1),
    sgd(lr=0.1, weight_decay=1e-2),
    sgd(lr=0.05, momentum=0.9),
    sgd(lr=0.05, momentum=0.9, dampening=0.1),
    sgd(lr=0.05, momentum=0.9, dampening=0.5, weight_decay=5e-4),
    sgd(lr=0.05, momentum=0.9, nesterov=True),
    sgd(lr=0.05, momentum=0.8, nesterov=True, weight_decay=1e-3),
    sgd(lr=0.3, momentum=0.99, weight_decay=0.1),
    adam(lr=1e-3),
    adam(lr=1e-2, betas=(0.8, 0.99), eps=1e-6),
    adam(lr=1e-3, weight_decay=1e-2),
    adam(lr=1e-3, amsgrad=True),
    adam(lr=3e-3, betas=(0.5, 0.9), weight_decay=0.1, amsgrad=True),
    adamw(lr=1e-3),
    adamw(lr=1e-2, weight_decay=0.1),
    adamw(lr=1e-3, betas=(0.9, 0.95), eps=1e-5, amsgrad=True),
    adamw(lr=1e-3, weight_decay=0.0),
]

# Torch's state tensors, in optim.c's state order.
STATE_KEYS = {SGD: ["momentum_buffer"], ADAM: ["exp_avg", "exp_avg_sq", "max_exp_avg_sq"],
              ADAMW: ["exp_avg", "exp_avg_sq", "max_exp_avg_sq"]}


def c_hyper(kind, kw):
    """harness_step's hyperparameter arguments, torch's defaults where kw is silent."""
    betas = kw.get("betas", (0.9, 0.999))
    wd = kw.get("weight_decay", 1e-2 if kind == ADAMW else 0.0)
    return (kind, kw.get("momentum", 0.0), kw.get("dampening", 0.0), int(kw.get("nesterov", False)),
            betas[0], betas[1], kw.get("eps", 1e-8), int(kw.get("amsgrad", False)), wd)


class OptimParity(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory()
        cls.lib = build_harness(cls.tmp.name)

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def run_both(self, name, kind, kw, lrs, seed):
        """Runs len(lrs) steps of one config in C and in torch; returns the worst relative error."""
        rng = np.random.default_rng(seed)
        params0 = [rng.standard_normal(n).astype(np.float32) for n in SIZES]
        grads = [[(rng.standard_normal(n) * rng.choice([1e-3, 1.0, 30.0])).astype(np.float32) for n in SIZES]
                 for _ in lrs]
        hyper = c_hyper(kind, kw)
        per = self.lib.harness_state_floats(kind, hyper[1], hyper[7])
        c_params = [p.copy() for p in params0]
        c_state = [np.zeros(max(per, 1) * n, dtype=np.float32) for n in SIZES]

        t_params = [torch.nn.Parameter(torch.from_numpy(p.copy())) for p in params0]
        opt = getattr(torch.optim, name)(t_params, **kw, foreach=False)
        for step, lr in enumerate(lrs, start=1):
            for group in opt.param_groups:
                group["lr"] = lr
            for p, g in zip(t_params, grads[step - 1]):
                p.grad = torch.from_numpy(g.copy())
            opt.step()
            for i, n in enumerate(SIZES):
                self.lib.harness_step(*hyper, c_params[i], grads[step - 1][i], c_state[i], n, step, lr)

        what = f"{name}({kw})"
        worst = self.compare(what, c_params, [p.detach().numpy() for p in t_params], "param")
        for k, key in enumerate(STATE_KEYS[kind][:per]):
            states = [opt.state[p] for p in t_params]
            for st in states:
                self.assertIsNotNone(st.get(key), f"{what}: torch has no state {key}")
            worst = max(worst, self.compare(what, [c[k * n:(k + 1) * n] for c, n in zip(c_state, SIZES)],
                                            [st[key].numpy() for st in states], key))
        for key in STATE_KEYS[kind][per:]:
            self.assertIsNone(opt.state[t_params[0]].get(key), f"{what}: torch has state {key}, optim.c none")
        return worst

    def compare(self, what, got, ref, key):
        """The suite's measure over the whole model (the three tensors at once):
        a lone element's own magnitude is no scale, when 0.9 * m + 0.1 * g cancels."""
        err = rel_err(np.concatenate(got), np.concatenate(ref))
        self.assertLessEqual(err, TOL, f"{what}: {key}")
        return err

    def test_optimizers(self):
        worst = 0.0
        for seed, (name, kind, kw) in enumerate(OPTIM_CONFIGS):
            with self.subTest(optimizer=name, **{k: str(v) for k, v in kw.items()}):
                worst = max(worst, self.run_both(name, kind, kw, [kw["lr"]] * STEPS, seed))
        print(f"\noptimizers: worst relative difference {worst:.3g} (tolerance {TOL:g}, "
              f"ATEN_CPU_CAPABILITY={os.environ.get('ATEN_CPU_CAPABILITY', 'unset')})", file=sys.stderr)

    def test_state_floats(self):
        self.assertEqual(self.lib.harness_state_floats(SGD, 0.0, 0), 0)
        self.assertEqual(self.lib.harness_state_floats(SGD, 0.9, 0), 1)
        self.assertEqual(self.lib.harness_state_floats(ADAM, 0.0, 0), 2)
        self.assertEqual(self.lib.harness_state_floats(ADAMW, 0.0, 1), 3)

    def test_recipe_with_schedule(self):
        """A whole recipe: the lr of each step from nnc_lr_at (warm-up then cosine,
        one step per epoch) on the C side, from torch's SequentialLR on torch's."""
        for seed, (name, kind, kw) in enumerate([sgd(lr=0.1, momentum=0.9, nesterov=True, weight_decay=5e-4),
                                                 adamw(lr=1e-3, weight_decay=0.05)]):
            base = kw["lr"]
            params = [torch.nn.Parameter(torch.zeros(1))]
            opt = getattr(torch.optim, name)(params, **kw)
            sched = torch.optim.lr_scheduler.SequentialLR(
                opt, [torch.optim.lr_scheduler.LinearLR(opt, start_factor=0.1, total_iters=5),
                      torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=15, eta_min=base / 100)],
                milestones=[5])
            torch_lrs = []
            with quiet_schedulers():
                for _ in range(STEPS):
                    torch_lrs.append(opt.param_groups[0]["lr"])
                    opt.step()
                    sched.step()
            c_lrs = [self.lib.harness_lr(COSINE, base, 0, 0.0, np.zeros(1, dtype=np.int64), 0, 15, base / 100,
                                         5, 0.1, t) for t in range(STEPS)]
            np.testing.assert_allclose(c_lrs, torch_lrs, rtol=0, atol=SCHED_TOL * base)
            with self.subTest(optimizer=name):
                self.run_both(name, kind, kw, torch_lrs, 100 + seed)


class ScheduleParity(unittest.TestCase):
    EPOCHS = 30

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory()
        cls.lib = build_harness(cls.tmp.name)

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def torch_lrs(self, base, make_main, warmup=0, start=1.0):
        """The lr of epochs 0..EPOCHS-1 under torch, stepped once per epoch as in training."""
        opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=base)
        main = make_main(opt)
        if warmup:
            lin = torch.optim.lr_scheduler.LinearLR(opt, start_factor=start, total_iters=warmup)
            if main is None:
                sched = lin
            else:
                sched = torch.optim.lr_scheduler.SequentialLR(opt, [lin, main], milestones=[warmup])
        else:
            sched = main
        lrs = []
        with quiet_schedulers():
            for _ in range(self.EPOCHS):
                lrs.append(opt.param_groups[0]["lr"])
                opt.step()
                if sched is not None:
                    sched.step()
        return lrs

    def c_lrs(self, kind, base, step_size=0, gamma=0.0, milestones=(), t_max=0, eta_min=0.0, warmup=0, start=1.0):
        ms = np.array(list(milestones) or [0], dtype=np.int64)
        return [self.lib.harness_lr(kind, base, step_size, gamma, ms, len(milestones), t_max, eta_min, warmup,
                                    start, t) for t in range(self.EPOCHS)]

    def check(self, what, c, ref, base):
        np.testing.assert_allclose(c, ref, rtol=0, atol=SCHED_TOL * base, err_msg=what)

    def test_schedules(self):
        S = torch.optim.lr_scheduler
        mains = [
            ("constant", lambda o: None, dict(kind=CONSTANT)),
            ("step", lambda o: S.StepLR(o, step_size=7, gamma=0.5), dict(kind=STEP, step_size=7, gamma=0.5)),
            ("step1", lambda o: S.StepLR(o, step_size=1, gamma=0.9), dict(kind=STEP, step_size=1, gamma=0.9)),
            ("multistep", lambda o: S.MultiStepLR(o, milestones=[3, 10, 10, 22], gamma=0.1),
             dict(kind=MULTISTEP, milestones=[22, 3, 10, 10], gamma=0.1)),
            ("cosine", lambda o: S.CosineAnnealingLR(o, T_max=30), dict(kind=COSINE, t_max=30)),
            ("cosine-short", lambda o: S.CosineAnnealingLR(o, T_max=8, eta_min=1e-4),
             dict(kind=COSINE, t_max=8, eta_min=1e-4)),
        ]
        for base in (0.1, 3e-4):
            for name, make, args in mains:
                for warmup, start in ((0, 1.0), (5, 0.1), (3, 1.0 / 3), (1, 0.5)):
                    what = f"{name} base {base} warmup {warmup} from {start}"
                    with self.subTest(what):
                        ref = self.torch_lrs(base, make, warmup, start)
                        got = self.c_lrs(base=base, warmup=warmup, start=start, **args)
                        self.check(what, got, ref, base)


class BitExact(unittest.TestCase):
    @unittest.skipIf(EXACT, "this is the child run")
    def test_bit_exact_at_default_capability(self):
        """Reruns the optimizer tests with torch's scalar CPU kernels, demanding equality."""
        env = dict(os.environ, NNC_OPTIM_EXACT="1")
        p = subprocess.run([sys.executable, __file__, "OptimParity"], capture_output=True, text=True, env=env)
        self.assertEqual(p.returncode, 0, f"bit-exact run failed:\n{p.stdout}\n{p.stderr}")


if __name__ == "__main__":
    unittest.main()
