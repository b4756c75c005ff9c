#!/usr/bin/env python3
"""The table of the CPU-scale Composer experiment (tools/experiments/cpu_composer.sh).

Usage: cpu_composer_report.py ROOT

Reads ROOT/main (hnas run), ROOT/control_* (the controls' extrapolation) and ROOT/seed_*
(pre-training at each seed) and prints, per pre-trained architecture: its six-layer
source and that source's search objective, layers, attention layers, parameters, the
validation loss at each seed with mean and spread, decode latency and KV-cache bytes;
then the winner's attention fraction and shape, the Spearman correlation between the
search objective and the pre-training validation loss, and the KV-cache and decode
ratios to the baseline.
"""
import glob
import os
import sys

import h5py
import numpy as np
import pandas as pd


def text(value):
    return value.decode() if isinstance(value, bytes) else str(value)


def spearman(x, y):
    return pd.Series(x).rank().corr(pd.Series(y).rank())


def main(root):
    main_path = os.path.join(root, "main", "results.h5")
    with h5py.File(main_path, "r") as f:
        extrapolate = dict(f["extrapolate"].attrs)
        aggregate = dict(f["aggregate"].attrs)
        candidates = pd.DataFrame(f["search/candidates"][:])
        summary = pd.DataFrame(f["summary/models"][:])
    candidates["arch"] = candidates["arch"].map(text)
    objective = candidates.groupby("arch")["objective"].mean()
    for column in ("model", "arch"):
        summary[column] = summary[column].map(text)

    winner, baseline = text(extrapolate["arch"]), text(extrapolate["baseline_arch"])
    # Rows: role -> (six-layer source, architecture at the target).
    six = len(text(extrapolate["source_arch"]))
    llama_six = ("AM" * six)[:six]  # the baseline's interleaving at the search's depth
    roles = {
        "winner": (text(extrapolate["source_arch"]), winner),
        "baseline": (llama_six, baseline),
    }
    for path in sorted(glob.glob(os.path.join(root, "control_*", "results.h5"))):
        with h5py.File(path, "r") as f:
            a = f["extrapolate"].attrs
            source, target = text(a["source_arch"]), text(a["arch"])
        role = "best candidate" if source == text(aggregate["best_arch"]) else "random control"
        roles[role] = (source, target)

    # Validation loss per (architecture, seed), from every run directory.
    losses, parameters = {}, {}
    decode, kv_bytes = {}, {}  # per architecture, from one process: seed_1's inference
    runs = [("main", 0)] + [(os.path.basename(p), int(p.rsplit("_", 1)[1]))
                            for p in sorted(glob.glob(os.path.join(root, "seed_*")))]
    for name, seed in runs:
        path = os.path.join(root, name, "results.h5")
        if not os.path.exists(path):
            continue
        with h5py.File(path, "r") as f:
            for key, group in f.get("pretrain", {}).items():
                if key in ("summary", "tokenizer") or group.attrs.get("status", b"") in (b"running", "running"):
                    continue
                arch = text(group.attrs["arch"])
                losses.setdefault(arch, {})[seed] = float(group.attrs["final_validation_loss"])
                parameters[arch] = int(group.attrs["parameters"])
            if name == "seed_1" and "inference/models" in f:
                timed = pd.DataFrame(f["inference/models"][:])
                timed["arch"] = timed["arch"].map(text)
                decode = dict(zip(timed["arch"], timed["decode_ms_per_token"]))
                kv_bytes = dict(zip(timed["arch"], timed["kv_cache_bytes_per_token"]))

    rows = []
    for role, (source, target) in roles.items():
        seeds = losses.get(target, {})
        values = np.array([seeds[s] for s in sorted(seeds)])
        rows.append({
            "role": role,
            "source": source,
            "search_objective": objective.get(source, np.nan),
            "arch": target,
            "layers": len(target),
            "attention": target.count("A"),
            "parameters": parameters.get(target, 0),
            **{f"loss_seed{s}": seeds.get(s, np.nan) for s in (0, 1, 2)},
            "loss_mean": values.mean() if len(values) else np.nan,
            "loss_std": values.std(ddof=1) if len(values) > 1 else np.nan,
            "decode_ms": decode.get(target, np.nan),
            "kv_bytes": kv_bytes.get(target, np.nan),
        })
    table = pd.DataFrame(rows)
    pd.set_option("display.width", 200)
    pd.set_option("display.max_columns", 30)
    print(table.to_string(index=False, float_format=lambda v: f"{v:.4f}"))

    w = table[table.role == "winner"].iloc[0]
    b = table[table.role == "baseline"].iloc[0]
    print(f"winner {w.arch}: attention fraction {w.attention / w.layers:.3f}, "
          f"starts with {'attention' if w.arch[0] == 'A' else 'an MLP'}, "
          f"ends with {'an MLP' if w.arch[-1] == 'M' else 'attention'}")
    print(f"winner - baseline validation loss: {w.loss_mean - b.loss_mean:+.4f} nats "
          f"(spreads {w.loss_std:.4f} and {b.loss_std:.4f} over seeds)")
    print(f"winner / baseline: KV cache {w.kv_bytes / b.kv_bytes:.3f}, parameters {w.parameters / b.parameters:.3f}, "
          f"decode latency {w.decode_ms / b.decode_ms:.3f} (seed 1's models, timed in one process)")
    main_w, main_b = (summary[summary.model == m].iloc[0] for m in ("winner", "baseline"))
    print(f"hnas run's own summary (seed 0): decode latency {main_w.decode_ms_per_token / main_b.decode_ms_per_token:.3f}, "
          f"training tokens/s {main_w.tokens_per_second / main_b.tokens_per_second:.3f}")
    scored = table.dropna(subset=["search_objective", "loss_mean"])
    print(f"Spearman(search objective, -validation loss) over {len(scored)} architectures: "
          f"{spearman(scored.search_objective, -scored.loss_mean):+.3f}")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    main(sys.argv[1])
