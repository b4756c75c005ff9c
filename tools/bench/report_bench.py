#!/usr/bin/python3
"""hnas-report at scale: a synthetic results.h5 with N evaluations (16-layer candidates,
16 curve points each, the rest of the run copied from a real run directory) reported at
N = 1,000 and 10,000; prints the seconds of each and their ratio (10x the evaluations:
a ratio near 1 means the size does not matter, 10 that the cost is linear).

    tools/bench/report_bench.py RUN_DIR     # a finished `hnas run` directory
"""
import os
import shutil
import sys
import tempfile
import time

import h5py
import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import hnas_report  # noqa: E402


def synthetic(source, target, n, rng):
    shutil.copytree(source, target, ignore=shutil.ignore_patterns("checkpoints", "*.lock"))
    with h5py.File(os.path.join(target, "results.h5"), "a") as f:
        old = f["/search/candidates"]
        dtype = [(name, "S16" if name == "arch" else old.dtype[name]) for name in old.dtype.names]
        rows = np.zeros(n, dtype=dtype)
        layers = rng.integers(0, 2, size=(n, 16))
        rows["arch"] = ["".join("AM"[b] for b in row).encode() for row in layers]
        rows["candidate_id"] = np.arange(n)
        rows["num_layers"] = 16
        rows["num_attention"] = (layers == 0).sum(1)
        rows["objective"] = rng.normal(0.5, 0.1, n)
        rows["valid"] = rng.random(n) > 0.02
        rows["rung"] = rng.integers(0, 3, n)
        rows["finished_unix"] = np.arange(n, dtype=float)
        attrs = dict(old.attrs)
        del f["/search/candidates"]
        f["/search/candidates"] = rows
        for k, v in attrs.items():
            f["/search/candidates"].attrs[k] = v
        curves = f["/search/curves"]
        points = np.zeros(16 * n, dtype=curves.dtype)
        points["candidate_id"] = np.repeat(np.arange(n), 16)
        points["step"] = np.tile(np.arange(16), n)
        points["loss"] = rng.random(16 * n)
        del f["/search/curves"]
        f["/search/curves"] = points


def main():
    source = sys.argv[1] if len(sys.argv) > 1 else sys.exit(__doc__)
    rng = np.random.default_rng(0)
    work = tempfile.mkdtemp(prefix="hnas-report-bench-")
    seconds = {}
    for n in (1000, 10000):
        run = os.path.join(work, f"run{n}")
        synthetic(source, run, n, rng)
        best = float("inf")
        for _ in range(3):
            start = time.perf_counter()
            hnas_report.report([run], os.path.join(work, f"out{n}"))
            best = min(best, time.perf_counter() - start)
        seconds[n] = best
    shutil.rmtree(work)
    for n, s in seconds.items():
        print(f"report_bench: {n} evaluations: {s:.2f} s (best of 3)")
    print(f"report_bench: 10,000 against 1,000 evaluations: {seconds[10000] / seconds[1000]:.2f}x the time")


if __name__ == "__main__":
    main()
