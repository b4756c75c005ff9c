#!/usr/bin/python3
"""Checks and damage for the hnas pretrain e2e test.

Usage: pretrain_check.py COMMAND ARGS...
  same DIR_A DIR_B MODEL TOLERANCE  the training and validation losses of MODEL in the two
                                    run directories agree (TOLERANCE 0: bit for bit)
  close DIR_A DIR_B MODEL TOLERANCE  the validation losses agree within TOLERANCE relative
  record DIR MODEL...               /pretrain/<model> and /pretrain/summary are complete
                                    and consistent, loaded with h5py and pandas
  learned DIR MODEL                 the validation loss fell well below its start
  flip FILE                         flips one byte inside the first weight tensor's data
  inference DIR MODEL...            /inference/models has these models in order, with timings and
                                    the KV bytes of their attention layers
Exits 1 with a message on the first failed check.
"""
import sys

import h5py
import numpy as np
import pandas as pd


def fail(message):
    print("pretrain_check: FAIL: " + message)
    sys.exit(1)


def series(run_dir, model):
    with h5py.File(run_dir + "/results.h5", "r") as f:
        return f[f"/pretrain/{model}/train"][()], f[f"/pretrain/{model}/validation"][()]


def same(a, b, model, tolerance):
    (train_a, val_a), (train_b, val_b) = series(a, model), series(b, model)
    if len(train_a) != len(train_b):
        fail(f"{model}: {len(train_a)} training steps in {a}, {len(train_b)} in {b}")
    if not np.array_equal(train_a["step"], train_b["step"]) or not np.array_equal(train_a["tokens"], train_b["tokens"]):
        fail(model + ": steps or token counts differ")
    for name, x, y in (("training", train_a["loss"], train_b["loss"]), ("validation", val_a["loss"], val_b["loss"]),
                       ("lr", train_a["lr"], train_b["lr"])):
        if tolerance == 0:
            if not np.array_equal(x, y):
                i = int(np.argmax(x != y))
                fail(f"{model}: {name} losses differ at row {i}: {x[i]!r} vs {y[i]!r} (expected bit-identical)")
        else:
            worst = float(np.max(np.abs(x - y) / np.maximum(np.abs(x), 1e-12)))
            if worst > tolerance:
                fail(f"{model}: {name} losses differ by {worst:.3g} relative (tolerance {tolerance})")
            print(f"{model}: {name} losses agree within {worst:.3g} relative")
    print(f"{model}: {len(train_a)} steps agree" + (" bit for bit" if tolerance == 0 else ""))


def close(a, b, model, tolerance):
    (_, val_a), (_, val_b) = series(a, model), series(b, model)
    if not np.array_equal(val_a["step"], val_b["step"]):
        fail(model + ": the validation steps differ")
    worst = float(np.max(np.abs(val_a["loss"] - val_b["loss"]) / val_a["loss"]))
    if worst > tolerance:
        fail(f"{model}: validation losses differ by {worst:.3g} relative (tolerance {tolerance})")
    print(f"{model}: validation losses agree within {worst:.3g} relative (tolerance {tolerance})")


def record(run_dir, models):
    with h5py.File(run_dir + "/results.h5", "r") as f:
        summary = pd.DataFrame(f["/pretrain/summary"][()])
        summary["model"] = summary["model"].str.decode("ascii")
        for model in models:
            g = f["/pretrain/" + model]
            for key in ["status", "arch", "steps", "total_steps", "tokens", "wall_seconds", "tokens_per_second", "mfu",
                        "final_validation_loss", "parameters", "non_embedding_parameters", "identity_fingerprint"]:
                if key not in g.attrs:
                    fail(f"/pretrain/{model} lacks attribute {key}")
            if g.attrs["status"] != "completed" or g.attrs["steps"] != g.attrs["total_steps"]:
                fail(f"{model}: status {g.attrs['status']} after {g.attrs['steps']} of {g.attrs['total_steps']}")
            train = pd.DataFrame(g["train"][()])
            val = pd.DataFrame(g["validation"][()])
            if list(train.step) != list(range(1, g.attrs["total_steps"] + 1)):
                fail(model + ": the training series is not one row per step")
            if not (train.tokens.diff().dropna() > 0).all() or not (train.tokens_per_second > 0).all():
                fail(model + ": tokens or throughput")
            if not (train.mfu > 0).all() or not (train.mfu < 1.5).all():
                fail(model + ": MFU out of range: %s" % train.mfu.describe())
            if val.step.iloc[-1] != g.attrs["total_steps"] or val.loss.iloc[-1] != g.attrs["final_validation_loss"]:
                fail(model + ": the final validation loss is not the last validation point")
            row = summary[summary.model == model]
            if len(row) != 1 or row.final_validation_loss.iloc[0] != g.attrs["final_validation_loss"]:
                fail(model + ": /pretrain/summary does not match its group")
        print(summary.to_string())


def learned(run_dir, model):
    _, val = series(run_dir, model)
    first, last = val["loss"][0], val["loss"][-1]
    if not last < first - 0.5:
        fail(f"{model}: validation loss {first:.3f} -> {last:.3f}: it did not learn")
    print(f"{model}: validation loss {first:.3f} -> {last:.3f}")


def inference(run_dir, models):
    with h5py.File(run_dir + "/results.h5", "r") as f:
        df = pd.DataFrame(f["/inference/models"][()])
    for column in ("model", "arch"):
        df[column] = df[column].str.decode("ascii")
    if list(df.model) != models:
        fail(f"/inference models {list(df.model)}, expected {models}")
    if not (df.prefill_ms > 0).all() or not (df.decode_ms_per_token > 0).all():
        fail("/inference timings are not positive")
    per_layer = df.kv_cache_bytes_per_token / df.arch.str.count("A")
    if per_layer.nunique() != 1 or df.kv_ratio_to_baseline.iloc[-1] != 1.0:
        fail("/inference KV bytes are not proportional to the attention layers")
    print(df.to_string())


def flip(path):
    with h5py.File(path, "r") as f:
        name = sorted(f["/weights"].keys())[0]
        offset = f["/weights/" + name].id.get_offset()
    if offset is None:
        fail("the tensor has no contiguous storage")
    with open(path, "r+b") as raw:
        raw.seek(offset + 17)
        byte = raw.read(1)
        raw.seek(offset + 17)
        raw.write(bytes([byte[0] ^ 0x40]))
    print(f"flipped one byte of /weights/{name} in {path}")


def main():
    command = sys.argv[1]
    if command == "same":
        same(sys.argv[2], sys.argv[3], sys.argv[4], float(sys.argv[5]))
    elif command == "close":
        close(sys.argv[2], sys.argv[3], sys.argv[4], float(sys.argv[5]))
    elif command == "record":
        record(sys.argv[2], sys.argv[3:])
    elif command == "learned":
        learned(sys.argv[2], sys.argv[3])
    elif command == "inference":
        inference(sys.argv[2], sys.argv[3:])
    elif command == "flip":
        flip(sys.argv[2])
    else:
        fail("unknown command " + command)


if __name__ == "__main__":
    main()
