"""Files nnc writes, from the outside (issue 9, defects 4 to 6): no leftovers
after kills, checkpoints that prove their integrity, outputs checked before
the work, the generated .c and .h replaced together or not at all.

Every nnc process here runs with TMPDIR set to a private folder, so what the
JIT leaves in it is seen. The model for the kill tests has one large linear
layer (4M weights: a checkpoint of 32 MB with SGD momentum), so that a kill
lands in a checkpoint write most of the time. Needs numpy only."""
import os
import random
import resource
import signal
import struct
import subprocess
import tempfile
import time
import unittest

import numpy as np

from nncutil import NNC

BIG = """network big(classes = 10) {
    input image: [1, 32, 32]
    output logits = image |> flatten |> linear(4096) |> relu |> linear(classes)
}
"""

TINY = """network tiny(classes = 3) {
    input image: [1, 4, 4]
    output logits = image |> flatten |> linear(classes) as fc
}
"""


def write_data(d, n, shape, classes, seed=0):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, classes, size=n)
    images = rng.random((n, *shape), dtype=np.float32)
    os.makedirs(d, exist_ok=True)
    np.save(os.path.join(d, "train_images.npy"), images)
    np.save(os.path.join(d, "train_labels.npy"), labels.astype(np.int64))


def metadata(path):
    import json
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        return json.loads(f.read(n)).get("__metadata__", {})


def leftovers(*dirs):
    """nnc's temporaries (and any compiler temporaries) in dirs."""
    found = []
    for d in dirs:
        for name in os.listdir(d):
            if "nnc-tmp" in name or name.startswith(("nnc-jit-", "nnc-weights-", "cc")):
                found.append(os.path.join(d, name))
    return found


class Files(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.d = self.tmp.name
        self.tmpdir = os.path.join(self.d, "tmpdir")  # the runs' TMPDIR
        os.mkdir(self.tmpdir)
        self.env = dict(os.environ, TMPDIR=self.tmpdir)

    def tearDown(self):
        self.tmp.cleanup()

    def run_nnc(self, *args, **kw):
        return subprocess.run([NNC, *args], capture_output=True, text=True, env=self.env, cwd=self.d, **kw)

    def big_run(self, ck, epochs, resume=False):
        args = [NNC, "train", os.path.join(self.d, "big.net"), "--data", "npy:" + os.path.join(self.d, "big"),
                "--batch", "64", "--epochs", str(epochs), "--momentum", "0.9", "--lr", "0.001", "--checkpoint", ck]
        return args + (["--resume"] if resume else [])

    def setup_big(self):
        with open(os.path.join(self.d, "big.net"), "w") as f:
            f.write(BIG)
        write_data(os.path.join(self.d, "big"), 64, (1, 32, 32), 10)

    def test_kill9_leaves_nothing_after_the_next_run(self):
        """kill -9 inside a 32 MB checkpoint write, and at random moments: the
        checkpoint stays intact, and the next run that writes it removes every
        temporary the killed ones left, JIT folders included."""
        self.setup_big()
        ck = os.path.join(self.d, "c.ckpt")
        rng = random.Random(1)
        left_behind = 0
        for k in range(6):
            errlog = os.path.join(self.d, "stderr.txt")
            with open(errlog, "w") as err:
                p = subprocess.Popen(self.big_run(ck, 100000, resume=os.path.exists(ck)), stdout=subprocess.DEVNULL,
                                     stderr=err, env=self.env)
            # kill only once this run writes checkpoints: its JIT compile is over (a
            # compiler orphaned by a kill -9 would finish on its own, racing the sweep)
            before = os.stat(ck).st_mtime_ns if os.path.exists(ck) else 0
            deadline = time.time() + 120
            while time.time() < deadline and p.poll() is None:
                if os.path.exists(ck) and os.stat(ck).st_mtime_ns != before:
                    break
                time.sleep(0.02)
            if k % 2:  # at a random moment
                time.sleep(rng.uniform(0.0, 0.6))
            else:  # as soon as this run's next checkpoint write has begun
                tmp = os.path.join(self.d, f".c.ckpt.nnc-tmp.{p.pid}")
                while not os.path.exists(tmp) and time.time() < deadline and p.poll() is None:
                    time.sleep(0.001)
            if p.poll() is not None:
                with open(errlog) as err:
                    self.fail(f"the run ended before it was killed: {err.read()}")
            p.send_signal(signal.SIGKILL)
            p.wait()
            left_behind += len(leftovers(self.d, self.tmpdir))
            self.assertTrue(os.path.exists(ck))
        # at least one kill must have hit a write, or this test tests nothing
        self.assertGreater(left_behind, 0, "no kill hit a checkpoint write")
        epoch = int(metadata(ck)["nnc_epoch"])
        r = self.run_nnc(*self.big_run(ck, epoch + 1, resume=True)[1:])
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("resuming from", r.stderr)
        self.assertNotIn("warning", r.stderr)  # the checkpoint carried its checksum and it matched
        self.assertEqual(leftovers(self.d, self.tmpdir), [])

    def test_sigterm_and_sigint_leave_nothing(self):
        """SIGTERM or SIGINT at any moment (while the JIT compiles, while a step
        runs, while a checkpoint is written) ends the process by that signal
        and leaves no temporary behind, without waiting for a next run."""
        self.setup_big()
        ck = os.path.join(self.d, "t.ckpt")
        delays = [0.02, 0.1, 0.3, 0.6, 1.0, 1.5, 2.5, 4.0]
        for i, delay in enumerate(delays):
            sig = signal.SIGTERM if i % 2 == 0 else signal.SIGINT
            p = subprocess.Popen(self.big_run(ck, 100000), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                 env=self.env)
            time.sleep(delay)
            p.send_signal(sig)
            p.wait(timeout=60)
            self.assertEqual(p.returncode, -sig, f"delay {delay}: status {p.returncode}")
            self.assertEqual(leftovers(self.d, self.tmpdir), [], f"after {sig.name} at {delay} s")

    def test_corrupted_checkpoint_refused_everywhere(self):
        """One flipped bit in the data of a checkpoint: --resume, train --weights,
        eval --weights and run --weights refuse it, naming the file, the stored
        and the computed sum."""
        with open(os.path.join(self.d, "tiny.net"), "w") as f:
            f.write(TINY)
        write_data(os.path.join(self.d, "data"), 60, (1, 4, 4), 3)
        common = ["train", "tiny.net", "--data", "npy:data", "--batch", "10", "--momentum", "0.5"]
        r = self.run_nnc(*common, "--checkpoint", "ok.ckpt")
        self.assertEqual(r.returncode, 0, r.stderr)
        with open(os.path.join(self.d, "ok.ckpt"), "rb") as f:
            b = bytearray(f.read())
        b[-7] ^= 0x04
        with open(os.path.join(self.d, "bad.ckpt"), "wb") as f:
            f.write(b)
        np.save(os.path.join(self.d, "x.npy"), np.zeros((1, 1, 4, 4), np.float32))
        for args in (common + ["--epochs", "2", "--checkpoint", "bad.ckpt", "--resume"],
                     ["train", "tiny.net", "--data", "npy:data", "--weights", "bad.ckpt"],
                     ["eval", "tiny.net", "--data", "npy:data", "--weights", "bad.ckpt"],
                     ["run", "tiny.net", "--weights", "bad.ckpt", "--input", "image=x.npy"]):
            r = self.run_nnc(*args)
            self.assertEqual(r.returncode, 1, f"{args}: {r.stderr}")
            self.assertIn("bad.ckpt: checksum mismatch: nnc_checksum says crc32c:", r.stderr)
            self.assertIn("the contents give crc32c:", r.stderr)
            self.assertIn("corrupted", r.stderr)
            self.assertNotIn("epoch", r.stdout)
        r = self.run_nnc("run", "tiny.net", "--weights", "ok.ckpt", "--input", "image=x.npy")
        self.assertEqual(r.returncode, 0, r.stderr)

    def test_unwritable_output_refused_before_training(self):
        """A --out or --checkpoint that cannot be written stops nnc train before
        it compiles or trains anything (LeNet-5 would take many seconds)."""
        from nncutil import SRC
        write_data(os.path.join(self.d, "mnist"), 4096, (1, 28, 28), 10)
        model = os.path.join(SRC, "models", "lenet5.net")
        for flag, path, says in (("--out", "no/such/dir/w.safetensors", "does not exist"),
                                 ("--checkpoint", ".", "is a directory"),
                                 ("--out", "/proc/w.safetensors", "cannot create a file in '/proc'")):
            t0 = time.time()
            r = self.run_nnc("train", model, "--data", "npy:mnist", "--epochs", "5", flag, path)
            took = time.time() - t0
            self.assertEqual(r.returncode, 1, r.stderr)
            self.assertIn(f"{flag} '{path}' cannot be written", r.stderr)
            self.assertIn(says, r.stderr)
            self.assertNotIn("epoch", r.stdout)
            self.assertLess(took, 3.0, "refused only after work")
        r = self.run_nnc("init", model, "-o", "no/such/dir/w.safetensors")
        self.assertEqual(r.returncode, 1)
        self.assertIn("-o 'no/such/dir/w.safetensors' cannot be written", r.stderr)

    def compile_pair(self, preexec=None):
        with open(os.path.join(self.d, "tiny.net"), "w") as f:
            f.write(TINY)
        return subprocess.run([NNC, "tiny.net", "-o", "out/x.c"], capture_output=True, text=True, cwd=self.d,
                              env=self.env, preexec_fn=preexec)

    def old_pair(self):
        os.makedirs(os.path.join(self.d, "out"), exist_ok=True)
        for name in ("x.c", "x.h"):
            with open(os.path.join(self.d, "out", name), "w") as f:
                f.write("OLD " + name)

    def assert_old_pair(self, r):
        self.assertEqual(r.returncode, 1, r.stderr)
        self.assertIn("neither", r.stderr)
        for name in ("x.c", "x.h"):
            with open(os.path.join(self.d, "out", name)) as f:
                self.assertEqual(f.read(), "OLD " + name)
        self.assertEqual([n for n in os.listdir(os.path.join(self.d, "out")) if "nnc-tmp" in n and
                          not os.path.isdir(os.path.join(self.d, "out", n))], [])

    def test_pair_replaced_together(self):
        self.old_pair()
        r = self.compile_pair()
        self.assertEqual(r.returncode, 0, r.stderr)
        with open(os.path.join(self.d, "out", "x.c")) as f:
            self.assertIn('#include "x.h"', f.read())
        with open(os.path.join(self.d, "out", "x.h")) as f:
            self.assertNotIn("OLD", f.read())
        self.assertEqual([n for n in os.listdir(os.path.join(self.d, "out")) if "nnc-tmp" in n], [])

    def test_pair_second_write_fails(self):
        """The .c's temporary is complete when the .h's cannot be created (its
        name is taken by a folder, made in the child before exec, so with
        nnc's pid): both temporaries go, the old pair stays."""
        self.old_pair()
        out = os.path.join(self.d, "out")

        def block_h():
            os.mkdir(os.path.join(out, f".x.h.nnc-tmp.{os.getpid()}"))
        r = self.compile_pair(block_h)
        self.assert_old_pair(r)
        self.assertIn("cannot write 'out/x.h'", r.stderr)

    def test_pair_disk_full(self):
        """A file size limit (RLIMIT_FSIZE, as a full disk) during the writes."""
        self.old_pair()

        def limit():
            signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
            resource.setrlimit(resource.RLIMIT_FSIZE, (1024, 1024))
        r = self.compile_pair(limit)
        self.assert_old_pair(r)
        self.assertIn("File too large", r.stderr)

    def test_pair_second_rename_fails(self):
        """The .c is renamed into place, then the .h's rename fails (x.h is a
        folder): the previous x.c comes back."""
        out = os.path.join(self.d, "out")
        os.makedirs(os.path.join(out, "x.h", "keep"))
        with open(os.path.join(out, "x.c"), "w") as f:
            f.write("OLD x.c")
        r = self.compile_pair()
        self.assertEqual(r.returncode, 1, r.stderr)
        self.assertIn("cannot write 'out/x.h'", r.stderr)
        with open(os.path.join(out, "x.c")) as f:
            self.assertEqual(f.read(), "OLD x.c")
        self.assertEqual(sorted(os.listdir(out)), ["x.c", "x.h"])


if __name__ == "__main__":
    unittest.main()
