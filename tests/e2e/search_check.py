#!/usr/bin/python3
"""Checks on the results.h5 of an `hnas search` run, for the search_*.sh e2e tests.

Usage: search_check.py COMMAND ARGS... (see the subcommands below). Exits 1 with a
message on the first failed check. Needs only h5py and numpy (no pandas on CI).
"""
import argparse
import itertools
import os
import sys
import time

import h5py
import numpy as np


def fail(message):
    print("search_check: FAIL: " + message)
    sys.exit(1)


def text(value):
    return value.decode() if isinstance(value, bytes) else str(value)


def load(run_dir):
    """The tables and /search status of RUN_DIR/results.h5, read in one open."""
    path = os.path.join(run_dir, "results.h5")
    if not os.path.exists(path):
        fail(path + " does not exist")
    with h5py.File(path, "r") as f:
        return {
            "candidates": f["/search/candidates"][()],
            "events": f["/search/events"][()],
            "curves": f["/search/curves"][()],
            "status": text(f["/search"].attrs["status"]),
        }


def by_arch(rows):
    return {text(r["arch"]): r for r in rows}


def check_each_once(candidates, events, rows):
    """`rows` evaluations, ids 0..rows-1, no architecture twice, one propose and one
    observe per candidate in the event log (re-run candidates are not proposed again)."""
    archs = [text(a) for a in candidates["arch"]]
    if len(archs) != rows:
        fail("%d rows in /search/candidates, expected %d: %s" % (len(archs), rows, archs))
    duplicates = sorted({a for a in archs if archs.count(a) > 1})
    if duplicates:
        fail("architectures evaluated more than once: %s" % duplicates)
    ids = sorted(int(i) for i in candidates["candidate_id"])
    if ids != list(range(rows)):
        fail("candidate ids are %s, expected 0..%d" % (ids, rows - 1))
    for kind in ("propose", "observe"):
        ids = sorted(int(e["candidate_id"]) for e in events if text(e["event"]) == kind)
        if ids != list(range(rows)):
            fail("%s events are for candidates %s, expected each of 0..%d once" % (kind, ids, rows - 1))


def cmd_complete(a):
    """A finished search: row count, each architecture once, status, teams."""
    r = load(a.run_dir)
    c = r["candidates"]
    check_each_once(c, r["events"], a.rows)
    if r["status"] != "completed":
        fail("/search status is %r, expected 'completed'" % r["status"])
    if a.exhaustive:
        space = {"".join(p) for p in itertools.product("AM", repeat=a.exhaustive)}
        archs = {text(x) for x in c["arch"]}
        if archs != space:
            fail("architectures %s are not {A,M}^%d (missing %s, extra %s)"
                 % (sorted(archs), a.exhaustive, sorted(space - archs), sorted(archs - space)))
    if a.all_completed:
        bad = [(text(x["arch"]), text(x["status"]), int(x["valid"])) for x in c
               if text(x["status"]) != "completed" or x["valid"] != 1]
        if bad:
            fail("candidates not completed and valid: %s" % bad)
    if a.teams:
        teams = sorted({int(t) for t in c["team"]})
        if teams != list(range(a.teams)):
            fail("teams %s evaluated candidates, expected all of 0..%d" % (teams, a.teams - 1))
    print("ok: %s: %d candidates, each once, status completed" % (a.run_dir, len(c)))


def cmd_same_objectives(a):
    """Two runs of one search trained every architecture alike: objectives and loss
    curves per architecture within a tolerance (float reduction order differs)."""
    x, y = load(a.dir1), load(a.dir2)
    cx, cy = by_arch(x["candidates"]), by_arch(y["candidates"])
    if set(cx) != set(cy):
        fail("the runs evaluated different architectures: %s vs %s" % (sorted(cx), sorted(cy)))

    def curves(r):
        arch_of = {int(c["candidate_id"]): text(c["arch"]) for c in r["candidates"]}
        out = {}
        for p in r["curves"]:
            out.setdefault(arch_of[int(p["candidate_id"])], []).append(float(p["loss"]))
        return out

    lx, ly = curves(x), curves(y)
    worst = 0.0
    for arch in sorted(cx):
        ox, oy = float(cx[arch]["objective"]), float(cy[arch]["objective"])
        if not abs(ox - oy) <= a.tol:
            fail("%s: objective %.8f in %s but %.8f in %s" % (arch, ox, a.dir1, oy, a.dir2))
        if len(lx.get(arch, [])) != len(ly.get(arch, [])) or not lx.get(arch):
            fail("%s: loss curves of %d and %d points" % (arch, len(lx.get(arch, [])), len(ly.get(arch, []))))
        diff = float(np.max(np.abs(np.array(lx[arch]) - np.array(ly[arch]))))
        if not diff <= a.tol:
            fail("%s: training loss curves differ by up to %g" % (arch, diff))
        worst = max(worst, diff, abs(ox - oy))
    print("ok: %d architectures, objectives and loss curves agree within %g (largest difference %.3g)"
          % (len(cx), a.tol, worst))


def running(pid):
    """The process exists and is not a zombie (an exited child its shell has not reaped)."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def cmd_wait_rows(a):
    """Polls results.h5 until it has ROWS candidates while PID runs. Every read must
    succeed: the file is replaced atomically, so a reader never sees a partial one."""
    path = os.path.join(a.run_dir, "results.h5")
    deadline = time.monotonic() + a.timeout
    reads = 0
    while time.monotonic() < deadline:
        if not running(a.pid):
            fail("the search (pid %d) ended before %s had %d rows (%d reads)" % (a.pid, path, a.rows, reads))
        if os.path.exists(path):
            try:
                with h5py.File(path, "r") as f:
                    rows = len(f["/search/candidates"][()])
            except FileNotFoundError:
                continue  # renamed away between the check and the open: a fresh one is there
            except Exception as e:  # a torn or half-written file would land here
                fail("reading %s while the search runs: %s: %s" % (path, type(e).__name__, e))
            reads += 1
            if rows >= a.rows:
                print("ok: %s has %d rows; read %d times while the search ran" % (path, rows, reads))
                return
        time.sleep(0.05)
    fail("%s did not reach %d rows within %g s" % (path, a.rows, a.timeout))


def cmd_interrupted(a):
    """The state an interrupted search left: its /search status and fewer rows than the
    whole search (it really stopped early)."""
    r = load(a.run_dir)
    rows = len(r["candidates"])
    if r["status"] != a.status:
        fail("/search status is %r, expected %r" % (r["status"], a.status))
    if not 1 <= rows < a.fewer_than:
        fail("%d rows after the interruption, expected 1..%d" % (rows, a.fewer_than - 1))
    print("ok: interrupted with %d rows, status %s" % (rows, r["status"]))


def cmd_kept(a):
    """Every evaluation in BEFORE (a copy of the interrupted file) is in RUN_DIR unchanged:
    resuming kept finished candidates instead of training them again."""
    before, after = load(a.before)["candidates"], load(a.run_dir)["candidates"]
    now = {int(c["candidate_id"]): c for c in after}
    for c in before:
        cid = int(c["candidate_id"])
        if cid not in now:
            fail("candidate %d (%s) of the interrupted run is gone" % (cid, text(c["arch"])))
        for column in ("arch", "objective", "started_unix", "team"):
            old, new = c[column], now[cid][column]
            if old != new and not (isinstance(old, float) and np.isnan(old) and np.isnan(new)):
                fail("candidate %d: %s was %r before resuming, %r after (evaluated again?)"
                     % (cid, column, old, new))
    print("ok: the %d evaluations of the interrupted run were kept" % len(before))


def cmd_faults(a):
    """Fault injection: the diverging and the failing architecture are recorded as such,
    all others completed."""
    r = load(a.run_dir)
    c = by_arch(r["candidates"])
    for arch in (a.diverged, a.failed):
        if arch not in c:
            fail("%s is not in /search/candidates" % arch)
    d, f = c[a.diverged], c[a.failed]
    if text(d["status"]) != "diverged" or int(d["valid"]) != 0:
        fail("%s: status %s valid %d, expected diverged and 0" % (a.diverged, text(d["status"]), d["valid"]))
    if text(f["status"]) != "failed" or int(f["valid"]) != 0 or not text(f["error"]).strip():
        fail("%s: status %s valid %d error %r, expected failed, 0 and a message"
             % (a.failed, text(f["status"]), f["valid"], text(f["error"])))
    others = [(arch, text(x["status"]), int(x["valid"])) for arch, x in c.items()
              if arch not in (a.diverged, a.failed) and (text(x["status"]) != "completed" or x["valid"] != 1)]
    if others:
        fail("other candidates not completed and valid: %s" % others)
    print("ok: %s diverged, %s failed (%s), %d others completed"
          % (a.diverged, a.failed, text(f["error"]), len(c) - 2))


def cmd_same_proposals(a):
    """Two runs of one seeded search proposed the same architectures in the same order
    and gave them the same ids (and, one team, deterministic training: the same objectives)."""
    x, y = load(a.dir1), load(a.dir2)

    def proposals(r):
        events = sorted(r["events"], key=lambda e: int(e["seq"]))
        return [(int(e["candidate_id"]), text(e["arch"]), int(e["rung"])) for e in events
                if text(e["event"]) == "propose"]

    px, py = proposals(x), proposals(y)
    if px != py:
        fail("proposal sequences differ:\n  %s: %s\n  %s: %s" % (a.dir1, px, a.dir2, py))
    ax = {int(c["candidate_id"]): (text(c["arch"]), float(c["objective"])) for c in x["candidates"]}
    ay = {int(c["candidate_id"]): (text(c["arch"]), float(c["objective"])) for c in y["candidates"]}
    if {k: v[0] for k, v in ax.items()} != {k: v[0] for k, v in ay.items()}:
        fail("architectures by candidate id differ:\n  %s\n  %s" % (sorted(ax.items()), sorted(ay.items())))
    for cid in ax:
        if not abs(ax[cid][1] - ay[cid][1]) <= a.tol:
            fail("candidate %d (%s): objective %.8f vs %.8f" % (cid, ax[cid][0], ax[cid][1], ay[cid][1]))
    print("ok: %d identical proposals: %s" % (len(px), " ".join(p[1] for p in px)))


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("complete", help=cmd_complete.__doc__)
    p.add_argument("run_dir")
    p.add_argument("--rows", type=int, required=True)
    p.add_argument("--exhaustive", type=int, default=0, help="layers: the rows are exactly {A,M}^n")
    p.add_argument("--teams", type=int, default=0, help="every team 0..n-1 evaluated something")
    p.add_argument("--all-completed", action="store_true")
    p.set_defaults(run=cmd_complete)

    p = sub.add_parser("same-objectives", help=cmd_same_objectives.__doc__)
    p.add_argument("dir1")
    p.add_argument("dir2")
    p.add_argument("--tol", type=float, default=1e-4)
    p.set_defaults(run=cmd_same_objectives)

    p = sub.add_parser("wait-rows", help=cmd_wait_rows.__doc__)
    p.add_argument("run_dir")
    p.add_argument("rows", type=int)
    p.add_argument("--pid", type=int, required=True)
    p.add_argument("--timeout", type=float, default=60)
    p.set_defaults(run=cmd_wait_rows)

    p = sub.add_parser("interrupted", help=cmd_interrupted.__doc__)
    p.add_argument("run_dir")
    p.add_argument("--status", required=True)
    p.add_argument("--fewer-than", type=int, required=True)
    p.set_defaults(run=cmd_interrupted)

    p = sub.add_parser("kept", help=cmd_kept.__doc__)
    p.add_argument("before")
    p.add_argument("run_dir")
    p.set_defaults(run=cmd_kept)

    p = sub.add_parser("faults", help=cmd_faults.__doc__)
    p.add_argument("run_dir")
    p.add_argument("--diverged", required=True)
    p.add_argument("--failed", required=True)
    p.set_defaults(run=cmd_faults)

    p = sub.add_parser("same-proposals", help=cmd_same_proposals.__doc__)
    p.add_argument("dir1")
    p.add_argument("dir2")
    p.add_argument("--tol", type=float, default=1e-6)
    p.set_defaults(run=cmd_same_proposals)

    args = parser.parse_args()
    args.run(args)


if __name__ == "__main__":
    main()
