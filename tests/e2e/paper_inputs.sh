#!/usr/bin/env bash
# The dry-run plan: every configuration of inputs/paper/ passes the dry run its first
# lines document (on stand-in shards of the Llama 3 vocabulary) and prints the figures
# that inputs/README.md quotes for it; the 8B run at 8K context is refused with its
# numbers; a small plan printed by the command line equals the figures worked out by
# hand (tests/pretrain/resources_test.cpp); a model too large for its memory is refused
# naming the keys.
#   paper_inputs.sh HNAS SOURCE_DIR
set -euo pipefail
hnas="$1"; src="$2"
source "$src/tests/e2e/scratch_lib.sh"
scratch paper-inputs
fail() { echo "FAIL: $*"; exit 1; }

# Stand-in DCLM shards: uniform ids below 128,256, enough 8K windows for every split.
/usr/bin/python3 - "$work" <<'PY'
import sys, h5py, numpy as np
rng = np.random.default_rng(0)
for name, n, vocab in (("train", 2_000_000, 128256), ("val", 600_000, 128256), ("bytes", 20_000, 257)):
    with h5py.File(f"{sys.argv[1]}/{name}.h5", "w") as f:
        f["tokens"] = rng.integers(0, vocab, n, dtype=np.uint32)
PY
data=(--pretrain.data "$work/train.h5:/tokens" --pretrain.valid "$work/val.h5:/tokens")

checked=0
for ini in "$src"/inputs/paper/*.ini; do
  name="paper/$(basename "$ini")"
  command=$(sed -n 's/^# The plan: //p' "$ini")
  [ -n "$command" ] || fail "$name has no '# The plan:' line"
  read -r -a words <<<"$command"
  [ "${words[0]}" = hnas ] || fail "$name: its plan command does not start with hnas"
  words[0]="$hnas"
  for i in "${!words[@]}"; do words[$i]="${words[$i]//runs\//$work/runs/}"; done
  log="$work/$(basename "$ini" .ini).log"
  (cd "$src" && "${words[@]}" "${data[@]}") >"$log" 2>&1 || { tail -5 "$log"; fail "$name: its dry run failed"; }
  grep -q "FLOPs in all" "$log" || fail "$name: no plan in the output"
  [ ! -e "$work/runs" ] || fail "$name: the dry run wrote $work/runs"
  row=$(grep -F "| \`$name\` |" "$src/inputs/README.md" | tail -1)
  [ -n "$row" ] || fail "inputs/README.md quotes no plan for $name"
  figures=$(grep -oE '[0-9]+h[0-9]{2}m|[0-9]+\.[0-9] GiB' <<<"$row")
  [ -n "$figures" ] || fail "inputs/README.md's row for $name has no figures"
  while read -r figure; do
    grep -qF -- "$figure" "$log" || fail "inputs/README.md quotes $figure for $name, its plan does not say it"
  done <<<"$figures"
  echo "ok: $name: its plan says $(tr '\n' ' ' <<<"$figures")"
  checked=$((checked + 1))
done
[ "$checked" -ge 5 ] || fail "only $checked paper configurations found"

# The 8B run at the recipe's 8K context does not fit a rank: refused with the numbers.
status=0
(cd "$src" && "$hnas" pretrain --config inputs/paper/pretrain_8b_zero1.ini --run-dir "$work/8k" --dry-run --ranks 32 \
  --pretrain.seq_len=8192 --pretrain.global_batch=256 "${data[@]}") >"$work/8k.log" 2>&1 || status=$?
[ "$status" = 2 ] || fail "the 8B run at 8K context exited $status, expected 2"
grep -qF "= 132.9 GiB per rank, more than the 131.3 GiB of pretrain.device_memory_gb; lower pretrain.seq_len (now 8192)" \
  "$work/8k.log" || { tail -2 "$work/8k.log"; fail "the 8K refusal does not give the numbers and the key"; }
echo "ok: the 8B run at 8K context refused: $(grep -o 'needs .*' "$work/8k.log" | cut -c1-120)"

# A small plan against the hand-computed figures: AM at width 32 (17,536 parameters),
# 3 x 36,992 FLOPs a token over 160 steps of 8 x 32 tokens, 2 ranks at 1 GFLOP/s and 50%.
small=(pretrain --arch AM --extrapolate.target=custom --extrapolate.blocks=1 --extrapolate.d_model=32
       --extrapolate.mlp_hidden=64 --extrapolate.heads=2 --extrapolate.kv_heads=1 --extrapolate.head_dim=16
       --extrapolate.vocab_size=257 --pretrain.seq_len=32 --pretrain.global_batch=8 --pretrain.micro_batch=2
       --pretrain.tokens=40960 --pretrain.peak_tflops=0.001 --pretrain.plan_mfu=0.5 --pretrain.kernels=reference
       --pretrain.data "$work/bytes.h5:/tokens" --pretrain.val_fraction=0.5 --run-dir "$work/small"
       --dry-run --ranks 2)
"$hnas" "${small[@]}" >"$work/small.log" 2>&1 || { tail -3 "$work/small.log"; fail "the small dry run failed"; }
for expected in "1.75e+04 parameters" "160 steps of 8 sequences x 32 tokens = 4.096e+04 tokens" \
                "1.11e+05 FLOPs per token, 4.546e+09 FLOPs in all: 4.5s on 2 ranks" "checkpoint 205.5 KiB" \
                "AdamW state 69.8 KiB" "(the attention scores 16.0 KiB)"; do
  grep -qF -- "$expected" "$work/small.log" || { cat "$work/small.log"; fail "the small plan lacks: $expected"; }
done
echo "ok: the small plan gives the hand-computed figures"
# The same, on 0.5 MB per rank: refused, naming the keys that help.
status=0
"$hnas" "${small[@]}" --pretrain.device_memory_gb=0.0005 >"$work/tight.log" 2>&1 || status=$?
[ "$status" = 2 ] || fail "a plan over its memory exited $status, expected 2"
grep -qF "more than the 488.3 KiB of pretrain.device_memory_gb; lower pretrain.micro_batch (now 2), set pretrain.recompute = true" \
  "$work/tight.log" || { tail -2 "$work/tight.log"; fail "the refusal does not name the keys"; }
echo "ok: paper inputs"
