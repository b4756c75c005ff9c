#!/usr/bin/python3
"""Checks of the hnas run e2e test.

Usage: run_check.py COMMAND ARGS...
  complete DIR   every group of DIR/results.h5 is there and finished, loaded with h5py and
                 pandas, and /summary agrees with /pretrain, /inference and /extrapolate
  same DIR_A DIR_B  the two runs have the same results, bit for bit: search objectives,
                 aggregate, extrapolation, pre-training curves and the summary (timings
                 excepted: they are measured)
Exits 1 with a message on the first failed check.
"""
import math
import sys

import h5py
import numpy as np
import pandas as pd

GROUPS = ["provenance", "search", "aggregate", "extrapolate", "pretrain", "inference", "summary"]
TIMED = {"tokens_per_second", "mfu", "prefill_ms", "decode_ms_per_token", "tokens_per_second_ratio", "decode_ratio"}


def fail(message):
    print("run_check: FAIL: " + message)
    sys.exit(1)


def table(f, name):
    frame = pd.DataFrame(f[name][()])
    for column in frame.columns:
        if frame[column].dtype == object:
            frame[column] = frame[column].str.decode("ascii")
    return frame


def complete(run_dir):
    with h5py.File(run_dir + "/results.h5", "r") as f:
        for group in GROUPS:
            if group not in f:
                fail(f"results.h5 has no /{group}")
        for group in ("aggregate", "extrapolate", "inference"):
            if f[group].attrs["status"] != "completed":
                fail(f"/{group} status is {f[group].attrs['status']}")
        candidates = table(f, "/search/candidates")
        if len(candidates) != 16 or not candidates["valid"].all():
            fail(f"/search/candidates has {len(candidates)} rows, {int(candidates['valid'].sum())} valid; expected 16")
        pretrain = table(f, "/pretrain/summary").set_index("model")
        if sorted(pretrain.index) != ["baseline", "winner"] or (pretrain["status"] != "completed").any():
            fail("/pretrain/summary: " + pretrain[["status"]].to_string())
        inference = table(f, "/inference/models")
        if list(inference["model"]) != ["winner", "baseline"]:
            fail(f"/inference/models lists {list(inference['model'])}")
        summary = table(f, "/summary/models")
        if list(summary["model"]) != ["winner", "baseline"]:
            fail(f"/summary/models lists {list(summary['model'])}, expected winner then baseline")
        extrapolate = f["extrapolate"].attrs
        lineage = f["summary"].attrs
        if lineage["winner_arch"] != extrapolate["arch"] or lineage["baseline_arch"] != extrapolate["baseline_arch"]:
            fail("/summary's lineage differs from /extrapolate's architectures")
        if lineage["aggregate_arch"] != f["aggregate"].attrs["arch"]:
            fail("/summary aggregate_arch differs from /aggregate arch")
        for _, row in summary.iterrows():
            model = row["model"]
            arch = row["arch"]
            expected_arch = extrapolate["arch"] if model == "winner" else extrapolate["baseline_arch"]
            if arch != expected_arch:
                fail(f"{model}: /summary arch {arch}, /extrapolate {expected_arch}")
            if row["layers"] != len(arch) or row["attention_layers"] != arch.count("A") or \
                    row["mlp_layers"] != arch.count("M"):
                fail(f"{model}: layer counts {row['layers']}/{row['attention_layers']}/{row['mlp_layers']} for {arch}")
            source = pretrain.loc[model]
            for column, value in (("validation_loss", source["final_validation_loss"]),
                                  ("parameters", source["parameters"]), ("mfu", source["mfu"])):
                if row[column] != value:
                    fail(f"{model}: /summary {column} {row[column]} but /pretrain has {value}")
            timed = inference.set_index("model").loc[model]
            if row["kv_cache_bytes_per_token"] != timed["kv_cache_bytes_per_token"] or \
                    row["decode_ms_per_token"] != timed["decode_ms_per_token"] or not row["decode_ms_per_token"] > 0:
                fail(f"{model}: /summary inference figures differ from /inference")
            if not math.isfinite(row["validation_loss"]) or not 0 < row["validation_loss"] < math.log(257):
                fail(f"{model}: validation loss {row['validation_loss']} (a byte-level model that learned is below ln 257)")
        base = summary.iloc[-1]
        for column in ("parameters_ratio", "tokens_per_second_ratio", "decode_ratio", "kv_cache_ratio"):
            if base[column] != 1.0:
                fail(f"baseline {column} is {base[column]}, expected 1")
        winner = summary.iloc[0]
        if abs(winner["validation_loss_minus_baseline"] - (winner["validation_loss"] - base["validation_loss"])) > 1e-12:
            fail("validation_loss_minus_baseline is not the difference of the losses")
        if abs(winner["kv_cache_ratio"] - winner["kv_cache_bytes_per_token"] / base["kv_cache_bytes_per_token"]) > 1e-12:
            fail("kv_cache_ratio is not the ratio of the KV bytes")
    print(f"{run_dir}: every group complete; summary consistent ({len(summary)} models)")


def same(a, b):
    with h5py.File(a + "/results.h5", "r") as fa, h5py.File(b + "/results.h5", "r") as fb:
        ca = table(fa, "/search/candidates").sort_values("arch").reset_index(drop=True)
        cb = table(fb, "/search/candidates").sort_values("arch").reset_index(drop=True)
        if list(ca["arch"]) != list(cb["arch"]) or not np.array_equal(ca["objective"], cb["objective"]):
            fail("the search objectives differ")
        for group, keys in (("aggregate", ("arch", "method_used", "objective")),
                            ("extrapolate", ("arch", "baseline_arch", "method", "copies"))):
            for key in keys:
                if fa[group].attrs[key] != fb[group].attrs[key]:
                    fail(f"/{group} {key}: {fa[group].attrs[key]} vs {fb[group].attrs[key]}")
        for model in ("winner", "baseline"):
            for series in ("train", "validation"):
                x, y = fa[f"/pretrain/{model}/{series}"][()], fb[f"/pretrain/{model}/{series}"][()]
                if len(x) != len(y) or not np.array_equal(x["loss"], y["loss"]):
                    fail(f"/pretrain/{model}/{series} losses differ")
        sa, sb = table(fa, "/summary/models"), table(fb, "/summary/models")
        for column in sa.columns:
            if column not in TIMED and not sa[column].equals(sb[column]):
                fail(f"/summary column {column} differs: {list(sa[column])} vs {list(sb[column])}")
    print(f"{a} and {b}: the same results bit for bit (timings aside)")


def main():
    if len(sys.argv) < 3:
        fail(__doc__)
    command, args = sys.argv[1], sys.argv[2:]
    if command == "complete":
        complete(*args)
    elif command == "same":
        same(*args)
    else:
        fail("unknown command " + command)


if __name__ == "__main__":
    main()
