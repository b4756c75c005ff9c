#!/usr/bin/python3
"""Checks and edits of results.h5 for the aggregate/extrapolate e2e test.

Usage: aggregate_check.py COMMAND RUN_DIR [ARGS...]
  record DIR [extrapolate]   every dataset and attribute of /aggregate (and of /extrapolate,
                        made from that aggregate) read with h5py and pandas, and checked
  attr DIR GROUP KEY=VALUE...   attributes of GROUP equal the given values
  degenerate DIR        rewrites /search into the degenerate case: a broad top cluster of
                        single-attention candidates whose per-layer majority (MMMM) is
                        not among the evaluated candidates
  invalidate DIR        marks every evaluation diverged
  shorten DIR           gives one candidate a 3-layer architecture
  status DIR STATUS     sets /search's status attribute
Exits 1 with a message on the first failed check.
"""
import os
import sys

import h5py
import numpy as np
import pandas as pd


def fail(message):
    print("aggregate_check: FAIL: " + message)
    sys.exit(1)


def expect(condition, message):
    if not condition:
        fail(message)


def text(value):
    return value.decode() if isinstance(value, bytes) else str(value)


def frame(f, path):
    expect(path in f, path + " is missing")
    df = pd.DataFrame(f[path][()])
    for column in df.columns:
        if df[column].dtype == object:
            df[column] = df[column].map(text)
    expect(f[path].attrs.get("doc"), path + " has no doc attribute")
    return df


def results(run_dir, mode="r"):
    return h5py.File(os.path.join(run_dir, "results.h5"), mode)


def check_aggregate(f):
    group = f["/aggregate"]
    attrs = {k: (text(v) if isinstance(v, (bytes, str)) else v) for k, v in group.attrs.items()}
    for key in ["doc", "status", "arch", "arch_run_length", "method", "method_used", "reason", "warnings", "objective",
                "objective_from", "clusters", "clusters_found", "context", "top_fraction", "valid_candidates",
                "top_cluster_size", "members", "top_cluster_share", "lowest_member_objective", "best_objective",
                "best_arch", "members_attention_min", "members_attention_max", "attention_fraction", "fidelity",
                "stage", "search_status", "partial", "input_fingerprint"]:
        expect(key in attrs, "/aggregate lacks attribute " + key)
    expect(attrs["status"] == "completed", "status " + attrs["status"])
    expect(len(attrs["input_fingerprint"]) == 16, "fingerprint " + attrs["input_fingerprint"])
    config = f["/aggregate/config"].asstr()[()]
    expect("[aggregate]" in config and "clusters = " in config, "the stored configuration lacks [aggregate]")

    candidates = frame(f, "/search/candidates")
    clusters = frame(f, "/aggregate/clusters")
    members = frame(f, "/aggregate/members")
    votes = frame(f, "/aggregate/votes")
    proposals = frame(f, "/aggregate/proposals")
    evaluations = frame(f, "/aggregate/evaluations")
    expect(list(evaluations.columns) == list(candidates.columns), "evaluations do not have the candidates' columns")

    valid = candidates[(candidates.valid == 1)]
    expect(len(members) == valid.arch.nunique() == attrs["valid_candidates"],
           "members %d, valid architectures %d, attribute %d" % (len(members), valid.arch.nunique(),
                                                               attrs["valid_candidates"]))
    expect(clusters["size"].sum() == len(members), "cluster sizes do not add up to the members")
    expect(len(clusters) == attrs["clusters_found"] <= attrs["clusters"], "cluster count")
    expect(list(clusters.lower) == sorted(clusters.lower), "clusters not in increasing order")
    expect(clusters.top.sum() == 1 and clusters.top.iloc[-1] == 1, "the top cluster is not the last one")
    for c, row in clusters.iterrows():
        inside = members[members.cluster == row.cluster]
        expect(len(inside) == row["size"], "cluster %d size" % c)
        expect(np.isclose(inside.objective.min(), row.lower) and np.isclose(inside.objective.max(), row.upper),
               "cluster %d bounds" % c)
        expect(np.isclose(inside.objective.mean(), row.centroid), "cluster %d centroid" % c)
    top = members[members.cluster == clusters.cluster.iloc[-1]]
    expect(len(top) == attrs["top_cluster_size"], "top cluster size attribute")
    chosen_members = members[members.member == 1]
    expect(len(chosen_members) == attrs["members"], "member count attribute")
    expect(set(chosen_members.arch) <= set(top.arch), "a member outside the top cluster")
    expect(np.isclose(chosen_members.objective.min(), attrs["lowest_member_objective"]), "lowest member")
    expect(np.isclose(chosen_members.attention_fraction.min(), attrs["members_attention_min"]) and
           np.isclose(chosen_members.attention_fraction.max(), attrs["members_attention_max"]), "attention range")
    expect(np.isclose(members.objective.max(), attrs["best_objective"]), "best objective")

    chosen = proposals[proposals.chosen == 1]
    expect(len(chosen) == 1, "exactly one proposal is chosen")
    chosen = chosen.iloc[0]
    expect(chosen.arch == attrs["arch"] and chosen.method == attrs["method_used"], "chosen proposal vs attributes")
    expect(proposals.method.iloc[0] == attrs["method"], "first proposal is the configured method")
    # The votes reproduce the chosen consensus, layer by layer.
    for method in votes.method.unique():
        layers = votes[votes.method == method].sort_values("layer")
        arch = "".join(layers.chosen)
        expect(arch == proposals[proposals.method == method].arch.iloc[0], method + " votes do not give its arch")
        for _, v in layers.iterrows():
            expect(v.votes_A + v.votes_M == v.voters, "votes do not add up to the voters")
            expect(v.context_used <= v.context_requested, "context used above the requested")
            winner = "A" if (v.votes_A, v.mean_objective_A if v.votes_A else -1) > (
                v.votes_M, v.mean_objective_M if v.votes_M else -1) else "M"
            if v.votes_A == v.votes_M and np.isclose(v.mean_objective_A, v.mean_objective_M):
                winner = "A"
            expect(winner == v.chosen, "layer %d: the votes elect %s, the record says %s" % (v.layer, winner,
                                                                                             v.chosen))
    return attrs


def check_extrapolate(f, aggregate_arch):
    group = f["/extrapolate"]
    attrs = {k: (text(v) if isinstance(v, (bytes, str)) else v) for k, v in group.attrs.items()}
    for key in ["doc", "status", "arch", "hybrid_override_pattern", "baseline_arch", "source_arch", "source",
                "method", "target", "scale_factor", "copies", "remainder_fraction", "source_size", "target_size",
                "kv_cache_ratio", "input_fingerprint"]:
        expect(key in attrs, "/extrapolate lacks attribute " + key)
    expect(attrs["status"] == "completed", "extrapolate status")
    models = frame(f, "/extrapolate/models")
    target = frame(f, "/extrapolate/target")
    expect(list(models.model) == ["winner", "baseline"], "models " + str(list(models.model)))
    winner, baseline = models.iloc[0], models.iloc[1]
    expect(winner.arch == attrs["arch"], "winner arch")
    if aggregate_arch is not None:
        expect(attrs["source_arch"] == aggregate_arch and winner.source_arch == aggregate_arch,
               "the source is not the aggregate")
        expect(attrs["source"].startswith("/aggregate"), "source " + attrs["source"])
    blocks = int(target.blocks.iloc[0])
    expect(baseline.arch == "AM" * blocks, "baseline is not AM x blocks")
    for m in (winner, baseline):
        expect(m.layers == len(m.arch) == m.attention_layers + m.mlp_layers, "layer counts")
        expect(m.attention_layers == m.arch.count("A"), "attention count")
        expect(m.hybrid_override_pattern == m.arch.replace("A", "*").replace("M", "-"), "Megatron pattern")
        kv = 2 * int(target.kv_heads.iloc[0]) * int(target.head_dim.iloc[0]) * m.attention_layers
        expect(m.kv_cache_bytes_per_token_bf16 == 2 * kv and m.kv_cache_bytes_per_token_fp32 == 4 * kv, "KV bytes")
        expect(m.parameters > m.non_embedding_parameters > 0, "parameter counts")
    expect(np.isclose(attrs["kv_cache_ratio"],
                      baseline.kv_cache_bytes_per_token_bf16 / winner.kv_cache_bytes_per_token_bf16), "KV ratio")
    expect(np.isclose(attrs["scale_factor"], attrs["target_size"] / attrs["source_size"]), "scale factor")
    if attrs["method"] == "stack":
        expect(attrs["copies"] == int(np.floor(attrs["scale_factor"] + 1e-9)), "copies")
        expect(winner.arch.startswith(attrs["source_arch"] * attrs["copies"]), "the stack does not repeat the source")
    print("extrapolate: %s -> %s (%s), %d layers vs %d" % (attrs["source_arch"], attrs["arch"], attrs["method"],
                                                           winner.layers, baseline.layers))


def rewrite(f, path, rows):
    """Replaces table PATH by ROWS (a structured array of its dtype), keeping its attributes."""
    attrs = dict(f[path].attrs)
    del f[path]
    ds = f.create_dataset(path, data=rows, maxshape=(None,), chunks=True)
    for k, v in attrs.items():
        ds.attrs[k] = v


def degenerate(run_dir):
    with results(run_dir, "r+") as f:
        rows = f["/search/candidates"][()]
        arch = np.array([text(a) for a in rows["arch"]])
        removed_ids = rows["candidate_id"][arch == "MMMM"]
        objective = {"AMMM": 0.30, "MAMM": 0.31, "MMAM": 0.33, "MMMA": 0.32}
        others = sorted(a for a in set(arch) if a not in objective and a != "MMMM")
        for i, a in enumerate(others):  # far below, spread: K = 2 separates them
            objective[a] = 0.05 + 0.005 * i
        keep = arch != "MMMM"
        rows = rows[keep]
        rows["objective"] = [objective[text(a)] for a in rows["arch"]]
        rows["valid"] = 1
        rewrite(f, "/search/candidates", rows)
        for table in ["/search/runs", "/search/curves"]:
            t = f[table][()]
            rewrite(f, table, t[~np.isin(t["candidate_id"], removed_ids)])


def invalidate(run_dir):
    with results(run_dir, "r+") as f:
        rows = f["/search/candidates"][()]
        rows["valid"] = 0
        rows["status"] = b"diverged"
        f["/search/candidates"][...] = rows


def shorten(run_dir):
    with results(run_dir, "r+") as f:
        rows = f["/search/candidates"][()]
        rows["arch"][0] = b"AMM"
        f["/search/candidates"][...] = rows


def main():
    command, run_dir = sys.argv[1], sys.argv[2]
    if command == "record":
        with results(run_dir) as f:
            attrs = check_aggregate(f)
            print("aggregate: %s by %s from %d members of %d valid; %s" % (
                attrs["arch"], attrs["method_used"], attrs["members"], attrs["valid_candidates"], attrs["reason"]))
            if sys.argv[3:] == ["extrapolate"]:
                check_extrapolate(f, attrs["arch"])
    elif command == "attr":
        with results(run_dir) as f:
            group = f[sys.argv[3]]
            for pair in sys.argv[4:]:
                key, value = pair.split("=", 1)
                expect(key in group.attrs, sys.argv[3] + " lacks " + key)
                actual = group.attrs[key]
                actual = text(actual) if isinstance(actual, (bytes, str)) else actual
                ok = str(actual) == value if isinstance(actual, str) else np.isclose(float(actual), float(value))
                expect(ok, "%s %s = %s, expected %s" % (sys.argv[3], key, actual, value))
    elif command == "evaluations":  # the number of rows of /aggregate/evaluations and their archs
        with results(run_dir) as f:
            rows = f["/aggregate/evaluations"][()]
            archs = ",".join(text(a) for a in rows["arch"])
            expect(archs == sys.argv[3], "evaluations " + archs + ", expected " + sys.argv[3])
            expect(all(np.isfinite(rows["objective"])), "an evaluation has no objective")
    elif command == "degenerate":
        degenerate(run_dir)
    elif command == "invalidate":
        invalidate(run_dir)
    elif command == "shorten":
        shorten(run_dir)
    elif command == "status":
        with results(run_dir, "r+") as f:
            f["/search"].attrs["status"] = sys.argv[3]
    else:
        fail("unknown command " + command)
    print("aggregate_check: ok: " + " ".join(sys.argv[1:]))


if __name__ == "__main__":
    main()
