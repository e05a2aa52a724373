"""What the training forms of the passes may and may not do to a network
before it is differentiated (passes/cleanup.c, passes/dce.c; issue 5).

- A parameter that no output depends on (a dead branch) stays in the training
  module's tensor table, so `nnc train --seed S` starts from exactly what
  `nnc init --seed S` writes and --out carries every tensor -O0 inference
  needs; it gets no gradient, and the optimizer leaves it untouched even with
  momentum and weight decay (torch.optim skips a parameter whose grad is None).
- An output that is an identity of another output, or computed by the same
  expression as another, keeps a node of its own: the training step computes
  each output in its own buffer, and such a network trains.
- Dropout survives the clean-up and two dropouts of one tensor stay two (two
  masks): the training module calls the dropout kernel twice.
Needs numpy only."""
import os
import subprocess
import tempfile
import unittest

import numpy as np

from nncutil import NNC, nnc, st_read

DEAD = """
network dead {
    input image: [1, 8, 8]
    x = image |> conv(4, 3, pad: 1) as c1 |> relu
    s = image |> conv(2, 3, pad: 1) as side |> relu
    output logits = x |> flatten |> linear(3) as fc
}
"""

TWIN_OUTPUTS = """
network twins {
    input image: [1, 8, 8]
    x = image |> conv(4, 3, pad: 1) as c1 |> relu |> flatten |> linear(3) as fc
    output logits = x
    output aux = x |> identity
}
"""

TWO_DROPOUTS = """
network drops {
    input image: [1, 8, 8]
    x = image |> flatten
    output logits = concat(dropout(x, p: 0.5), dropout(x, p: 0.5)) |> linear(3) as fc
}
"""


def write_data(d, n=96, seed=0):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 3, size=n)
    images = rng.random((n, 1, 8, 8), dtype=np.float32) * 0.3
    for i, c in enumerate(labels):
        images[i, 0, 2 * c, :] += 0.7
    os.makedirs(d, exist_ok=True)
    np.save(os.path.join(d, "train_images.npy"), images)
    np.save(os.path.join(d, "train_labels.npy"), labels.astype(np.int64))


class TrainGraph(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.d = self.tmp.name
        self.data = os.path.join(self.d, "data")
        write_data(self.data)

    def tearDown(self):
        self.tmp.cleanup()

    def net(self, name, text):
        path = os.path.join(self.d, name + ".net")
        with open(path, "w") as f:
            f.write(text)
        return path

    def train(self, model, *extra):
        out = os.path.join(self.d, "out.safetensors")
        nnc("train", model, "--data", "npy:" + self.data, "--epochs", "2", "--batch", "16", "--seed", "5",
            "--optimizer", "sgd", "--lr", "0.1", "--momentum", "0.9", "--weight-decay", "0.01", "--out", out, *extra)
        return st_read(out)

    def test_dead_branch_parameters_stay_and_do_not_move(self):
        model = self.net("dead", DEAD)
        init = os.path.join(self.d, "init.safetensors")
        nnc("init", model, "--seed", "5", "-o", init)
        start = st_read(init)
        got = self.train(model)
        self.assertEqual(sorted(got), sorted(start))  # every tensor, as -O0 and nnc init have them
        for name in ("side.weight", "side.bias"):
            np.testing.assert_array_equal(got[name], start[name], err_msg=f"{name} has no gradient: untouched")
        for name in ("c1.weight", "fc.weight"):
            self.assertFalse(np.array_equal(got[name], start[name]), f"{name} was trained")
        # the trained weights run at -O0, which keeps the dead branch and needs its weights
        x = os.path.join(self.d, "x.npy")
        np.save(x, np.zeros((2, 1, 8, 8), dtype=np.float32))
        w = os.path.join(self.d, "out.safetensors")
        nnc("run", model, "-O0", "--weights", w, "--input", "image=" + x)

    def test_twin_outputs_train(self):
        model = self.net("twins", TWIN_OUTPUTS)
        got = self.train(model)
        self.assertIn("fc.weight", got)
        self.assertTrue(np.isfinite(got["fc.weight"]).all())
        src = os.path.join(self.d, "twins_train.c")
        nnc(model, "--emit=train", "--batch", "4", "-o", src)

    def test_two_dropouts_stay_two(self):
        model = self.net("drops", TWO_DROPOUTS)
        src = os.path.join(self.d, "drops_train.c")
        ir = nnc(model, "--emit=train", "--batch", "4", "-o", src, "--print-after", "cleanup").stderr
        self.assertEqual(ir.count("= dropout("), 2, ir)
        with open(src) as f:
            text = f.read()
        self.assertEqual(text.count("    nnc_dropout_train("), 2)
        self.train(model)


if __name__ == "__main__":
    unittest.main()
