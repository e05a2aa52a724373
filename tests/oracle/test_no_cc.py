"""nnc run, train, eval and bench on a machine with no C compiler on PATH
(issue 12): with the in-process JIT built in, they compile the generated C
with Clang/LLVM in the nnc process itself, so PATH holds nothing at all here
(no cc, no gcc, no as, no ld) and the cache is off (every load compiles).
Built without it (NNC_JIT_LLVM=OFF), the same commands must fail with a clear
message naming the missing compiler, not crash. Needs numpy only."""
import os
import subprocess
import tempfile
import unittest

import numpy as np

from nncutil import NNC

TINY = """network tiny(classes = 10) {
    input image: [1, 28, 28]
    x = image |> conv(4, 3, pad: 1) as conv1 |> relu |> maxpool(4)
    output logits = x |> flatten |> linear(classes) as fc
}
"""


def bare_env(home, **extra):
    """An environment with an empty PATH: nnc is called by its absolute path."""
    env = {"PATH": "/nonexistent", "HOME": home, "NNC_CACHE": "off",
           "OPENBLAS_CORETYPE": os.environ.get("OPENBLAS_CORETYPE", "Haswell")}
    env.update(extra)
    return env


class NoCompiler(unittest.TestCase):
    def setUp(self):
        self.assertTrue(os.path.isabs(NNC), "NNC_EXE must be an absolute path")
        self.tmp = tempfile.TemporaryDirectory()
        self.d = self.tmp.name
        with open(os.path.join(self.d, "tiny.net"), "w") as f:
            f.write(TINY)
        rng = np.random.default_rng(3)
        data = os.path.join(self.d, "data")
        os.makedirs(data)
        labels = rng.integers(0, 10, size=256)
        images = rng.random((256, 1, 28, 28), dtype=np.float32) * 0.5
        for i, c in enumerate(labels):  # learnable: a bright row per class
            images[i, 0, 2 + 2 * c, :] += 0.5
        for split, n in (("train", 256), ("test", 64)):
            np.save(os.path.join(data, f"{split}_images.npy"), images[:n])
            np.save(os.path.join(data, f"{split}_labels.npy"), labels[:n].astype(np.int64))
        np.save(os.path.join(self.d, "x.npy"), images[:2])
        version = subprocess.run([NNC, "--version"], capture_output=True, text=True, check=True).stdout
        self.jit = "clang/llvm 14 in process" in version

    def tearDown(self):
        self.tmp.cleanup()

    def nnc(self, *args, **env):
        return subprocess.run([NNC, *args], capture_output=True, text=True, cwd=self.d,
                              env=bare_env(self.d, **env), timeout=600)

    def test_run_train_eval_bench(self):
        p = self.nnc("init", "tiny.net", "--seed", "1", "-o", "w.safetensors")
        self.assertEqual(p.returncode, 0, p.stderr)
        if not self.jit:  # the system compiler is the only loader: a clear error, no crash
            p = self.nnc("run", "tiny.net", "--weights", "w.safetensors", "--input", "image=x.npy")
            self.assertEqual(p.returncode, 1, p.stderr)
            self.assertIn("cannot run the C compiler", p.stderr)
            return
        p = self.nnc("run", "tiny.net", "--weights", "w.safetensors", "--input", "image=x.npy",
                     "--output", "logits=y.npy")
        self.assertEqual(p.returncode, 0, p.stderr)
        y = np.load(os.path.join(self.d, "y.npy"))
        self.assertEqual(y.shape, (2, 10))
        self.assertTrue(np.isfinite(y).all())
        p = self.nnc("train", "tiny.net", "--data", "npy:data", "--epochs", "2", "--batch", "16", "--seed", "7",
                     "--lr", "0.05", "--out", "t.safetensors")
        self.assertEqual(p.returncode, 0, p.stderr)
        p = self.nnc("eval", "tiny.net", "--weights", "t.safetensors", "--data", "npy:data")
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertIn("accuracy", p.stdout + p.stderr)
        p = self.nnc("bench", "tiny.net", "--runs", "3")
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertIn("median_ms:", p.stdout)
        # the system compiler, asked for by name, is missing: said so
        p = self.nnc("run", "tiny.net", "--weights", "w.safetensors", "--input", "image=x.npy", NNC_JIT="cc")
        self.assertEqual(p.returncode, 1, p.stderr)
        self.assertIn("cannot run the C compiler 'cc'", p.stderr)


if __name__ == "__main__":
    unittest.main()
