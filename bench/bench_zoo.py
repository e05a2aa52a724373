#!/usr/bin/python3
"""The zoo timed in nnc, PyTorch eager, frozen TorchScript and ONNX Runtime on
this machine in one run, and one training step and one training epoch in nnc
and PyTorch: the benchmark of docs/performance.md, for anyone to rerun.

    /usr/bin/python3 bench/bench_zoo.py [--quick] [--models lenet5,resnet18] [--batches 1,16]
        [--rounds 3] [--runs N] [--threads 2] [--markdown] [--no-train] [--no-inference]
        [--require-ort] [--nnc build/nnc] [--data /usr/share/datasets/fashion-mnist]

Inference, for every model and batch: nnc's time is what `nnc bench MODEL.net
--batch N --threads T --runs R --warmup 1` prints (the code built as `nnc
run` builds it, its own random weights: the values do not change the time);
PyTorch eager is the torchvision (or oracle-test) module of the same network
in eval mode under no_grad; TorchScript is that module frozen
(torch.jit.freeze of torch.jit.trace, or of torch.jit.script where tracing
fails); ONNX Runtime runs the module exported by torch.onnx, all graph
optimizations on, in one node process per model and batch (bench/ort/
ort_serve.js). Everyone gets T threads (2 by default: the cores of the
development machine). The contenders take turns round by round (--rounds),
so a slow phase of a shared machine falls on all of them alike; each turn is
a warm-up call and R timed calls. The table gives, per contender, the median
of its rounds' medians and the lowest and highest single call, and the ratios
of the medians (below 1: nnc is faster).

Training, against PyTorch: one step (forward, cross-entropy, backward, plain
SGD update, as `nnc bench --train` times it) of LeNet-5 at batch 64 on
Fashion-MNIST-shaped input and of the CIFAR ResNet-18 at batch 64; and the
images per second of one epoch of LeNet-5 on Fashion-MNIST, `nnc train`
(which reports its own rate, the test evaluation left out) against a PyTorch
loop doing the same epoch: batch 64, shuffled, SGD with momentum 0.9, the
loss and accuracy summed as nnc does. Both sides take turns here too.

R, unless --runs gives it: enough calls to fill about a second per turn
(from the fastest of three timed PyTorch eager calls), at least 3 and at most
200. --quick: lenet5 and mobilenet_v2, 2 rounds, shorter turns, the LeNet-5
step and epoch only. Time, on the 2-core development machine while other
builds kept its load average at 5-9: lenet5, resnet18 and mobilenet_v2 at
batch 1 and 16 with both training tables, 20 minutes (the epochs about 6).
The whole zoo has not been timed in one run yet: its four large models add
the most, and the under-30-minutes aim assumes a quiet machine.
"""
import argparse
import datetime
import gzip
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

ZOO = ["lenet5", "alexnet", "vgg16", "googlenet", "resnet18", "resnet50", "densenet121", "mobilenet_v2"]
QUICK_MODELS = ["lenet5", "mobilenet_v2"]
TRAIN_MODELS = ["lenet5", "resnet18_cifar"]
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class BenchError(Exception):
    """A problem the user can fix, reported in one line, no traceback."""


def log(msg):
    """Progress, on standard error: standard output holds only the tables."""
    print(msg, file=sys.stderr, flush=True)


def csv_list(kind):
    def parse(s):
        items = [x.strip() for x in s.split(",") if x.strip()]
        if not items:
            raise argparse.ArgumentTypeError(f"{kind}: a comma-separated list, got '{s}'")
        return items
    return parse


def batch_list(s):
    out = []
    for x in csv_list("--batches")(s):
        if not x.isdigit() or int(x) < 1:
            raise argparse.ArgumentTypeError(f"--batches takes whole numbers >= 1, got '{x}'")
        out.append(int(x))
    return out


def positive(s):
    if not s.isdigit() or int(s) < 1:
        raise argparse.ArgumentTypeError(f"needs a whole number >= 1, got '{s}'")
    return int(s)


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description="nnc against PyTorch, TorchScript and ONNX Runtime on the zoo, "
                                             "taking turns round by round; see the top of this file.")
    ap.add_argument("--nnc", default=os.path.join(ROOT, "build", "nnc"), help="the nnc binary (default build/nnc)")
    ap.add_argument("--models", type=csv_list("--models"), help=f"inference models (default: {','.join(ZOO)})")
    ap.add_argument("--batches", type=batch_list, default=[1, 16], help="inference batch sizes (default 1,16)")
    ap.add_argument("--rounds", type=positive, help="turns each contender takes (default 3; --quick 2)")
    ap.add_argument("--runs", type=positive, help="timed calls per turn (default: about a second's worth)")
    ap.add_argument("--threads", type=positive, default=2, help="threads for every contender (default 2)")
    ap.add_argument("--quick", action="store_true", help="a smoke run: fewer models, rounds and runs")
    ap.add_argument("--markdown", action="store_true", help="print the tables as markdown (docs/performance.md)")
    ap.add_argument("--no-inference", action="store_true", help="leave the inference table out")
    ap.add_argument("--no-train", action="store_true", help="leave the training tables out")
    ap.add_argument("--require-ort", action="store_true", help="fail when ONNX Runtime is not installed")
    ap.add_argument("--data", default="/usr/share/datasets/fashion-mnist",
                    help="Fashion-MNIST (IDX files) for the epoch (default /usr/share/datasets/fashion-mnist)")
    a = ap.parse_args(argv)
    if a.models:
        unknown = [m for m in a.models if not os.path.exists(os.path.join(ROOT, "models", m + ".net"))]
        if unknown:
            ap.error(f"--models: no models/{unknown[0]}.net (the zoo: {', '.join(ZOO)})")
    a.models = a.models or (QUICK_MODELS if a.quick else ZOO)
    a.rounds = a.rounds or (2 if a.quick else 3)
    a.budget_ms = 300.0 if a.quick else 1000.0  # per turn, when --runs is not given
    a.min_runs = 2 if a.quick else 3
    a.max_runs = 50 if a.quick else 200
    a.train_models = TRAIN_MODELS[:1] if a.quick else TRAIN_MODELS
    return a


# ---- the contenders ----

def check_nnc(nnc):
    if not (os.path.isfile(nnc) and os.access(nnc, os.X_OK)):
        raise BenchError(f"no nnc at {nnc}: build it first (cmake -S . -B build && cmake --build build -j2), "
                         "or give its path with --nnc")


def nnc_bench(a, name, batch, runs, train=False):
    """One turn of nnc: `nnc bench`, parsed into a dict of its keys."""
    from benchlib import NNC_SETS
    cmd = [a.nnc, "bench", os.path.join(ROOT, "models", name + ".net"), "--batch", str(batch),
           "--threads", str(a.threads), "--runs", str(runs), "--warmup", "1"]
    cmd += ["--train"] if train else []
    cmd += [x for kv in NNC_SETS.get(name, ()) for x in ("--set", kv)]
    p = subprocess.run(cmd, capture_output=True, text=True)
    if p.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd[1:])}: {p.stderr.strip() or 'exit status %d' % p.returncode}")
    out = {}
    for line in p.stdout.splitlines():
        k, sep, v = line.partition(": ")
        if sep and not line.startswith(" "):
            out[k] = v.strip()
    try:
        return float(out["median_ms"]), float(out["min_ms"]), float(out["max_ms"])
    except (KeyError, ValueError):
        raise RuntimeError(f"{' '.join(cmd[1:])} printed no median_ms/min_ms/max_ms:\n{p.stdout}")


def spread(ts):
    return statistics.median(ts), min(ts), max(ts)


def time_calls(fn, runs, warmup=1):
    """(median, min, max) milliseconds of runs calls of fn after warmup ones."""
    for _ in range(warmup):
        fn()
    ts = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        ts.append((time.perf_counter() - t0) * 1000.0)
    return spread(ts)


def first_output(y):
    """The class scores of a module's result: scripted GoogLeNet returns a
    named tuple whose first field they are."""
    return y[0] if isinstance(y, (tuple, list)) else y


def freeze(module, x):
    """module as frozen TorchScript, traced on x, or scripted where tracing
    fails; returns the module and how it was made. Tracing first: it records
    the eval forward these CNNs run and nothing else, where scripting keeps
    Python-side extras (scripted GoogLeNet raises a warning on every call)."""
    import torch
    try:
        with torch.no_grad():
            return torch.jit.freeze(torch.jit.trace(module, x)), "trace"
    except Exception:  # noqa: BLE001 -- torch raises many kinds here; script is the fallback
        return torch.jit.freeze(torch.jit.script(module)), "script"


class Series:
    """One contender's turns: per turn (median, min, max)."""

    def __init__(self):
        self.turns, self.error = [], None

    def add(self, fn):
        if self.error:
            return
        try:
            self.turns.append(fn())
        except Exception as e:  # noqa: BLE001 -- a failing contender must not stop the others
            self.error = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__

    def summary(self):
        if self.error or not self.turns:
            return None
        return (statistics.median(t[0] for t in self.turns), min(t[1] for t in self.turns),
                max(t[2] for t in self.turns))


def bench_inference(a, name, batch, ort, notes):
    """The four contenders on one model and batch: {contender: Series}."""
    import numpy as np
    import torch
    import nncutil
    from benchlib import OrtSession, export_onnx, reference
    module, shape = reference(name)
    x = np.random.default_rng(0).random((batch, *shape), dtype=np.float32)
    xt = torch.from_numpy(x)
    with torch.no_grad():
        ref = first_output(module(xt)).numpy()
        eager_ms = time_calls(lambda: module(xt), 3)[1]  # the fastest of three: the probe must not catch a slow phase
    runs = a.runs or max(a.min_runs, min(a.max_runs, round(a.budget_ms / max(eager_ms, 1e-3))))
    series = {k: Series() for k in ("nnc", "ort", "torch", "ts")}
    session = None
    with tempfile.TemporaryDirectory() as tmp:
        ts = None
        try:
            ts, how = freeze(module, xt)
            with torch.no_grad():
                for _ in range(3):  # the profiling executor optimizes over the first calls
                    y = first_output(ts(xt))
            err = nncutil.rel_err(y.numpy(), ref)
            if how != "trace":
                notes.add(f"TorchScript: {name} is scripted (torch.jit.trace failed)", failure=False)
            if err > 1e-3:
                notes.add(f"TorchScript: {name} batch {batch} differs from eager by {err:.1e} (relative)")
        except Exception as e:  # noqa: BLE001
            series["ts"].error = f"freeze: {e}".splitlines()[0]
        if ort:
            try:
                session = OrtSession(export_onnx(module, x, tmp), x, a.threads, tmp)
                err = nncutil.rel_err(session.output.reshape(ref.shape), ref)
                if err > 1e-3:
                    notes.add(f"ONNX Runtime: {name} batch {batch} differs from PyTorch by {err:.1e} (relative)")
            except Exception as e:  # noqa: BLE001
                series["ort"].error = f"ONNX Runtime: {e}".splitlines()[0]
        try:
            for r in range(a.rounds):
                log(f"  {name} batch {batch}: round {r + 1}/{a.rounds}, {runs} runs a turn")
                series["nnc"].add(lambda: nnc_bench(a, name, batch, runs))
                if session:
                    series["ort"].add(lambda: spread(session.times(runs, 1)))
                with torch.no_grad():
                    series["torch"].add(lambda: time_calls(lambda: module(xt), runs))
                    if ts is not None:
                        series["ts"].add(lambda: time_calls(lambda: ts(xt), runs))
        finally:
            if session:
                session.close()
    return series, runs


# ---- training ----

def torch_train_step(name, batch, momentum):
    """A function doing one PyTorch training step of the model on a fixed
    random batch: zero_grad, forward, cross-entropy, backward, SGD step."""
    import torch
    import torch.nn.functional as F
    from benchlib import reference
    torch.manual_seed(0)
    model, shape = reference(name)
    model.train()
    x, y = torch.randn(batch, *shape), torch.randint(0, 10, (batch,))
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=momentum)

    def step():
        opt.zero_grad()
        F.cross_entropy(model(x), y).backward()
        opt.step()
    return step


def read_idx(path):
    """An IDX file (gzipped or not) as a numpy array: magic, dims, bytes."""
    import numpy as np
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as f:
        data = f.read()
    ndim = data[3]
    dims = [int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


def find_idx(d, stem):
    for f in (stem, stem + ".gz"):
        if os.path.exists(os.path.join(d, f)):
            return os.path.join(d, f)
    raise BenchError(f"no {stem}[.gz] in {d}: the epoch needs Fashion-MNIST (--data DIR; Debian's "
                     "dataset-fashion-mnist puts it in /usr/share/datasets/fashion-mnist)")


def torch_epoch(images, labels, batch, seed):
    """Images per second of one PyTorch epoch of LeNet-5: shuffled batches of
    the in-memory set, SGD with momentum 0.9, loss and accuracy summed."""
    import torch
    import torch.nn.functional as F
    from benchlib import reference
    torch.manual_seed(seed)
    model, _ = reference("lenet5")
    model.train()
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    n = images.shape[0]
    t0 = time.perf_counter()
    order = torch.randperm(n)
    loss_sum, correct = 0.0, 0
    for i in range(0, n, batch):
        idx = order[i:i + batch]
        x, y = images[idx], labels[idx]
        opt.zero_grad()
        out = model(x)
        loss = F.cross_entropy(out, y)
        loss.backward()
        opt.step()
        loss_sum += loss.item() * len(idx)
        correct += int((out.argmax(1) == y).sum())
    seconds = time.perf_counter() - t0
    return n / seconds


EPOCH_LINE = re.compile(r"^epoch \d+/\d+: .*, ([0-9.]+) img/s, ([0-9.]+) s", re.M)


def nnc_epoch(a, batch, seed, tmp):
    """Images per second of one `nnc train` epoch of LeNet-5, as nnc reports it."""
    cmd = [a.nnc, "train", os.path.join(ROOT, "models", "lenet5.net"), "--data", "fashion-mnist:" + a.data,
           "--epochs", "1", "--batch", str(batch), "--optimizer", "sgd", "--lr", "0.01", "--momentum", "0.9",
           "--schedule", "constant", "--label-smoothing", "0", "--seed", str(seed),
           "--out", os.path.join(tmp, "lenet5.safetensors")]
    # nnc's only threads are its BLAS's (nnc bench sets this from --threads).
    env = dict(os.environ, OPENBLAS_NUM_THREADS=str(a.threads))
    p = subprocess.run(cmd, capture_output=True, text=True, env=env)
    m = EPOCH_LINE.search(p.stdout)
    if p.returncode != 0 or not m:
        raise RuntimeError(f"nnc train: {p.stderr.strip() or p.stdout.strip()[-300:]}")
    return float(m.group(1))


def bench_train(a, notes):
    """The step table ({model: {contender: Series}}) and the epoch's images
    per second ({contender: [per round]}); also the runs used per model."""
    import numpy as np
    import torch
    steps, runs_used = {}, {}
    batch = 64
    for name in a.train_models:
        log(f"training step: {name}, batch {batch}")
        step = torch_train_step(name, batch, momentum=0.0)  # nnc bench --train: SGD without momentum
        step()
        probe = time_calls(step, 2, warmup=1)[1]
        runs = a.runs or max(a.min_runs, min(a.max_runs // 4, round(a.budget_ms / max(probe, 1e-3))))
        runs_used[name] = runs
        s = {"nnc": Series(), "torch": Series()}
        for r in range(a.rounds):
            log(f"  {name} step: round {r + 1}/{a.rounds}, {runs} runs a turn")
            s["nnc"].add(lambda: nnc_bench(a, name, batch, runs, train=True))
            s["torch"].add(lambda: time_calls(step, runs))
        steps[name] = s
    epoch = {"nnc": [], "torch": []}
    try:
        imgs = read_idx(find_idx(a.data, "train-images-idx3-ubyte"))
        labs = read_idx(find_idx(a.data, "train-labels-idx1-ubyte"))
    except BenchError as e:
        notes.add(f"epoch left out: {e}")
        return steps, runs_used, None
    # As nnc's loader does: bytes / 255, no other normalization.
    images = torch.from_numpy(imgs.astype(np.float32) / 255.0).unsqueeze(1)
    labels = torch.from_numpy(labs.astype(np.int64))
    rounds = 1 if a.quick else min(a.rounds, 2)  # an epoch is long: two turns each are enough to see a phase
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(rounds):
            log(f"epoch: lenet5 on Fashion-MNIST, round {r + 1}/{rounds}")
            for k, fn in (("nnc", lambda: nnc_epoch(a, batch, r + 1, tmp)),
                          ("torch", lambda: torch_epoch(images, labels, batch, r + 1))):
                try:
                    epoch[k].append(fn())
                except Exception as e:  # noqa: BLE001
                    notes.add(f"epoch, {'nnc' if k == 'nnc' else 'PyTorch'}: {str(e).splitlines()[0]}")
    return steps, runs_used, (epoch, rounds)


# ---- the tables ----

def fmt_ms(v):
    if v is None:
        return "-"
    return f"{v:.3f}" if v < 1 else f"{v:.2f}" if v < 100 else f"{v:.0f}"


def cell(s):
    """median (min-max), or '-'."""
    if s is None:
        return "-"
    return f"{fmt_ms(s[0])} ({fmt_ms(s[1])}-{fmt_ms(s[2])})"


def ratio(a, b):
    if not (a and b):
        return "-"
    r = a[0] / b[0]
    return f"{r:.2f}" if r >= 0.1 else f"{r:.3f}"  # two digits that say something, also far below 1


def table(header, rows, markdown):
    if markdown:
        lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        lines += ["| " + " | ".join(r) + " |" for r in rows]
    else:
        w = [max(len(str(r[i])) for r in [header] + rows) for i in range(len(header))]
        fmt = lambda r: "  ".join(str(c).ljust(w[0]) if i == 0 else str(c).rjust(w[i]) for i, c in enumerate(r))  # noqa: E731
        lines = [fmt(header), "  ".join("-" * x for x in w)] + [fmt(r) for r in rows]
    return "\n".join(lines)


def machine():
    cpu = "?"
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next((ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")), "?")
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} cores"


def nnc_version():
    try:
        rev = subprocess.run(["git", "-C", ROOT, "describe", "--always", "--dirty"], capture_output=True, text=True,
                             timeout=10).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        rev = ""
    return rev or "?"


def main(argv=None):
    t_start = time.monotonic()
    a = parse_args(argv)
    check_nnc(a.nnc)
    try:
        import numpy  # noqa: F401
        import torch
        import torchvision  # noqa: F401
    except ImportError as e:
        raise BenchError(f"{e.name} is missing from {sys.executable}: run the script with Debian's /usr/bin/python3 "
                         "(packages python3-torch, python3-torchvision)")
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import benchlib
    ort = benchlib.ort_available() and not a.no_inference
    notes = Notes()
    if not a.no_inference and not ort:
        why = ("node is not installed" if shutil.which("node") is None else
               "onnxruntime-node is not installed under bench/ort/")
        if a.require_ort:
            raise BenchError(f"ONNX Runtime: {why}; bash bench/setup_ort.sh installs it")
        notes.add(f"ONNX Runtime left out ({why}; bash bench/setup_ort.sh installs it): its columns say -", failure=False)
    torch.set_num_threads(a.threads)

    def say(text):
        print(text, flush=True)

    say(("## " if a.markdown else "") + f"nnc benchmark, {datetime.date.today().isoformat()}")
    settings = [f"machine: {machine()}; OPENBLAS_CORETYPE={os.environ.get('OPENBLAS_CORETYPE', '(unset)')}",
                f"nnc {nnc_version()} ({a.nnc}); PyTorch {torch.__version__}; ONNX Runtime "
                f"{(benchlib.ort_version() or '?') if ort else '-'} (onnxruntime-node)",
                f"{a.threads} threads each; {a.rounds} rounds, contenders taking turns; each turn 1 warm-up call "
                f"and {a.runs or f'about {a.budget_ms / 1000:g} s of (at least {a.min_runs})'} timed calls"]
    say("\n".join(("- " if a.markdown else "") + s for s in settings))
    load_start = os.getloadavg()[0]

    if not a.no_inference:
        log(f"inference: {', '.join(a.models)} at batch {', '.join(map(str, a.batches))}")
        results = []
        for batch in a.batches:
            for name in a.models:
                results.append((name, batch) + bench_inference(a, name, batch, ort, notes))
        header = ["model", "batch", "runs", "nnc ms", "ONNX Runtime ms", "PyTorch ms", "TorchScript ms",
                  "nnc/ORT", "nnc/PyTorch", "nnc/TorchScript"]
        rows = []
        for name, batch, s, runs in results:
            v = {k: s[k].summary() for k in s}
            for k, label in (("nnc", "nnc"), ("ort", "ONNX Runtime"), ("torch", "PyTorch"), ("ts", "TorchScript")):
                if s[k].error:
                    notes.add(f"{label}, {name} batch {batch}: {s[k].error}")
            label = name + (" (" + ", ".join(benchlib.NNC_SETS[name]) + ")" if name in benchlib.NNC_SETS else "")
            rows.append([label, str(batch), str(runs), cell(v["nnc"]), cell(v["ort"]), cell(v["torch"]),
                         cell(v["ts"]), ratio(v["nnc"], v["ort"]), ratio(v["nnc"], v["torch"]),
                         ratio(v["nnc"], v["ts"])])
        say("")
        say(("### " if a.markdown else "") + "Inference: ms per batch, median of the rounds' medians "
            "(lowest-highest call); ratios of the medians, below 1: nnc is faster")
        say("")
        say(table(header, rows, a.markdown))

    if not a.no_train:
        steps, runs_used, epoch = bench_train(a, notes)
        rows = []
        for name, s in steps.items():
            v = {k: s[k].summary() for k in s}
            for k in s:
                if s[k].error:
                    notes.add(f"{'nnc' if k == 'nnc' else 'PyTorch'} step, {name}: {s[k].error}")
            rows.append([name, "64", str(runs_used[name]), cell(v["nnc"]), cell(v["torch"]),
                         ratio(v["nnc"], v["torch"])])
        say("")
        say(("### " if a.markdown else "") + "Training step (forward, cross-entropy, backward, SGD), batch 64: "
            "ms, median (lowest-highest)")
        say("")
        say(table(["model", "batch", "runs", "nnc ms", "PyTorch ms", "nnc/PyTorch"], rows, a.markdown))
        if epoch:
            ips, rounds = epoch
            med = {k: statistics.median(v) if v else None for k, v in ips.items()}
            spread = {k: f"{med[k]:.0f} ({min(v):.0f}-{max(v):.0f})" if v else "-" for k, v in ips.items()}
            r = f"{med['torch'] / med['nnc']:.2f}" if med["nnc"] and med["torch"] else "-"
            say("")
            say(("### " if a.markdown else "") + f"One epoch of LeNet-5 on Fashion-MNIST (60,000 images, batch 64, "
                f"SGD momentum 0.9): images/s, median of {rounds} round{'s' if rounds > 1 else ''} (lowest-highest)")
            say("")
            say(table(["model", "nnc img/s", "PyTorch img/s", "nnc/PyTorch time"],
                      [["lenet5", spread["nnc"], spread["torch"], r]], a.markdown))

    load_end = os.getloadavg()[0]
    # At the start the load is other work's; at the end it includes this run's
    # own threads (about --threads).
    if load_start > os.cpu_count() / 2 or load_end > os.cpu_count() + 1:
        notes.add(f"the machine was busy (load average up to {max(load_start, load_end):.1f} on {os.cpu_count()} "
                  "cores): threaded code stalls when another process holds a core, PyTorch's the most; "
                  "rerun on a quiet machine before quoting these numbers", failure=False)
    if notes.items:
        say("")
        say("Notes:" if not a.markdown else "Notes:\n")
        say("\n".join(("- " if a.markdown else "  ") + n for n in notes.items))
    say("")
    # Other work on the machine slows threaded code most (a thread waiting at a
    # barrier for a core someone else holds): the load says how quiet it was.
    say(f"Elapsed: {time.monotonic() - t_start:.0f} s; load average {load_start:.1f} at the start, "
        f"{load_end:.1f} at the end ({os.cpu_count()} cores)")
    return 1 if notes.failures else 0


class Notes:
    """What the reader must know beside the tables, each said once."""

    def __init__(self):
        self.items, self.failures = [], 0

    def add(self, msg, failure=True):
        """failure: the run's exit status becomes 1 (a contender failed or
        computed something else), not only a remark."""
        if msg not in self.items:
            self.items.append(msg)
            self.failures += failure


if __name__ == "__main__":
    try:
        sys.exit(main())
    except BenchError as e:
        print(f"bench_zoo.py: {e}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print("bench_zoo.py: interrupted", file=sys.stderr)
        sys.exit(130)
