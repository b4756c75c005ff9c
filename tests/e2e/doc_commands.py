#!/usr/bin/python3
"""Runs every command the documentation shows, so that an example can never break again.

doc_commands.py SOURCE_DIR BUILD_DIR MPIEXEC

Commands come from the ```sh blocks of README.md and inputs/README.md and from the
"#   command" lines at the top of inputs/*.ini. hnas commands get overrides that make them
seconds long (never a key the command already sets); outputs (runs/, data/) go to a
temporary directory; the ```python blocks run after the commands, on what they wrote.
The README's own two commands (quickstart, run_tests) are the job of CI and are skipped
here, as are commands with placeholders (/path/to/...), the SLURM job commands, which
tests/slurm/slurm_jobs.sh runs on its one-node cluster, and the PBS ones, which
tests/pbs/pbs_jobs.sh runs with stand-in qstat and qsub.
"""
import glob
import os
import re
import shlex
import subprocess
import sys
import tempfile

SOURCE, BUILD, MPIEXEC = sys.argv[1:4]

# hnas keys that shrink any evaluation to seconds (MAD: one epoch on a few rows; tokens:
# a few steps), and the search budget of a BO or random search.
FAST = {
    "--mad.epochs": "1", "--mad.num_train": "96", "--mad.num_test": "32", "--mad.batch_size": "32",
    "--tokens.steps": "3", "--tokens.eval_every": "0", "--tokens.val_windows": "4", "--tokens.batch_size": "4",
    "--tokens.seq_len": "32", "--run.threads": "1",
}
FAST_SEARCH = {"--search.max_evaluations": "4", "--search.bo_initial": "2"}
FAST_PRETRAIN = {"--pretrain.tokens": "16384", "--pretrain.eval_every": "0", "--pretrain.val_windows": "4",
                 "--run.threads": "1"}
# Building is the precondition; the SLURM commands need the cluster that tests/slurm starts.
SKIP = ("./tools/quickstart.sh", "./tools/run_tests.sh", "/path/to", "cmake ", "sbatch ", "jobs/slurm/", "qsub ",
        "jobs/pbs/")


def shell_blocks(path, language):
    text = open(path).read()
    return re.findall(r"```" + language + r"\n(.*?)```", text, re.S)


def commands_in(block):
    joined = re.sub(r"\\\n\s*", " ", block)
    for line in joined.splitlines():
        line = line.split(" #")[0].strip() if not line.lstrip().startswith("#") else ""
        if line:
            yield line


def ini_commands():
    for path in sorted(glob.glob(os.path.join(SOURCE, "inputs", "*.ini"))):
        for line in open(path):
            m = re.match(r"#\s{2,}((?:mpirun|\./build/|build/).*)", line)
            if m:
                yield path, m.group(1).split(" #")[0].strip()


def adapt(command, work):
    words = shlex.split(command)
    out = []
    for w in words:
        if w.startswith("./build/") or w.startswith("build/"):
            w = os.path.join(BUILD, w.split("build/", 1)[1])
        elif w == "mpirun":
            w = MPIEXEC
        for prefix in ("runs/", "data/"):
            if w.startswith(prefix):
                w = os.path.join(work, w)
        out.append(w)
    if out[0] == MPIEXEC:
        out[1:1] = ["--oversubscribe", "--allow-run-as-root"]
    hnas = any(w.endswith("/hnas") for w in out)
    if hnas and "run" in out and "--help" not in out:  # the pipeline: on the corpus the docs prepared
        given = {w.split("=")[0] for w in out if w.startswith("--")}
        corpus = os.path.join(work, "runs", "corpus", "python_docs")
        extra = {"--pretrain.data": corpus + "_train_000000.bin", "--pretrain.valid": corpus + "_val_000000.bin",
                 "--generate.max_new_tokens": "4", "--pretrain.seq_len": "64", "--pretrain.micro_batch": "4"}
        out += [k + "=" + v for k, v in extra.items() if k not in given]
    trains = "evaluate" in out or "search" in out or "run" in out  # aggregate evaluates with the search's keys
    if any(w.endswith("/hnas") for w in out) and "aggregate" in out:
        out.append("--run.threads=1")
    if hnas and ("pretrain" in out or "run" in out) and "--help" not in out:
        given = {w.split("=")[0] for w in out if w.startswith("--")}
        out += [k + "=" + v for k, v in FAST_PRETRAIN.items() if k not in given]
    if any(w.endswith("/hnas") for w in out) and trains and "--help" not in out:
        given = {w.split("=")[0] for w in out if w.startswith("--")}
        extra = dict(FAST)
        if ("search" in out or "run" in out) and not any("search_tiny" in w or "run_tiny" in w for w in out):
            extra.update(FAST_SEARCH)  # exhaustive configurations keep their own budget
        out += [k + "=" + v for k, v in extra.items() if k not in given]
    return [os.path.expanduser(w) for w in out]


def run(argv, cwd, origin):
    print("$ " + " ".join(shlex.quote(a) for a in argv) + "    # from " + origin, flush=True)
    expanded = []
    for a in argv:  # shell globs as a shell would expand them
        matches = sorted(os.path.join(cwd, m) for m in glob.glob(a, root_dir=cwd)) if any(c in a for c in "*?[") else []
        expanded += matches or [a]
    done = subprocess.run(expanded, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    tail = "\n".join(done.stdout.splitlines()[-6:])
    print(tail, flush=True)
    if done.returncode != 0:
        print(f"FAILED (exit {done.returncode}): the command from {origin} does not work as documented")
        sys.exit(1)


def main():
    os.environ.setdefault("OMPI_ALLOW_RUN_AS_ROOT", "1")
    os.environ.setdefault("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1")
    work = tempfile.mkdtemp(prefix="hnas-docs-")
    os.makedirs(os.path.join(work, "data"), exist_ok=True)
    count = 0
    snippets = []
    for doc in ("README.md", os.path.join("inputs", "README.md")):
        path = os.path.join(SOURCE, doc)
        for block in shell_blocks(path, "sh"):
            for command in commands_in(block):
                if any(s in command for s in SKIP):
                    continue
                run(adapt(command, work), SOURCE, doc)
                count += 1
        snippets += [(doc, b) for b in shell_blocks(path, "python")]
    for path, command in ini_commands():
        run(adapt(command, work), SOURCE, os.path.relpath(path, SOURCE))
        count += 1
    for doc, snippet in snippets:
        code = snippet.replace('"runs/', '"' + os.path.join(work, "runs") + "/")
        print(f"$ python3 <snippet from {doc}>", flush=True)
        done = subprocess.run([sys.executable, "-c", code], cwd=SOURCE)
        if done.returncode != 0:
            print(f"FAILED: the Python snippet of {doc} does not work as documented")
            sys.exit(1)
        count += 1
    # The README alone shows 8 commands and a Python snippet: far fewer means the
    # extraction broke, not that the documentation got shorter.
    if count < 12:
        print(f"FAILED: only {count} documented commands found; the extraction no longer sees the docs")
        sys.exit(1)
    print(f"doc commands: {count} passed, 0 failed")


main()
