"""`nnc bench` (issue 11): the keys scripts read, and that the numbers agree
with each other and with `nnc --stats`. Speed itself is never asserted here
(docs/performance.md, bench/): only that what is printed is consistent."""
import os
import re
import tempfile
import unittest

from nncutil import SRC, nnc, nnc_stats

KEYS = ["model", "mode", "batch", "threads", "runs", "median_ms", "min_ms", "max_ms", "images_per_s", "gflops",
        "compile_ms", "cc_ms"]


def parse(out):
    kv = {}
    for line in out.splitlines():
        if line == "profile:":
            break
        k, v = line.split(": ", 1)
        kv[k] = v
    return kv


class Bench(unittest.TestCase):
    def check(self, kv, batch, runs, mode, macs, factor):
        self.assertEqual(list(kv), KEYS, "one key: value per line, in this order")
        self.assertEqual((kv["mode"], int(kv["batch"]), int(kv["runs"])), (mode, batch, runs))
        t = {k: float(kv[k]) for k in KEYS[5:]}
        self.assertTrue(0 < t["min_ms"] <= t["median_ms"] <= t["max_ms"], kv)
        self.assertAlmostEqual(t["images_per_s"], batch / (t["median_ms"] / 1e3), delta=0.01 * t["images_per_s"] + 0.1)
        want = factor * 2 * macs * batch / (t["median_ms"] / 1e3) / 1e9
        self.assertAlmostEqual(t["gflops"], want, delta=0.01 * want + 0.01)
        self.assertGreater(t["compile_ms"], 0)
        self.assertGreater(t["cc_ms"], 0)

    def test_inference_and_training(self):
        model = os.path.join(SRC, "models", "lenet5.net")
        macs = nnc_stats(model)["macs"]
        kv = parse(nnc("bench", model, "--batch", "4", "--runs", "3", "--warmup", "1").stdout)
        self.assertEqual((kv["model"], kv["threads"]), ("lenet5", "1"))
        self.check(kv, 4, 3, "inference", macs, 1)
        kv = parse(nnc("bench", model, "--batch", "8", "--runs", "2", "--train", "--threads", "2").stdout)
        self.assertEqual(kv["threads"], "2")
        self.check(kv, 8, 2, "train", macs, 3)

    def test_profile(self):
        """--profile: one line per kernel the forward pass calls (nnc --stats' kernels), in order."""
        model = os.path.join(SRC, "models", "resnet18_cifar.net")
        out = nnc("bench", model, "--profile", "--runs", "2", "--warmup", "1").stdout
        kv = parse(out)
        self.assertEqual(kv["mode"], "inference")
        layers = out.split("profile:\n", 1)[1].splitlines()
        self.assertEqual(len(layers), nnc_stats(model)["kernels"])
        ms, share, ids = [], [], []
        for line in layers:
            m = re.match(r"^ +(\d+\.\d+) ms +(\d+\.\d)% +%(\d+) (\w+)", line)
            self.assertIsNotNone(m, line)
            ms.append(float(m.group(1)))
            share.append(float(m.group(2)))
            ids.append(int(m.group(3)))
        self.assertEqual(ids, sorted(ids), "in the order they run")
        self.assertAlmostEqual(sum(share), 100.0, delta=0.1 * len(share) + 0.1)
        # the layers' mean times add up to about a call (the hook's clock reads are inside)
        self.assertLess(abs(sum(ms) - float(kv["median_ms"])), 0.5 * float(kv["median_ms"]) + 0.05)
        self.assertIn("conv2d conv1 @ ", out)
        p = nnc("bench", model, "--profile", "--train", check=False)
        self.assertEqual(p.returncode, 2)

    def test_set_and_errors(self):
        with tempfile.TemporaryDirectory() as d:
            m = os.path.join(d, "tiny.net")
            with open(m, "w") as f:
                f.write("network tiny(c = 3) {\n    input x: [2, 4, 4]\n    output y = x |> conv(c, 3) |> flatten\n}\n")
            kv = parse(nnc("bench", m, "--set", "c=5", "--runs", "1", "--warmup", "0").stdout)
            self.assertEqual((kv["model"], kv["runs"]), ("tiny", "1"))
            p = nnc("bench", m, "--runs", "0", check=False)
            self.assertEqual(p.returncode, 2)
            self.assertIn("--runs needs a whole number", p.stderr)
            p = nnc("bench", m, "--frobnicate", check=False)
            self.assertEqual(p.returncode, 2)
            with open(m, "w") as f:
                f.write("network tiny {\n    input x: [2, 4, 4]\n    output y = x |> nope\n}\n")
            p = nnc("bench", m, check=False)
            self.assertEqual(p.returncode, 1)
            self.assertRegex(p.stderr, r"tiny.net:3:\d+: error: unknown name 'nope'")

    def test_jit_times(self):
        """--jit-times: the keys after the others; each loader's cold load (an
        empty cache of its own) compiles, its cached loads do not."""
        with tempfile.TemporaryDirectory() as d:
            m = os.path.join(d, "tiny.net")
            with open(m, "w") as f:
                f.write("network tiny(c = 3) {\n    input x: [2, 4, 4]\n    output y = x |> conv(c, 3) |> flatten\n}\n")
            tmp = os.path.join(d, "tmp")  # the runs' TMPDIR: the cache directories must go
            os.mkdir(tmp)
            saved = os.environ.get("TMPDIR")
            os.environ["TMPDIR"] = tmp
            try:
                lines = nnc("bench", m, "--runs", "1", "--warmup", "0", "--jit-times").stdout.splitlines()
            finally:
                if saved is None:
                    del os.environ["TMPDIR"]
                else:
                    os.environ["TMPDIR"] = saved
            self.assertEqual(os.listdir(tmp), [])
            kv = dict(line.split(": ", 1) for line in lines)
            jit = ["jit_compile_cold_ms", "jit_compile_cached_ms", "cc_compile_cold_ms", "cc_compile_cached_ms"]
            self.assertEqual(list(kv), KEYS + jit)
            for cold, cached in (jit[0:2], jit[2:4]):
                if kv[cold] == "unavailable":  # built without LLVM
                    self.assertEqual((cold, kv[cached]), ("jit_compile_cold_ms", "unavailable"))
                    continue
                self.assertGreater(float(kv[cached]), 0)
                self.assertLess(float(kv[cached]), float(kv[cold]), kv)
            p = nnc("bench", m, "--jit-times", "--train", check=False)
            self.assertEqual(p.returncode, 2)
            self.assertIn("--jit-times times inference modules only", p.stderr)


if __name__ == "__main__":
    unittest.main()
