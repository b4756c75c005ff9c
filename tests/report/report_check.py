#!/usr/bin/python3
"""Checks of hnas-report on real hnas run directories.

report_check.py SOURCE_DIR FULL_RUN OTHER_RUN THIRD_RUN PARTIAL_RUN WORK
  FULL_RUN, OTHER_RUN, THIRD_RUN: complete `hnas run` directories (the tiny pipeline at
  three token budgets); PARTIAL_RUN: a copy of FULL_RUN whose later stages were removed.
Every figure is built and its series counted from the figure objects; the command line
writes every PNG (a real image of the expected size) and one page embedding them all;
the in-progress run is reported with notes; the three runs give the cross-run figures.
"""
import os
import struct
import subprocess
import sys

SOURCE, FULL, OTHER, THIRD, PARTIAL, WORK = sys.argv[1:7]
sys.path.insert(0, os.path.join(SOURCE, "tools"))
import hnas_report  # noqa: E402
from matplotlib.container import BarContainer  # noqa: E402


def fail(message):
    print("report_check: FAIL: " + message)
    sys.exit(1)


def expect(what, actual, expected):
    if actual != expected:
        fail(f"{what}: {actual}, expected {expected}")
    print(f"ok: {what}: {actual}")


def bars(ax):
    return sum(len(c) for c in ax.containers if isinstance(c, BarContainer))


# results.h5 documents itself: every group and dataset has a doc attribute, every table
# a columns_doc with one line per column (h5dump -H reads like documentation).
import h5py  # noqa: E402

with h5py.File(os.path.join(FULL, "results.h5"), "r") as f:
    undocumented = []

    def visit(name, item):
        if "doc" not in item.attrs:
            undocumented.append(name)
        if isinstance(item, h5py.Dataset) and item.dtype.names:
            lines = hnas_report.text(item.attrs.get("columns_doc", b"")).splitlines()
            documented = {line.split(":", 1)[0] for line in lines}
            missing = [c for c in item.dtype.names if c not in documented]
            if missing:
                undocumented.append(f"{name} columns {missing}")
    f.visititems(visit)
    if undocumented:
        fail("results.h5 has no doc for: " + ", ".join(undocumented))
print("ok: every group, dataset and table column of results.h5 has its doc")

run = hnas_report.Run(FULL)
candidates = run.search["candidates"]
depth = int(candidates["num_layers"].max())
models = list(run.pretrain["summary"]["model"])

fig = hnas_report.search_progress([run])
ax = fig.axes[0]
expect("search progress: scatter series (one rung, no failures)", len(ax.collections), 1)
expect("search progress: best-so-far lines", len(ax.lines), 1)
expect("search progress: points", len(ax.collections[0].get_offsets()), len(candidates))

fig = hnas_report.architectures(run)
heat, scatter, split = fig.axes[:3]
expect("architectures: heat map images", len(heat.images), 1)
expect("architectures: heat map rows x layer positions", heat.images[0].get_array().shape,
       (min(24, len(candidates)), depth))
expect("architectures: attention-fraction points", len(scatter.collections[0].get_offsets()), len(candidates))
expect("architectures: one bar per layer position", bars(split), depth)

fig = hnas_report.aggregation(run)
clusters, votes = fig.axes[:2]
expect("aggregation: one scatter series per cluster", len(clusters.collections),
       run.aggregate["members"]["cluster"].nunique())
vote_rows = run.aggregate["votes"]
vote_rows = vote_rows[vote_rows["method"] == vote_rows["method"].iloc[0]]
expect("aggregation: vote bars (layers x primitives)", bars(votes), len(vote_rows) * 2)

fig = hnas_report.pretraining(run)
by_tokens, by_time, speed, schedule, mfu = fig.axes
expect("pre-training: loss curves against tokens (train and validation per model)", len(by_tokens.lines),
       2 * len(models))
expect("pre-training: loss curves against wall time", len(by_time.lines), 2 * len(models))
expect("pre-training: tokens/s series", len(speed.lines), len(models))
expect("pre-training: MFU series", len(mfu.lines), len(models))
expect("pre-training: learning-rate schedules", len(schedule.lines), len(models))
steps = len(run.pretrain["models"][models[0]]["train"])
expect("pre-training: points of the first training curve", len(by_tokens.lines[0].get_xdata()), steps)

fig = hnas_report.inference(run)
expect("inference: bars (3 measures x models)", sum(bars(a) for a in fig.axes), 3 * len(models))

runs = [run, hnas_report.Run(OTHER), hnas_report.Run(THIRD)]
fig, slopes = hnas_report.scaling(runs)
ax = fig.axes[0]
expect("scaling: scatter series (one per model kind)", len(ax.collections), len(models))
expect("scaling: fitted power laws", len(ax.lines), len(models))
expect("scaling: slopes", sorted(slopes), sorted(models))
# The baseline is the same model in every run (the winners differ with the search seed):
# more tokens, lower loss.
if not slopes["baseline"] < 0:
    fail(f"the baseline's validation loss does not fall with compute (slope {slopes['baseline']})")
fig, rho, frame = hnas_report.rank_correlation(runs)
expect("rank correlation: points", len(fig.axes[0].collections[0].get_offsets()), 3)
if not -1 <= rho <= 1:
    fail(f"Spearman {rho} over three runs")
print(f"ok: Spearman over three runs {rho:.3f}, slopes {slopes}")


def png_size(path):
    with open(path, "rb") as f:
        head = f.read(24)
    if head[:8] != b"\x89PNG\r\n\x1a\n":
        fail(f"{path} is not a PNG")
    return struct.unpack(">II", head[16:24])


def run_report(dirs, out):
    done = subprocess.run([os.path.join(SOURCE, "tools", "hnas-report"), *dirs, "--out", out],
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    print(done.stdout[-1500:])
    if done.returncode != 0:
        fail(f"hnas-report {' '.join(dirs)} exited {done.returncode}")
    return done.stdout


def check_outputs(out, names):
    page = open(os.path.join(out, "index.html")).read()
    for name in names:
        path = os.path.join(out, name)
        if not os.path.exists(path):
            fail(f"{name} was not written")
        width, height = png_size(path)
        size = os.path.getsize(path)
        if width < 600 or height < 300 or size < 15000:
            fail(f"{name}: {width}x{height}, {size} bytes: too small to be a real figure")
        print(f"ok: {name}: {width}x{height}, {size} bytes")
    expect(f"{out}/index.html: embedded images", page.count("data:image/png;base64,"), len(names))
    if "http://" in page or "src='/" in page or 'src="/' in page:
        fail("the page refers to something outside itself")
    return page


out = os.path.join(WORK, "one")
printed = run_report([FULL], out)
one = ["search_progress.png", "architectures.png", "aggregation.png", "pretraining.png", "inference.png"]
page = check_outputs(out, one)
for title in ("Search: 16 evaluations", "Aggregate", "Extrapolation", "Summary (/summary/models)"):
    if title not in page or title not in printed:
        fail(f"the report lacks its table {title!r}")
print("ok: the page and the printout carry the summary tables")

out = os.path.join(WORK, "partial")
printed = run_report([PARTIAL], out)
check_outputs(out, ["search_progress.png", "architectures.png", "aggregation.png"])
for stage in ("pretrain", "inference", "summary"):
    if f"/{stage}: not written yet" not in printed:
        fail(f"the in-progress run's report does not say /{stage} is missing")
if os.path.exists(os.path.join(out, "pretraining.png")):
    fail("a figure was drawn for a stage the run has not written")
print("ok: a run in progress is reported, its missing stages noted")

out = os.path.join(WORK, "many")
names = [os.path.basename(d) for d in (FULL, OTHER, THIRD)]
printed = run_report([FULL, OTHER, THIRD], out)
many = ["search_progress.png", "scaling.png", "rank_correlation.png"] + \
    [f"{n}_{figure}" for n in names for figure in one[1:]]
check_outputs(out, many)
if "loss-compute slopes: " not in printed or "Spearman, search objective" not in printed:
    fail("the cross-run figures' numbers are not printed")
print("report: all checks passed")
