#!/usr/bin/python3
"""How well a search objective separates architectures: two exhaustive searches of the
same space and budget with different seeds (train.seed, mad.seed), compared candidate by
candidate.

Usage: objective_separation.py RUN_DIR_A RUN_DIR_B

Prints the Spearman correlation between the two seeds' objectives over every candidate
and over the top half (the better half by the mean of the two), the spread of the top 16, where each seed's best ranks in
the other, and the per-task accuracies of the best candidates.
"""
import sys

import h5py
import pandas as pd


def candidates(run_dir):
    with h5py.File(run_dir + "/results.h5", "r") as f:
        frame = pd.DataFrame(f["/search/candidates"][()])
    for column in frame.columns:
        if frame[column].dtype == object:
            frame[column] = frame[column].str.decode("ascii")
    return frame[frame["valid"] == 1].set_index("arch")


def spearman(x, y):
    return x.rank().corr(y.rank())  # Pearson on average ranks: Spearman with ties


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    a, b = candidates(sys.argv[1]), candidates(sys.argv[2])
    common = a.index.intersection(b.index)
    a, b = a.loc[common], b.loc[common]
    mean = (a["objective"] + b["objective"]) / 2
    top = mean.sort_values(ascending=False).index[: len(common) // 2]
    print(f"{len(common)} candidates in both searches")
    pairs = [("objective", a["objective"], b["objective"])]
    if a["validation_loss"].notna().all():  # token objectives: the loss too
        pairs.append(("-validation loss", -a["validation_loss"], -b["validation_loss"]))
    for name, x, y in pairs:
        print(f"{name:26s} Spearman all {spearman(x, y):+.3f}  top half {spearman(x[top], y[top]):+.3f}")
    best16 = mean.sort_values(ascending=False).iloc[:16]
    print(f"top 16 by mean objective span {best16.iloc[0] - best16.iloc[-1]:.4f} ({best16.iloc[-1]:.4f}..{best16.iloc[0]:.4f})")
    for label, own, other in (("A", a, b), ("B", b, a)):
        best = own["objective"].idxmax()
        rank = int(other["objective"].rank(ascending=False, method="min")[best])
        print(f"best of seed {label}: {best} ({own['objective'][best]:.4f}); rank {rank} in the other seed")
    tasks = [c for c in a.columns if c.startswith("task_")]
    by_attention = mean.groupby(a["num_attention"]).mean()
    print("mean objective by attention layers: " +
          ", ".join(f"{int(k)}: {v:.3f}" for k, v in by_attention.items()))
    print("best candidates (mean of the two seeds):")
    print("  arch      objective  " + "  ".join(t[5:] for t in tasks))
    for arch in mean.sort_values(ascending=False).index[:8]:
        scores = "  ".join(f"{(a[t][arch] + b[t][arch]) / 2:.3f}".rjust(len(t) - 5) for t in tasks)
        print(f"  {arch:8s}  {mean[arch]:.4f}     {scores}")


if __name__ == "__main__":
    main()
