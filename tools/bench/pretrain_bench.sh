#!/usr/bin/env bash
# Pre-training and inference figures of hnas at the step benchmark's larger shape
# (AMAMAMAM, d_model 512, 8 heads of 64 over 4 KV heads, SwiGLU 1536, vocabulary 4096,
# 256-token sequences), on byte-level shards of this repository's text. Prints ratios
# measured in this run; asserts nothing:
#   - data-parallel step time: 2 ranks x 1 thread against 1 rank x 1 thread at the same
#     global batch (16 sequences; 1 rank accumulates 2 micro-batches of 8), with the
#     all-reduce overlapped with the backward pass and without, and the share of the
#     all-reduce the overlap hides; the same with the optimizer state sharded (ZeRO-1);
#   - MFU of 1 rank x all cores against the sgemm peak hnas measures at start-up;
#   - checkpoint write bandwidth against dd (conv=fsync) of the same size to the same
#     directory (medians: this disk's bandwidth varies 2x from one write to the next), and
#     the checkpoint time as a fraction of training time at the default interval (30
#     minutes);
#   - decode latency per token at batch 1 with the KV cache, hnas generate against the
#     eager PyTorch implementation of tools/hnas_checkpoint.py, for the baseline layout and
#     a stacked winner-like layout, with the floor that reading every weight once per
#     token at this core's measured read bandwidth sets; and the same at the search's
#     scale (d_model 64, 6 layers), where per-operator overhead, not memory, dominates.
#
#   flock /tmp/hnas-build.lock tools/bench/pretrain_bench.sh [--steps N] [--keep DIR]
set -euo pipefail
source_dir=$(cd "$(dirname "$0")/../.." && pwd)
build=$source_dir/build
steps=12
keep=""
while [[ $# -gt 0 ]]; do
  case $1 in
    --steps) steps=$2; shift 2 ;;
    --keep) keep=$2; shift 2 ;;
    *) echo "usage: $0 [--steps N] [--keep DIR]" >&2; exit 2 ;;
  esac
done
hnas=$build/src/app/hnas
[[ -x $hnas ]] || { echo "$hnas not found: build first" >&2; exit 1; }
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
if [[ -n $keep ]]; then work=$keep; mkdir -p "$work"; else
  work=$(mktemp -d /tmp/hnas-pretrain-bench.XXXXXX); trap 'rm -rf "$work"' EXIT; fi

"$build/tools/hnas_make_shards" --output-prefix "$work/text" --val-fraction 0.05 "$source_dir"/README.md \
  "$source_dir"/inputs/README.md "$source_dir"/src/*/*.cpp "$source_dir"/src/*/*.hpp >/dev/null
tokens=$((steps * 16 * 256))
common=(--extrapolate.target=custom --extrapolate.blocks=4 --extrapolate.d_model=512 --extrapolate.mlp_hidden=1536
        --extrapolate.heads=8 --extrapolate.kv_heads=4 --extrapolate.head_dim=64 --extrapolate.vocab_size=4096
        --extrapolate.tie_embeddings=false --pretrain.data "$work/text_train_000000.bin"
        --pretrain.valid "$work/text_val_000000.bin" --pretrain.seq_len=256 --pretrain.global_batch=16
        --pretrain.micro_batch=8 --pretrain.tokens=$tokens --pretrain.eval_every=0 --pretrain.val_windows=8
        --pretrain.log_every=0 --pretrain.checkpoint_minutes=0)
pretrain() { "$@" >>"$work/log.txt" 2>&1 || { tail -5 "$work/log.txt"; exit 1; }; }

echo "pretrain_bench: $steps steps of 16 x 256 tokens per run, $(nproc) cores"
pretrain "$hnas" pretrain "${common[@]}" --arch AMAMAMAM --run.threads=1 --run-dir "$work/one"
pretrain mpirun -np 2 --oversubscribe "$hnas" pretrain "${common[@]}" --arch AMAMAMAM --run.threads=1 \
  --run-dir "$work/two"
pretrain mpirun -np 2 --oversubscribe "$hnas" pretrain "${common[@]}" --arch AMAMAMAM --run.threads=1 \
  --run-dir "$work/two-flat" --pretrain.overlap=false
pretrain mpirun -np 2 --oversubscribe "$hnas" pretrain "${common[@]}" --arch AMAMAMAM --run.threads=1 \
  --run-dir "$work/two-zero" --pretrain.shard_optimizer=true
: >"$work/all.log"
"$hnas" pretrain "${common[@]}" --arch AMAMAMAM AAMMMMAAMMMMAMM --run.threads="$(nproc)" --run-dir "$work/all" \
  --pretrain.checkpoint_every=4 >"$work/all.log" 2>&1 || { tail -5 "$work/all.log"; exit 1; }

ckpt="$work/all/checkpoints/AMAMAMAM/$(cat "$work/all/checkpoints/AMAMAMAM/latest")"
size_mb=$(( $(stat -c %s "$ckpt") / 1000000 + 1 ))
dd_out=""
for _ in 1 2 3 4 5; do
  dd_out+="$(dd if=/dev/zero of="$work/all/checkpoints/dd.bin" bs=1M count="$size_mb" conv=fsync 2>&1 | tail -1);"
  rm -f "$work/all/checkpoints/dd.bin"
done
# The search's scale: 6 layers of width 64 over a 256-token vocabulary, one step.
small=(--extrapolate.target=custom --extrapolate.blocks=3 --extrapolate.d_model=64 --extrapolate.mlp_hidden=128
       --extrapolate.heads=4 --extrapolate.kv_heads=2 --extrapolate.head_dim=16 --extrapolate.vocab_size=257
       --pretrain.data "$work/text_train_000000.bin" --pretrain.valid "$work/text_val_000000.bin"
       --pretrain.seq_len=128 --pretrain.global_batch=4 --pretrain.micro_batch=4 --pretrain.tokens=512
       --pretrain.val_windows=4 --pretrain.log_every=0)
pretrain "$hnas" pretrain "${small[@]}" --arch AMMAMM --run.threads=1 --run-dir "$work/small"

for arch in AMAMAMAM AAMMMMAAMMMMAMM small/AMMAMM; do
  dir="$work/all/checkpoints/$arch"
  if [[ $arch == small/* ]]; then dir="$work/small/checkpoints/${arch#small/}"; arch=small; fi
  "$hnas" generate --checkpoint "$dir" --prompt "The model " \
    --generate.max_new_tokens=64 --generate.repeats=3 --run.threads=1 >"$work/generate_$arch.log" 2>&1
  /usr/bin/python3 "$source_dir/tools/hnas_checkpoint.py" "$dir" --prompt "The model " \
    --max-new-tokens 64 --repeats 3 --threads 1 >"$work/pytorch_$arch.log" 2>&1
done

/usr/bin/python3 - "$work" "$dd_out" <<'EOF'
import re, sys
import h5py, numpy as np
work, dd = sys.argv[1], sys.argv[2]
def series(run, model="AMAMAMAM"):
    with h5py.File(f"{work}/{run}/results.h5") as f:
        return f[f"/pretrain/{model}/train"][()]
one, two, all_ = series("one"), series("two"), series("all")
# Median step time, the first two steps (warm-up, the peak measurement's cache effects) left out.
t1 = np.median(16 * 256 / one["tokens_per_second"][2:])
t2 = np.median(16 * 256 / two["tokens_per_second"][2:])
flat = series("two-flat")
t2f = np.median(16 * 256 / flat["tokens_per_second"][2:])
t2z = np.median(16 * 256 / series("two-zero")["tokens_per_second"][2:])
print(f"data parallel: step {1e3 * t1:.0f} ms at 1 rank x 1 thread, {1e3 * t2:.0f} ms at 2 ranks x 1 thread with the "
      f"all-reduce overlapped: ratio {t2 / t1:.3f} (goal <= 0.6); {1e3 * t2f:.0f} ms without overlap: ratio "
      f"{t2f / t1:.3f}")
print(f"ZeRO-1 at 2 ranks (half the AdamW state per rank, reduce-scatter + all-gather): step {1e3 * t2z:.0f} ms, "
      f"ratio {t2z / t1:.3f} to 1 rank, {t2z / t2:.3f} to the unsharded 2 ranks")
def exposed(run):
    with h5py.File(f"{work}/{run}/results.h5") as f:
        return float(f["/pretrain/AMAMAMAM"].attrs["exposed_allreduce_seconds_per_step"])
e_overlap, e_flat = exposed("two"), exposed("two-flat")
print(f"all-reduce: {1e3 * e_flat:.1f} ms per step after the backward pass, {1e3 * e_overlap:.1f} ms left exposed "
      f"with the overlap: {100 * (1 - e_overlap / e_flat):.0f}% hidden behind the backward pass")
mfu = np.median(all_["mfu"][2:])
print(f"MFU at 1 rank x all cores: {100 * mfu:.1f}% of the sgemm peak measured at start-up (goal >= 70%)")
log = open(f"{work}/all.log").read()
writes = [(float(mb), float(s)) for mb, s in re.findall(r"checkpoint of step \d+ written: ([0-9.]+) MB in ([0-9.]+) s", log)]
mb = np.median([w[0] for w in writes]); seconds = np.median([w[1] for w in writes])
scale = {"kB": 1e-3, "MB": 1.0, "GB": 1e3, "B": 1e-6}
dd_runs = [float(v) * scale[u] for v, u in re.findall(r"([0-9.]+) ([kMG]?B)/s", dd)]
dd_mbs = float(np.median(dd_runs)) if dd_runs else float("nan")
ours = sorted(w[0] / w[1] for w in writes)
print(f"checkpoint: {mb:.0f} MB, median {seconds:.3f} s = {mb / seconds:.0f} MB/s over {len(writes)} writes "
      f"(range {ours[0]:.0f}-{ours[-1]:.0f}); dd conv=fsync median {dd_mbs:.0f} MB/s over {len(dd_runs)} "
      f"(range {min(dd_runs):.0f}-{max(dd_runs):.0f}): ratio {mb / seconds / dd_mbs:.2f} (goal >= 0.5)")
print(f"checkpoint time at the default 30-minute interval: {100 * seconds / (1800 + seconds):.4f}% of training "
      f"(goal < 1%)")
import torch
torch.set_num_threads(1)
# One core's streaming read rate: a matrix-vector product over 256 MB reads every weight
# once, as decoding one token does.
big, vector = torch.rand(16384, 4096), torch.rand(4096)
torch.mv(big, vector)
start = __import__("time").perf_counter()
for _ in range(3):
    torch.mv(big, vector)
read_gbs = 3 * big.numel() * 4 / (__import__("time").perf_counter() - start) / 1e9
print(f"streaming read (sgemv over 256 MB), 1 thread: {read_gbs:.1f} GB/s")
for arch, run in (("AMAMAMAM", "all"), ("AAMMMMAAMMMMAMM", "all"), ("small", "small")):
    ours = float(re.search(r"decode ([0-9.]+) ms/token", open(f"{work}/generate_{arch}.log").read()).group(1))
    theirs = float(re.search(r"decode ([0-9.]+) ms/token", open(f"{work}/pytorch_{arch}.log").read()).group(1))
    kv = re.search(r"KV cache (\d+) bytes/token", open(f"{work}/generate_{arch}.log").read()).group(1)
    name = "AMMAMM" if arch == "small" else arch
    with h5py.File(f"{work}/{run}/results.h5") as f:  # decoding reads every weight but the embedding's
        group = f[f"/pretrain/{name}"].attrs
        read = int(group["non_embedding_parameters"]) + (4096 * 512 if run == "all" else 257 * 64)
        weights_mb = 4 * read / 1e6
    floor = weights_mb / 1e3 / read_gbs * 1e3
    print(f"decode {name}: hnas {ours:.3f} ms/token, eager PyTorch {theirs:.3f} ms/token: {theirs / ours:.2f}x "
          f"faster (goal >= 2x); KV cache {kv} bytes/token (float32); streaming the {weights_mb:.1f} MB of weights "
          f"a token reads takes {floor:.3f} ms: hnas at {100 * floor / ours:.0f}% of that floor, PyTorch at "
          f"{100 * floor / theirs:.0f}%")
EOF
