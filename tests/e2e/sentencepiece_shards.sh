#!/usr/bin/env bash
# sentencepiece_shards.sh HNAS MAKE_SHARDS SOURCE_DIR: the SentencePiece path end to end.
# hnas_make_shards trains a 512-piece BPE model on the project's text (every 4th file is
# validation), twice: the same model and shards; encoding with the saved model gives the
# same shards again; hnas evaluate trains on them and its validation loss falls below the
# uniform ln 512; a model of another vocabulary (257) and shards of two tokenizers are
# refused in one line, exit 2; hnas_make_shards' own bad inputs too.
set -euo pipefail
hnas="$1"; make_shards="$2"; src="$3"
work=$(mktemp -d "${TMPDIR:-/tmp}/hnas-e2e-sp.XXXXXX")
trap 'status=$?; if [ $status -eq 0 ]; then rm -rf "$work"; else echo "kept $work"; fi' EXIT
fail() { echo "FAIL: $*"; exit 1; }
docs=("$src"/README.md "$src"/inputs/README.md "$src"/tools/bench/README.md "$src"/src/*/*.cpp)
shards() { "$make_shards" --output-prefix "$work/$1" --val-every 4 --threads 1 "${@:2}" "${docs[@]}" >"$work/$1.log" 2>&1; }

shards a --tokenizer sentencepiece --vocab-size 512
shards b --tokenizer sentencepiece --vocab-size 512
shards c --sp-model "$work/a_tokenizer.model"
tail -n 1 "$work/a.log"
grep -q "kind = sentencepiece" "$work/a_tokenizer.txt" || fail "no tokenizer record"
grep -q "vocab_size = 512" "$work/a_tokenizer.txt" || fail "tokenizer record without vocab_size 512"
cmp "$work/a_tokenizer.model" "$work/b_tokenizer.model" || fail "training twice gave two models"
for split in train val; do
  cmp "$work/a_${split}_000000.bin" "$work/b_${split}_000000.bin" || fail "training twice gave other $split shards"
  cmp "$work/a_${split}_000000.bin" "$work/c_${split}_000000.bin" || fail "the saved model encodes other $split shards"
done
bytes=$(cat "${docs[@]}" | wc -c)
tokens=$(grep -o '^[0-9]* train tokens' "$work/a.log" | cut -d' ' -f1)
echo "subword tokens: $tokens training tokens for about $((bytes * 3 / 4)) training bytes"
[ "$tokens" -lt $((bytes / 2)) ] || fail "$tokens tokens for $bytes bytes: not subwords"

model=(--arch AAMM --model.d_model=32 --model.heads=2 --model.kv_heads=1 --model.head_dim=16
       --model.tie_embeddings=true --model.head_bias=false --tokens.seq_len=64 --tokens.batch_size=8
       --tokens.steps=40 --tokens.eval_every=20 --tokens.val_windows=16 --tokens.lr=3e-3 --run.threads=1)
"$hnas" evaluate "${model[@]}" --data "$work/a_train_000000.bin" --tokens.valid "$work/a_val_000000.bin" \
  --tokens.vocab_size=512 >"$work/evaluate.log" 2>&1 || { tail "$work/evaluate.log"; fail "evaluate on the shards"; }
loss=$(grep -o 'result validation loss [0-9.]*' "$work/evaluate.log" | awk '{print $4}')
echo "validation loss $loss after 40 steps (uniform: ln 512 = 6.24)"
awk -v l="$loss" 'BEGIN { exit !(l < 6.0) }' || fail "validation loss $loss did not fall below 6.0"

# refused: one line, exit 2, naming the cause
refused() {
  local expected="$1"; shift
  local status=0
  "$@" >"$work/refused.log" 2>&1 || status=$?
  [ "$status" -eq 2 ] || { cat "$work/refused.log"; fail "expected exit 2, got $status: $*"; }
  grep -qF -- "$expected" "$work/refused.log" || { cat "$work/refused.log"; fail "no \"$expected\" in the message"; }
  echo "refused: $(grep -F -- "$expected" "$work/refused.log" | head -n 1)"
}
refused "made by a tokenizer of 512 ids" \
  "$hnas" evaluate "${model[@]}" --data "$work/a_train_000000.bin" --tokens.valid "$work/a_val_000000.bin"
shards other --tokenizer sentencepiece --vocab-size 512 --sp-model-type unigram
refused "two tokenizers" \
  "$hnas" evaluate "${model[@]}" --data "$work/a_train_000000.bin" --tokens.valid "$work/other_val_000000.bin" \
  --tokens.vocab_size=512
refused "made by a tokenizer of 512 ids" \
  "$hnas" pretrain --arch AAMM --run-dir "$work/pretrain" --extrapolate.target=custom --extrapolate.blocks=2 \
  --extrapolate.d_model=32 --extrapolate.mlp_hidden=64 --extrapolate.heads=2 --extrapolate.kv_heads=1 \
  --extrapolate.head_dim=16 --extrapolate.vocab_size=257 --pretrain.data "$work/a_train_000000.bin" \
  --pretrain.tokens=4096 --pretrain.seq_len=32 --pretrain.global_batch=4 --pretrain.micro_batch=4
refused "not a SentencePiece model" "$make_shards" --output-prefix "$work/bad" --sp-model "$src/README.md" "${docs[@]}"
refused "--sp-model-type must be bpe or unigram" "$make_shards" --output-prefix "$work/bad" --sp-model-type word "${docs[@]}"
refused "leaves no validation document" "$make_shards" --output-prefix "$work/bad" --val-every 1000 "${docs[@]}"
echo "sentencepiece_shards: all checks passed"
