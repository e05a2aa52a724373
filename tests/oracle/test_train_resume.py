"""`nnc train` killed and resumed ends exactly where an uninterrupted run ends (issue 5).

A LeNet-5 trains on a small synthetic npy dataset (written here) for three
epochs with a checkpoint after each: once straight through, and once killed
with SIGKILL during its second epoch, then restarted with --resume. The
trained weights (--out) and the final checkpoints must be byte for byte the
same: the loader's order is a function of (seed, epoch), dropout's masks of
(seed, step), and the checkpoint holds parameters, buffers, optimizer state
and the step. The killed run's last checkpoint must still be the intact one of
epoch 1 (checkpoints are written atomically). Needs numpy only."""
import os
import signal
import subprocess
import tempfile
import time
import unittest

import numpy as np

from nncutil import NNC, SRC


def write_npy_dataset(d, n=2048, seed=0):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 10, size=n)
    images = rng.random((n, 1, 28, 28), dtype=np.float32) * 0.5
    for i, c in enumerate(labels):  # a learnable pattern: a bright row per class
        images[i, 0, 2 + 2 * c, :] += 0.5
    os.makedirs(d, exist_ok=True)
    np.save(os.path.join(d, "train_images.npy"), images)
    np.save(os.path.join(d, "train_labels.npy"), labels.astype(np.int64))
    np.save(os.path.join(d, "test_images.npy"), images[:256])
    np.save(os.path.join(d, "test_labels.npy"), labels[:256].astype(np.int64))


def checkpoint_epoch(path):
    """The nnc_epoch of a checkpoint's metadata, or None when there is none yet."""
    try:
        with open(path, "rb") as f:
            n = int.from_bytes(f.read(8), "little")
            head = f.read(n).decode()
    except (OSError, ValueError):
        return None
    import json
    return int(json.loads(head).get("__metadata__", {}).get("nnc_epoch", "0"))


class TrainResume(unittest.TestCase):
    def test_kill_and_resume(self):
        model = os.path.join(SRC, "models", "lenet5.net")
        with tempfile.TemporaryDirectory() as d:
            data = os.path.join(d, "data")
            write_npy_dataset(data)
            common = [NNC, "train", model, "--data", "npy:" + data, "--epochs", "3", "--batch", "16", "--seed", "7"]

            full_out, full_ck = os.path.join(d, "full.safetensors"), os.path.join(d, "full.ck")
            subprocess.run(common + ["--out", full_out, "--checkpoint", full_ck], check=True, capture_output=True)

            out, ck = os.path.join(d, "part.safetensors"), os.path.join(d, "part.ck")
            p = subprocess.Popen(common + ["--out", out, "--checkpoint", ck], stdout=subprocess.DEVNULL,
                                 stderr=subprocess.DEVNULL)
            deadline = time.time() + 300
            while checkpoint_epoch(ck) != 1 and time.time() < deadline and p.poll() is None:
                time.sleep(0.01)
            self.assertIsNone(p.poll(), "the run ended before it could be killed; make the dataset larger")
            time.sleep(0.2)  # into epoch 2
            p.send_signal(signal.SIGKILL)
            p.wait()
            self.assertEqual(checkpoint_epoch(ck), 1, "the checkpoint after the kill is not epoch 1's")
            self.assertFalse(os.path.exists(out))

            r = subprocess.run(common + ["--out", out, "--checkpoint", ck, "--resume"], capture_output=True, text=True)
            self.assertEqual(r.returncode, 0, r.stderr)
            with open(full_out, "rb") as a, open(out, "rb") as b:
                self.assertEqual(a.read(), b.read(), "resumed weights differ from the uninterrupted run's")
            with open(full_ck, "rb") as a, open(ck, "rb") as b:
                self.assertEqual(a.read(), b.read(), "resumed checkpoint differs from the uninterrupted run's")


if __name__ == "__main__":
    unittest.main()
