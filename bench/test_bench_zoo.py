#!/usr/bin/python3
"""A smoke test of bench_zoo.py's argument handling and its refusals, in a
few seconds (importing torch is most of it): nothing is timed, nothing
compiled (a benchmark run is the only real test of the benchmark).

    /usr/bin/python3 bench/test_bench_zoo.py
"""
import contextlib
import io
import os
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench_zoo  # noqa: E402
import benchlib  # noqa: E402


def refused(argv):
    """parse_args's complaint (argparse exits 2), as text."""
    err = io.StringIO()
    with contextlib.redirect_stderr(err), unittest.TestCase().assertRaises(SystemExit) as cm:
        bench_zoo.parse_args(argv)
    assert cm.exception.code == 2
    return err.getvalue()


class Args(unittest.TestCase):
    def test_defaults_are_the_whole_zoo_at_1_and_16(self):
        a = bench_zoo.parse_args([])
        self.assertEqual(a.models, bench_zoo.ZOO)
        self.assertEqual(a.batches, [1, 16])
        self.assertEqual((a.rounds, a.threads, a.runs), (3, 2, None))
        self.assertEqual(a.train_models, ["lenet5", "resnet18_cifar"])

    def test_quick_has_fewer_models_and_rounds_unless_told(self):
        a = bench_zoo.parse_args(["--quick"])
        self.assertEqual(a.models, bench_zoo.QUICK_MODELS)
        self.assertLess(a.rounds, 3)
        self.assertLess(a.budget_ms, bench_zoo.parse_args([]).budget_ms)
        a = bench_zoo.parse_args(["--quick", "--models", "resnet18", "--rounds", "5"])
        self.assertEqual((a.models, a.rounds), (["resnet18"], 5))

    def test_lists(self):
        a = bench_zoo.parse_args(["--models", "lenet5, vgg16", "--batches", "1,8,32", "--runs", "4"])
        self.assertEqual((a.models, a.batches, a.runs), (["lenet5", "vgg16"], [1, 8, 32], 4))

    def test_bad_values_are_refused_in_one_line(self):
        self.assertIn("no models/nosuchnet.net", refused(["--models", "lenet5,nosuchnet"]))
        self.assertIn("whole numbers >= 1", refused(["--batches", "1,0"]))
        self.assertIn("whole numbers >= 1", refused(["--batches", "x"]))
        self.assertIn(">= 1", refused(["--rounds", "0"]))
        self.assertIn("comma-separated", refused(["--models", ","]))


class Refusals(unittest.TestCase):
    def test_no_nnc(self):
        with self.assertRaises(bench_zoo.BenchError) as cm:
            bench_zoo.main(["--nnc", "/nonexistent/nnc", "--no-train"])
        self.assertIn("cmake --build build", str(cm.exception))

    def test_require_ort_without_ort(self):
        saved = benchlib.ort_available
        benchlib.ort_available = lambda: False
        try:
            with self.assertRaises(bench_zoo.BenchError) as cm:
                bench_zoo.main(["--nnc", sys.executable, "--require-ort", "--no-train"])
            self.assertIn("setup_ort.sh", str(cm.exception))
        finally:
            benchlib.ort_available = saved


if __name__ == "__main__":
    unittest.main()
