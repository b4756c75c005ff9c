#!/usr/bin/env bash
# evaluate_tokens.sh HNAS MAKE_SHARDS SOURCE_DIR: shards the project's own text, then
# evaluates a tiny model on it (train shard + validation shard).
set -euo pipefail
hnas="$1"; make_shards="$2"; src="$3"
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
"$make_shards" --output-prefix "$dir/text" --val-fraction 0.2 "$src"/README.md "$src"/inputs/README.md "$src"/src/*/*.cpp
ls "$dir"
"$hnas" evaluate --arch AAMM --data "$dir/text_train_000000.bin" --tokens.valid "$dir/text_val_000000.bin" \
  --model.d_model=32 --model.heads=2 --model.kv_heads=1 --model.head_dim=16 --model.tie_embeddings=true \
  --model.head_bias=false --tokens.seq_len=64 --tokens.batch_size=8 --tokens.steps=30 --tokens.eval_every=10 \
  --tokens.val_windows=16 --tokens.lr=3e-3 --run.threads=1
