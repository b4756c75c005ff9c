#!/usr/bin/python3
"""hnas-report: the run directory as a report with plots, for one run or many.

    hnas-report RUN_DIR [RUN_DIR ...] --out DIR

Reads each RUN_DIR/results.h5 (nothing else: a run directory copied from a cluster
works) and writes to DIR one PNG per figure and index.html, a self-contained page with
the figures and the summary tables; the summary is printed too. A stage a run has not
written yet is skipped with a note, so a run still in progress can be reported.

Figures (one run): search progress (every evaluation's objective in order, the best so
far, per rung, failures marked), the architectures (the top candidates' layer patterns,
attention fraction against objective, the objective's split by primitive at each layer
position), the aggregation (the K-means clusters of the objectives, N_c's votes per
layer), pre-training (loss against tokens and wall time, tokens/s and MFU, the learning
rate), inference (prefill, decode latency and KV cache). With several runs: validation
loss against training FLOPs with fitted power laws (and IsoFLOP parabolas where three or
more runs share a budget), and the Spearman correlation between search-scale and
pre-training-scale rankings.

Strings in HDF5 compound tables reach pandas as bytes whatever their HDF5 type (h5py
returns bytes for fixed- and variable-length strings alike); `table()` decodes them.

The plotting functions return matplotlib figures (the test counts their series); they
read arrays column by column, so 10,000 evaluations take about as long as 1,000
(tools/bench/report_bench.py).
"""
import argparse
import base64
import html
import io
import math
import os
import sys

import h5py
import numpy as np
import pandas as pd

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (after the backend)
from matplotlib.colors import ListedColormap  # noqa: E402

PRIMITIVE_COLOURS = {"A": "#d95f02", "M": "#1b9e77"}


# ---------------------------------------------------------------- reading

def table(f, name):
    """A compound dataset as a DataFrame, its byte strings decoded (h5py returns bytes for
    HDF5 strings in compound types, fixed or variable length alike)."""
    frame = pd.DataFrame(f[name][()])
    for column in frame.columns:
        if frame[column].dtype == object:
            frame[column] = frame[column].str.decode("utf-8", errors="replace")
    return frame


def text(value):
    return value.decode("utf-8", errors="replace") if isinstance(value, bytes) else str(value)


class Run:
    """What one results.h5 holds, stage by stage; None for a stage not written yet."""

    def __init__(self, run_dir):
        self.dir = run_dir
        self.name = os.path.basename(os.path.normpath(run_dir))
        self.notes = []
        path = os.path.join(run_dir, "results.h5")
        if not os.path.exists(path):
            raise SystemExit(f"hnas-report: {path} does not exist (is {run_dir} an hnas run directory?)")
        try:
            f = h5py.File(path, "r")
        except OSError as e:
            raise SystemExit(f"hnas-report: {path} cannot be read as HDF5 ({e})")
        with f:
            self.provenance = dict(f["provenance"].attrs) if "provenance" in f else {}
            self.search = self._read(f, "search", ["candidates", "curves", "events"])
            self.aggregate = self._read(f, "aggregate", ["clusters", "members", "votes", "proposals"])
            self.extrapolate = self._read(f, "extrapolate", ["models", "target"])
            self.pretrain = self._read_pretrain(f)
            self.inference = self._read(f, "inference", ["models"])
            self.summary = self._read(f, "summary", ["models"])

    def _read(self, f, group, tables):
        if group not in f:
            self.notes.append(f"/{group}: not written yet; its figures are skipped")
            return None
        stage = {"attrs": {k: (text(v) if isinstance(v, (bytes, str)) else v) for k, v in f[group].attrs.items()}}
        for name in tables:
            if name in f[group]:
                stage[name] = table(f, f"/{group}/{name}")
        return stage

    def _read_pretrain(self, f):
        if "pretrain" not in f or "summary" not in f["pretrain"]:
            self.notes.append("/pretrain: not written yet; its figures are skipped")
            return None
        stage = {"summary": table(f, "/pretrain/summary"), "models": {}}
        for model in stage["summary"]["model"]:
            group = f[f"/pretrain/{model}"]
            stage["models"][model] = {
                "train": table(f, f"/pretrain/{model}/train"),
                "validation": table(f, f"/pretrain/{model}/validation"),
                "attrs": {k: (text(v) if isinstance(v, (bytes, str)) else v) for k, v in group.attrs.items()},
            }
        return stage


# ---------------------------------------------------------------- figures

def _empty(ax, message):
    ax.text(0.5, 0.5, message, ha="center", va="center", transform=ax.transAxes, color="grey")
    ax.set_xticks([])
    ax.set_yticks([])


def search_progress(runs):
    """Objective of every evaluation in the order they finished, per run (its strategy)
    and rung, the best valid objective so far, failures and divergences marked."""
    fig, ax = plt.subplots(figsize=(9, 4.5))
    plotted = False
    for run in runs:
        if run.search is None or "candidates" not in run.search:
            continue
        c = run.search["candidates"].sort_values("finished_unix", kind="stable").reset_index(drop=True)
        strategy = text(run.provenance.get("strategy", "?"))
        label = f"{run.name} ({strategy})" if len(runs) > 1 else strategy
        order = np.arange(1, len(c) + 1)
        valid = (c["valid"] == 1).to_numpy()
        for rung in sorted(c["rung"].unique()):
            at = (c["rung"] == rung).to_numpy() & valid
            ax.scatter(order[at], c["objective"].to_numpy()[at], s=12, alpha=0.7,
                       label=f"{label}, rung {rung}" if c["rung"].nunique() > 1 else label)
        best = np.where(valid, c["objective"].to_numpy(), -np.inf)
        best = np.maximum.accumulate(best)
        best[np.isinf(best)] = np.nan
        ax.step(order, best, where="post", linewidth=1.5, label=f"{label}: best so far")
        failed = ~valid
        if failed.any():
            # A diverged evaluation has no objective: drawn at the lowest valid one (or 0).
            floor = c["objective"].where(valid).min()
            y = np.where(np.isfinite(c["objective"]), c["objective"], floor if np.isfinite(floor) else 0.0)
            ax.scatter(order[failed], y[failed], marker="x", color="red", s=30, label=f"{label}: failed or diverged")
        plotted = True
    if not plotted:
        _empty(ax, "no search results yet")
    else:
        ax.set_xlabel("evaluation (in the order they finished)")
        ax.set_ylabel("objective (higher is better)")
        ax.legend(fontsize=7, loc="lower right")
    ax.set_title("Search progress")
    fig.tight_layout()
    return fig


def _top(candidates, k):
    valid = candidates[candidates["valid"] == 1]
    top_rung = valid["rung"].max() if len(valid) else 0
    return valid[valid["rung"] == top_rung].sort_values("objective", ascending=False).head(k)


def architectures(run, k=24):
    """The top candidates' layer patterns (layer position against candidate, coloured by
    primitive), attention fraction against objective, and per position the mean
    objective of candidates with attention there minus with an MLP."""
    fig, (heat, scatter, split) = plt.subplots(1, 3, figsize=(15, 4.8), gridspec_kw={"width_ratios": [1.3, 1, 1]})
    c = run.search["candidates"] if run.search else None
    if c is None or not len(c):
        for ax in (heat, scatter, split):
            _empty(ax, "no search results yet")
        return fig
    top = _top(c, k)
    if not len(top):
        for ax in (heat, scatter, split):
            _empty(ax, "no valid evaluation yet")
        return fig
    letters = sorted(set("".join(top["arch"]))) or ["A", "M"]
    width = top["arch"].str.len().max()
    grid = np.full((len(top), width), np.nan)
    for i, arch in enumerate(top["arch"]):
        grid[i, :len(arch)] = [letters.index(ch) for ch in arch]
    cmap = ListedColormap([PRIMITIVE_COLOURS.get(l, "#7570b3") for l in letters])
    heat.imshow(grid, aspect="auto", cmap=cmap, vmin=-0.5, vmax=len(letters) - 0.5, interpolation="nearest")
    heat.set_yticks(range(len(top)))
    heat.set_yticklabels([f"{a} {o:.3f}" for a, o in zip(top["arch"], top["objective"])], fontsize=6)
    heat.set_xticks(range(width))
    heat.set_xlabel("layer position")
    heat.set_title(f"Top {len(top)} candidates ({', '.join(l + ' ' + ('attention' if l == 'A' else 'MLP') for l in letters)})",
                   fontsize=9)
    valid = c[c["valid"] == 1]
    fraction = valid["num_attention"] / valid["num_layers"]
    scatter.scatter(fraction, valid["objective"], s=10, alpha=0.6, c=valid["rung"], cmap="viridis")
    scatter.set_xlabel("attention fraction")
    scatter.set_ylabel("objective")
    scatter.set_title("Attention fraction and objective", fontsize=9)
    # Per position: objective with A there minus with M (the same depth only).
    depth = valid["num_layers"].max()
    same = valid[valid["num_layers"] == depth]
    codes = np.array([list(a) for a in same["arch"]]) if len(same) else np.empty((0, depth))
    objective = same["objective"].to_numpy()
    effect, error = [], []
    for position in range(depth):
        is_attention = codes[:, position] == "A" if len(codes) else np.array([], bool)
        a, m = objective[is_attention], objective[~is_attention]
        if len(a) and len(m):
            effect.append(a.mean() - m.mean())
            error.append(math.sqrt(a.var() / len(a) + m.var() / len(m)))
        else:
            effect.append(np.nan)
            error.append(0.0)
    split.set_xticks(range(depth))
    split.bar(range(depth), effect, yerr=error, color=[PRIMITIVE_COLOURS["A"] if e > 0 else PRIMITIVE_COLOURS["M"]
                                                      for e in np.nan_to_num(effect)])
    split.axhline(0, color="black", linewidth=0.8)
    split.set_xlabel("layer position")
    split.set_ylabel("mean objective: attention minus MLP")
    split.set_title("How much each position matters", fontsize=9)
    fig.tight_layout()
    return fig


def aggregation(run):
    """The K-means clusters on the objective (members coloured by cluster, the top one
    marked) and N_c's per-layer votes behind the aggregated architecture."""
    fig, (clusters, votes) = plt.subplots(1, 2, figsize=(12, 4.2))
    agg = run.aggregate
    if agg is None or "members" not in agg:
        _empty(clusters, "no aggregation yet")
        _empty(votes, "no aggregation yet")
        return fig
    members = agg["members"]
    for cluster, group in members.groupby("cluster"):
        clusters.scatter(group["objective"], group["attention_fraction"], s=14, label=f"cluster {cluster}")
    if "clusters" in agg and len(agg["clusters"]):
        for _, row in agg["clusters"].iterrows():
            if row["top"]:
                clusters.axvspan(row["lower"], row["upper"], color="gold", alpha=0.25, label="top cluster")
    clusters.set_xlabel("objective")
    clusters.set_ylabel("attention fraction")
    clusters.set_title(f"K-means clusters of the objectives ({len(agg['clusters']) if 'clusters' in agg else 0})",
                       fontsize=9)
    clusters.legend(fontsize=7)
    v = agg.get("votes")
    if v is None or not len(v):
        _empty(votes, "no votes (another aggregation method)")
    else:
        method = v["method"].iloc[0]
        v = v[v["method"] == method]
        bottom = np.zeros(len(v))
        for column in [col for col in v.columns if col.startswith("votes_")]:
            letter = column.split("_", 1)[1]
            votes.bar(v["layer"], v[column], bottom=bottom, color=PRIMITIVE_COLOURS.get(letter, "#7570b3"),
                      label=f"votes for {letter}")
            bottom += v[column].to_numpy()
        for layer, chosen, height in zip(v["layer"], v["chosen"], bottom):
            votes.text(layer, height, chosen, ha="center", va="bottom", fontsize=8)
        votes.set_xlabel("layer")
        votes.set_ylabel("votes")
        votes.set_title(f"{method}: the votes behind {agg['attrs'].get('arch', '?')}", fontsize=9)
        votes.legend(fontsize=7)
    fig.tight_layout()
    return fig


def pretraining(run):
    """Training and validation loss, winner against baseline, against tokens and against
    wall time; tokens/s and MFU over the steps; the learning-rate schedule."""
    fig, axes = plt.subplots(2, 2, figsize=(12, 8))
    (by_tokens, by_time), (speed, schedule) = axes
    if run.pretrain is None:
        for ax in axes.flat:
            _empty(ax, "no pre-training yet")
        return fig
    mfu_axis = speed.twinx()
    for model, series in run.pretrain["models"].items():
        train, validation = series["train"], series["validation"]
        line, = by_tokens.plot(train["tokens"], train["loss"], linewidth=0.8, alpha=0.6, label=f"{model} train")
        by_tokens.plot(validation["tokens"], validation["loss"], marker="o", markersize=3, color=line.get_color(),
                       label=f"{model} validation")
        # Wall time of each validation point: the training seconds at its step.
        seconds = np.interp(validation["step"], train["step"], train["seconds"]) if len(train) else []
        by_time.plot(train["seconds"], train["loss"], linewidth=0.8, alpha=0.6, color=line.get_color(),
                     label=f"{model} train")
        by_time.plot(seconds, validation["loss"], marker="o", markersize=3, color=line.get_color(),
                     label=f"{model} validation")
        speed.plot(train["step"], train["tokens_per_second"], linewidth=0.8, color=line.get_color(),
                   label=f"{model} tokens/s")
        mfu_axis.plot(train["step"], 100 * train["mfu"], linewidth=0.8, linestyle=":", color=line.get_color(),
                      label=f"{model} MFU")
        schedule.plot(train["step"], train["lr"], color=line.get_color(), label=model)
    by_tokens.set_xlabel("training tokens")
    by_time.set_xlabel("wall time (s)")
    for ax in (by_tokens, by_time):
        ax.set_ylabel("loss (nats/token)")
        ax.legend(fontsize=7)
    by_tokens.set_title("Loss against tokens", fontsize=9)
    by_time.set_title("Loss against wall time", fontsize=9)
    speed.set_xlabel("step")
    speed.set_ylabel("tokens/s")
    mfu_axis.set_ylabel("MFU (%)")
    speed.set_title("Throughput (solid) and MFU (dotted)", fontsize=9)
    speed.legend(fontsize=7, loc="lower left")
    schedule.set_xlabel("step")
    schedule.set_ylabel("learning rate")
    schedule.set_title("Learning-rate schedule", fontsize=9)
    schedule.legend(fontsize=7)
    fig.tight_layout()
    return fig


def inference(run):
    """Prefill time, decode latency per token and KV-cache bytes per token per model."""
    fig, axes = plt.subplots(1, 3, figsize=(12, 3.8))
    if run.inference is None or "models" not in run.inference:
        for ax in axes:
            _empty(ax, "no inference timing yet")
        return fig
    m = run.inference["models"]
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for ax, column, title in zip(axes, ("prefill_ms", "decode_ms_per_token", "kv_cache_bytes_per_token"),
                                 ("prefill (ms)", "decode (ms/token)", "KV cache (bytes/token)")):
        ax.bar(m["model"], m[column], color=colours[:len(m)])
        ax.set_title(title, fontsize=9)
    fig.tight_layout()
    return fig


def training_flops(run):
    """Per pre-trained model: (model, arch, training FLOPs, final validation loss)."""
    if run.pretrain is None or run.extrapolate is None or "models" not in run.extrapolate:
        return []
    forward = dict(zip(run.extrapolate["models"]["model"], run.extrapolate["models"]["forward_flops_per_token"]))
    out = []
    for _, row in run.pretrain["summary"].iterrows():
        if row["model"] in forward and math.isfinite(row["final_validation_loss"]):
            out.append((row["model"], row["arch"], 3.0 * forward[row["model"]] * row["tokens"],
                        row["final_validation_loss"], row["parameters"]))
    return out


def scaling(runs):
    """Validation loss against training FLOPs over the runs: per model kind a power law
    L = a C^b fitted in log-log (its slope b), and an IsoFLOP parabola in log parameters
    wherever three or more models share a budget (within 10%)."""
    fig, ax = plt.subplots(figsize=(8, 5))
    points = pd.DataFrame([(r.name, *p) for r in runs for p in training_flops(r)],
                          columns=["run", "model", "arch", "flops", "loss", "parameters"])
    slopes = {}
    if len(points) < 2:
        _empty(ax, "fewer than two pre-trained models across the runs")
        return fig, slopes
    for model, group in points.groupby("model"):
        ax.scatter(group["flops"], group["loss"], s=20, label=model)
        if group["flops"].nunique() >= 2:
            b, log_a = np.polyfit(np.log(group["flops"]), np.log(group["loss"]), 1)
            slopes[model] = b
            grid = np.geomspace(group["flops"].min(), group["flops"].max(), 50)
            ax.plot(grid, np.exp(log_a) * grid ** b, linewidth=1, label=f"{model}: L ~ C^{b:.3f}")
    budget = np.round(np.log(points["flops"]) / math.log(1.1))
    for _, group in points.groupby(budget):
        if len(group) >= 3 and group["parameters"].nunique() >= 3:
            x = np.log(group["parameters"])
            coefficients = np.polyfit(x, group["loss"], 2)
            grid = np.linspace(x.min(), x.max(), 30)
            ax.plot(np.full_like(grid, group["flops"].mean()), np.polyval(coefficients, grid), color="grey",
                    linewidth=0.8, label="IsoFLOP parabola (loss against log parameters)")
    ax.set_xscale("log")
    ax.set_xlabel("training FLOPs")
    ax.set_ylabel("final validation loss")
    ax.set_title("Validation loss against compute")
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig, slopes


def spearman(x, y):
    rx, ry = pd.Series(x).rank().to_numpy(), pd.Series(y).rank().to_numpy()
    if len(rx) < 3 or rx.std() == 0 or ry.std() == 0:
        return float("nan")
    return float(np.corrcoef(rx, ry)[0, 1])


def rank_correlation(runs):
    """Search-scale objective of each run's winner against its pre-trained validation loss
    (lower is better, so a search that ranks well gives a negative Spearman)."""
    rows = []
    for run in runs:
        if run.aggregate is None or run.pretrain is None:
            continue
        summary = run.pretrain["summary"].set_index("model")
        if "winner" in summary.index:
            rows.append((run.name, run.aggregate["attrs"].get("objective", np.nan),
                         summary.loc["winner", "final_validation_loss"]))
    frame = pd.DataFrame(rows, columns=["run", "search_objective", "validation_loss"])
    rho = spearman(frame["search_objective"], frame["validation_loss"]) if len(frame) else float("nan")
    fig, ax = plt.subplots(figsize=(6, 4.5))
    if len(frame) < 2:
        _empty(ax, "needs the winners of two runs or more")
    else:
        ax.scatter(frame["search_objective"], frame["validation_loss"])
        for _, row in frame.iterrows():
            ax.annotate(row["run"], (row["search_objective"], row["validation_loss"]), fontsize=7)
        ax.set_xlabel("search objective of the winner (search scale)")
        ax.set_ylabel("final validation loss (pre-training scale)")
    ax.set_title(f"Search against pre-training ranking: Spearman {rho:.3f}" if math.isfinite(rho)
                 else "Search against pre-training ranking (Spearman needs 3 runs)")
    fig.tight_layout()
    return fig, rho, frame


# ---------------------------------------------------------------- the report

def summary_tables(run):
    """The run's tables for the page and the terminal: (title, DataFrame)."""
    out = []
    p = run.provenance
    out.append(("Provenance", pd.DataFrame([{k: text(p[k]) for k in ("hnas_version", "git_revision", "hostname",
                                                                       "world_size", "strategy", "started_utc")
                                             if k in p}])))
    if run.search and "candidates" in run.search:
        c = run.search["candidates"]
        best = _top(c, 10)[["candidate_id", "arch", "rung", "objective", "seconds"]]
        out.append((f"Search: {len(c)} evaluations ({int((c['valid'] != 1).sum())} failed), "
                    f"status {run.search['attrs'].get('status', '?')}; the best", best))
    if run.aggregate:
        a = run.aggregate["attrs"]
        out.append(("Aggregate", pd.DataFrame([{k: a.get(k) for k in ("method", "method_used", "arch", "objective",
                                                                       "best_arch", "best_objective", "status")}])))
    if run.extrapolate and "models" in run.extrapolate:
        out.append(("Extrapolation", run.extrapolate["models"][["model", "arch", "layers", "attention_layers",
                                                                "parameters", "method", "scale_factor"]]))
    if run.summary and "models" in run.summary:
        out.append(("Summary (/summary/models)", run.summary["models"]))
    elif run.pretrain:
        out.append(("Pre-training (/pretrain/summary)", run.pretrain["summary"]))
    return out


def png(fig, path):
    fig.savefig(path, dpi=110)
    plt.close(fig)


def embedded(path):
    with open(path, "rb") as f:
        return "data:image/png;base64," + base64.b64encode(f.read()).decode("ascii")


def figures_of(runs):
    """Every figure of the report: (file name, title, figure)."""
    out = []
    out.append(("search_progress.png", "Search progress", search_progress(runs)))
    for run in runs:
        prefix = f"{run.name}_" if len(runs) > 1 else ""
        if run.search is not None:
            out.append((prefix + "architectures.png", f"{run.name}: architectures", architectures(run)))
        if run.aggregate is not None:
            out.append((prefix + "aggregation.png", f"{run.name}: aggregation", aggregation(run)))
        if run.pretrain is not None:
            out.append((prefix + "pretraining.png", f"{run.name}: pre-training", pretraining(run)))
        if run.inference is not None:
            out.append((prefix + "inference.png", f"{run.name}: inference", inference(run)))
    if len(runs) > 1:
        fig, _ = scaling(runs)
        out.append(("scaling.png", "Validation loss against training FLOPs", fig))
        fig, _, _ = rank_correlation(runs)
        out.append(("rank_correlation.png", "Search against pre-training ranking", fig))
    return out


def report(run_dirs, out_dir):
    runs = [Run(d) for d in run_dirs]
    names = [r.name for r in runs]
    if len(set(names)) != len(names):  # two runs called alike: number them
        for i, run in enumerate(runs):
            run.name = f"{i}-{run.name}"
    os.makedirs(out_dir, exist_ok=True)
    lines, sections = [], []
    for run in runs:
        lines.append(f"== {run.dir}")
        lines += ["note: " + n for n in run.notes]
        body = [f"<h2>{html.escape(run.name)}</h2>"] + [f"<p class=note>{html.escape(n)}</p>" for n in run.notes]
        for title, frame in summary_tables(run):
            lines += [title + ":", frame.to_string(index=False), ""]
            body += [f"<h3>{html.escape(title)}</h3>", frame.to_html(index=False, border=0, float_format="%.6g")]
        sections.append("\n".join(body))
    if len(runs) > 1:
        _, slopes = scaling(runs)
        _, rho, frame = rank_correlation(runs)
        plt.close("all")
        lines.append("loss-compute slopes: " + (", ".join(f"{m} {b:.4f}" for m, b in slopes.items()) or "none"))
        lines.append(f"Spearman, search objective against pre-trained validation loss over {len(frame)} runs: {rho:.3f}")
    written = []
    images = []
    for name, title, fig in figures_of(runs):
        path = os.path.join(out_dir, name)
        png(fig, path)
        written.append(path)
        images.append(f"<figure><img src='{embedded(path)}' alt='{html.escape(title)}'>"
                      f"<figcaption>{html.escape(title)}</figcaption></figure>")
    page = ("<!doctype html><html><head><meta charset='utf-8'><title>hnas report</title><style>"
            "body{font-family:sans-serif;margin:2em;max-width:1400px}img{max-width:100%}"
            "table{border-collapse:collapse;font-size:12px}td,th{padding:2px 8px;border-bottom:1px solid #ddd}"
            ".note{color:#a60}</style></head><body><h1>hnas report</h1><p>"
            + html.escape(", ".join(r.dir for r in runs)) + "</p>" + "\n".join(sections)
            + "<h2>Figures</h2>" + "\n".join(images) + "<pre>" + html.escape("\n".join(lines)) + "</pre></body></html>")
    with open(os.path.join(out_dir, "index.html"), "w") as f:
        f.write(page)
    written.append(os.path.join(out_dir, "index.html"))
    print("\n".join(lines))
    print("wrote " + ", ".join(os.path.relpath(p, out_dir) for p in written) + f" in {out_dir}")
    return written


def main(argv=None):
    parser = argparse.ArgumentParser(prog="hnas-report", description=__doc__.split("\n\n")[0])
    parser.add_argument("run_dirs", nargs="+", metavar="RUN_DIR", help="hnas run directories (results.h5)")
    parser.add_argument("--out", required=True, metavar="DIR", help="where the PNGs and index.html go")
    args = parser.parse_args(argv)
    report(args.run_dirs, args.out)


if __name__ == "__main__":
    sys.exit(main())
