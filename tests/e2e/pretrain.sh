#!/usr/bin/env bash
# hnas pretrain on byte-level shards of licence texts, two tiny models:
# data-parallel at 2 and 4 ranks equals one rank, with and without the all-reduce
# overlapped with the backward pass; activation checkpointing gives the same curves; a
# SIGTERM and a kill -9 then a resume give the uninterrupted curve bit for bit; a damaged
# newest checkpoint falls back to the previous one; a checkpoint resumes at another world
# size; ZeRO-1 gives the unsharded curve and resumes exactly; bad inputs are one line,
# exit 2.
#   pretrain.sh HNAS MAKE_SHARDS MPIEXEC SOURCE_DIR
set -euo pipefail
hnas="$1"; make_shards="$2"; mpiexec="$3"; src="$4"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
source "$src/tests/e2e/scratch_lib.sh"
scratch pretrain
check() { /usr/bin/python3 "$src/tests/e2e/pretrain_check.py" "$@"; }
fail() { echo "FAIL: $*"; exit 1; }

text_shards "$make_shards" "$work/text" "$src"

# Two 2-layer models of width 32 on 32-token sequences: 40 steps of 8 sequences.
args=(--arch AAMM AMAM --extrapolate.target=custom --extrapolate.blocks=2 --extrapolate.d_model=32
      --extrapolate.mlp_hidden=64 --extrapolate.heads=2 --extrapolate.kv_heads=1 --extrapolate.head_dim=16
      --extrapolate.vocab_size=257 --pretrain.data "$work/text_train_000000.bin"
      --pretrain.valid "$work/text_val_000000.bin" --pretrain.seq_len=32 --pretrain.global_batch=8
      --pretrain.micro_batch=2 --pretrain.tokens=10240 --pretrain.lr=3e-3 --pretrain.min_lr=3e-4
      --pretrain.warmup_fraction=0.1 --pretrain.eval_every=10 --pretrain.val_windows=16 --pretrain.log_every=10
      --pretrain.checkpoint_every=5 --pretrain.checkpoint_minutes=0 --pretrain.peak_tflops=0.05 --run.threads=1)
# run NAME one|two RUN_DIR [ARGS...]: pre-trains on one rank or two, output in
# $work/NAME.log, exit code in `status`; a run that hangs is ended after 120 s.
# set_args KEY=VALUE...: replaces those keys' values in `args`, or appends them (an option
# may be given once).
set_args() {
  local pair
  for pair in "$@"; do
    local i found=0
    for i in "${!args[@]}"; do
      if [ "${args[$i]%%=*}" = "${pair%%=*}" ]; then args[$i]="$pair"; found=1; fi
    done
    if [ "$found" = 0 ]; then args+=("$pair"); fi
  done
}
run() {
  local name="$1" ranks="$2" dir="$3"; shift 3
  local launch=()
  if [ "$ranks" = two ]; then launch=("$mpiexec" -n 2 --oversubscribe --allow-run-as-root); fi
  if [ "$ranks" = three ]; then launch=("$mpiexec" -n 3 --oversubscribe --allow-run-as-root); fi
  if [ "$ranks" = four ]; then launch=("$mpiexec" -n 4 --oversubscribe --allow-run-as-root); fi
  local saved=("${args[@]}")
  set_args "$@"
  status=0
  timeout --kill-after=10 120 "${launch[@]}" "$hnas" pretrain "${args[@]}" --run-dir "$dir" \
    >"$work/$name.log" 2>&1 || status=$?
  args=("${saved[@]}")
  grep -v -E '^[0-9TZ:-]+ {3}' "$work/$name.log" | tail -n 12 || true
  echo "== $name: exit $status"
}
expect() { if [ "$status" -ne "$1" ]; then fail "expected exit $1, got $status"; fi; }
# stop_two DIR PATTERN [ARGS...]: pre-trains at two ranks in $work/DIR and sends SIGUSR1
# (mpirun forwards it; a SIGTERM it answers by killing the ranks soon after) once the log
# shows PATTERN; the job must exit 75.
stop_two() {
  local dir="$1" pattern="$2"; shift 2
  "$mpiexec" -n 2 --oversubscribe --allow-run-as-root "$hnas" pretrain "${args[@]}" "$@" --run-dir "$work/$dir" \
    >"$work/$dir.log" 2>&1 &
  local pid=$!
  for _ in $(seq 600); do grep -q "$pattern" "$work/$dir.log" 2>/dev/null && break; sleep 0.02; done
  kill -USR1 "$pid"
  status=0; wait "$pid" || status=$?
  expect 75
}
expect_log() { grep -qF -- "$2" "$work/$1.log" || fail "$1 output lacks: $2"; }

# Uninterrupted references: one rank, and two ranks at the same global batch.
run one one "$work/one"
expect 0
check record "$work/one" AAMM AMAM
check learned "$work/one" AAMM
run two two "$work/two"
expect 0
check same "$work/one" "$work/two" AAMM 1e-4
check same "$work/one" "$work/two" AMAM 1e-4
# The gradient sums overlapped with the backward pass (the default) or after it: at two
# ranks each element is the same sum of two numbers, so the curves are identical.
run two-flat two "$work/two-flat" --pretrain.overlap=false
expect 0
expect_log two "gradients summed in buckets during the backward pass"
expect_log two-flat "gradients summed after the backward pass"
check same "$work/two" "$work/two-flat" AAMM 0
# Activation checkpointing (every sublayer's forward run again in the backward pass):
# the same arithmetic, so the same curves bit for bit, at one rank and at two with the
# overlapped reduction (each gradient reaches its bucket once).
run one-recompute one "$work/one-recompute" --pretrain.recompute=true
expect 0
check same "$work/one" "$work/one-recompute" AAMM 0
check same "$work/one" "$work/one-recompute" AMAM 0
run two-recompute two "$work/two-recompute" --pretrain.recompute=true
expect 0
check same "$work/two" "$work/two-recompute" AAMM 0
check same "$work/two" "$work/two-recompute" AMAM 0
# Four ranks, one micro-batch each: the same curve as one rank within float tolerance.
run four four "$work/four"
expect 0
check same "$work/one" "$work/four" AAMM 1e-4
# ZeRO-1 (optimizer state sharded, gradients reduce-scattered, parameters all-gathered):
# the same arithmetic per element, with or without the overlap; only the sum order of
# the gradient norm and of the reduce-scatter differ, so the curves agree within float
# rounding (measured on these texts: 2e-8 to 6e-8 relative at two and four ranks, as
# for the unsharded runs against one rank; on other data up to 1.1e-4 was seen between
# one and two ranks, float rounding carried by a high learning rate; the tolerance is
# the other multi-rank checks' 1e-4).
run two-zero two "$work/two-zero" --pretrain.shard_optimizer=true
expect 0
expect_log two-zero "optimizer state sharded over 2 ranks (ZeRO-1): this rank holds"
check same "$work/two" "$work/two-zero" AAMM 1e-4
check same "$work/two" "$work/two-zero" AMAM 1e-4
run two-zero-flat two "$work/two-zero-flat" --pretrain.shard_optimizer=true --pretrain.overlap=false
expect 0
check same "$work/two-zero" "$work/two-zero-flat" AAMM 0
run four-zero four "$work/four-zero" --pretrain.shard_optimizer=true
expect 0
check same "$work/four" "$work/four-zero" AAMM 1e-4
check same "$work/one" "$work/four-zero" AAMM 1e-4
run rerun one "$work/one"
expect 0
expect_log rerun "pretrain: complete in $work/one; skipped"
# One team per model: two ranks train the two models side by side, each exactly as one
# rank alone does; world rank 0 writes the other team's record at the end.
run teams two "$work/teams" --pretrain.team_per_model=true
expect 0
expect_log teams "pretrain AMAM step 40/40"
expect_log teams "world ranks 1-1"
check same "$work/one" "$work/teams" AAMM 0
check same "$work/one" "$work/teams" AMAM 0
run teams-rerun two "$work/teams" --pretrain.team_per_model=true
expect 0
expect_log teams-rerun "skipped"
run teams-odd three "$work/teams-odd" --pretrain.team_per_model=true
expect 2
expect_log teams-odd "pretrain.team_per_model = true needs a number of ranks divisible by the 2 models; this job has 3"
# Killed after a model's last checkpoint but before its record: the rerun writes the
# record from that checkpoint, without training again.
cp -r "$work/one" "$work/record-lost"
rm "$work/record-lost/results.h5"
run record-lost one "$work/record-lost"
expect 0
expect_log record-lost "pretrain AAMM: the last checkpoint is complete; its record written"
expect_log record-lost "pretrain AMAM: the last checkpoint is complete; its record written"
check same "$work/one" "$work/record-lost" AAMM 0
check same "$work/one" "$work/record-lost" AMAM 0

# The interruptions below need runs long enough to be interrupted: 160 steps.
set_args --pretrain.tokens=40960
run long one "$work/long"
expect 0

# Generation with the KV cache, and the PyTorch loader: the same logits and greedy tokens.
"$hnas" generate --checkpoint "$work/long/checkpoints/AMAM" --prompt "The model " \
  --generate.max_new_tokens=24 --generate.logits="$work/generate.h5" --run.threads=1 >"$work/generate.log" 2>&1 \
  || fail "hnas generate failed: $(tail -3 "$work/generate.log")"
grep -E "prefill|tokens " "$work/generate.log"
/usr/bin/python3 "$src/tools/hnas_checkpoint.py" "$work/long/checkpoints/AMAM" --compare "$work/generate.h5"
"$hnas" generate --run-dir "$work/long" --prompt "The model " --generate.max_new_tokens=8 --run.threads=1 \
  >"$work/inference.log" 2>&1 || fail "hnas generate --run-dir failed: $(tail -3 "$work/inference.log")"
check inference "$work/long" AAMM AMAM
status=0; "$hnas" generate --checkpoint "$work/nowhere" --prompt x >"$work/generate-missing.log" 2>&1 || status=$?
expect 2
expect_log generate-missing "checkpoint $work/nowhere"

# SIGTERM during the first model, then a resume: the same curves bit for bit.
"$hnas" pretrain "${args[@]}" --run-dir "$work/term" >"$work/term.log" 2>&1 &
pid=$!
for _ in $(seq 600); do grep -q "AAMM step 20/160" "$work/term.log" 2>/dev/null && break; sleep 0.02; done
kill -TERM "$pid"
status=0; wait "$pid" || status=$?
expect 75
expect_log term "checkpoint written. Rerun to resume (exit code 75)"
# The newest checkpoint damaged by one flipped byte: the one before it is used.
newest=$(cat "$work/term/checkpoints/AAMM/latest")
check flip "$work/term/checkpoints/AAMM/$newest"
run term-resume one "$work/term"
expect 0
expect_log term-resume "fails its checksum"
expect_log term-resume "resuming from"
check same "$work/long" "$work/term" AAMM 0
check same "$work/long" "$work/term" AMAM 0

# kill -9 at a random moment of a run that checkpoints every step (often mid-write):
# the resume starts from the last complete checkpoint and ends on the same curve.
set_args --pretrain.checkpoint_every=1
"$hnas" pretrain "${args[@]}" --run-dir "$work/kill" >"$work/kill.log" 2>&1 &
pid=$!
for _ in $(seq 600); do grep -q "AMAM step 10/160" "$work/kill.log" 2>/dev/null && break; sleep 0.02; done
sleep 0.0$((RANDOM % 9 + 1))
kill -9 "$pid" || fail "the run ended before the kill -9"
wait "$pid" || true
run kill-resume one "$work/kill"
expect 0
expect_log kill-resume "pretrain AAMM: complete"
check same "$work/long" "$work/kill" AAMM 0
check same "$work/long" "$work/kill" AMAM 0

# One team per model, stopped by SIGUSR1 while both train, resumed: each team checkpoints
# its own model and the curves are the uninterrupted one-rank curves bit for bit. Each
# team trains alone at one rank, fast: these runs are four times as long (640 steps).
saved_args=("${args[@]}")
set_args --pretrain.checkpoint_every=5 --pretrain.tokens=163840
run long4 one "$work/long4"
expect 0
stop_two teams-term "AAMM step 20/640" --pretrain.team_per_model=true
run teams-resume two "$work/teams-term" --pretrain.team_per_model=true
expect 0
expect_log teams-resume "pretrain AAMM: resuming at step"
expect_log teams-resume "pretrain AMAM: resuming at step"
check same "$work/long4" "$work/teams-term" AAMM 0
check same "$work/long4" "$work/teams-term" AMAM 0
args=("${saved_args[@]}")

# Two ranks stopped by SIGUSR1, resumed by one: the cursor is global, and the curve stays
# on the one-rank curve within the spread that the order of the gradient sums alone
# causes in this small, high-learning-rate run (measured: an uninterrupted two-rank run
# ends 2.4% from the one-rank run's validation loss): 5% on the validation losses.
stop_two world "AAMM step 20/160"
run world-resume one "$work/world"
expect 0
expect_log world-resume "the checkpoint was written by 2 ranks, this job has 1"
check close "$work/long" "$work/world" AAMM 0.05

# ZeRO-1 stopped and resumed at the same world size: the sharded moments are gathered
# into the checkpoint and scattered back, bit for bit. Then a sharded two-rank checkpoint
# resumed by four sharded ranks: the state is re-sharded, the curve stays on the curve.
zero=(--pretrain.shard_optimizer=true)
"$mpiexec" -n 2 --oversubscribe --allow-run-as-root "$hnas" pretrain "${args[@]}" "${zero[@]}" \
  --run-dir "$work/long-zero" >"$work/long-zero.log" 2>&1 || fail "the sharded reference run failed"
stop_two zero-term "AAMM step 20/160" "${zero[@]}"
stop_two zero-world "AAMM step 20/160" "${zero[@]}"
run zero-term-resume two "$work/zero-term" "${zero[@]}"
expect 0
expect_log zero-term-resume "pretrain AAMM: resuming at step"
check same "$work/long-zero" "$work/zero-term" AAMM 0
check same "$work/long-zero" "$work/zero-term" AMAM 0
run zero-world-resume four "$work/zero-world" "${zero[@]}"
expect 0
expect_log zero-world-resume "the checkpoint was written by 2 ranks, this job has 4"
check close "$work/long-zero" "$work/zero-world" AAMM 0.05

# Bad inputs: one line, exit 2, nothing overwritten.
cp -r "$work/term" "$work/other"
before=$(md5sum "$work/other/checkpoints/AAMM/"*.h5 | md5sum)
run other-width one "$work/other" --extrapolate.d_model=48
expect 2
expect_log other-width "was written with another model.shape"
run other-budget one "$work/other" --pretrain.tokens=20480
expect 2
expect_log other-budget "was written with another pretrain.tokens"
[ "$before" = "$(md5sum "$work/other/checkpoints/AAMM/"*.h5 | md5sum)" ] || fail "a refused run changed the checkpoints"
mkdir -p "$work/truncated/checkpoints/AAMM"
head -c 3000 "$work/one/checkpoints/AAMM/$(cat "$work/one/checkpoints/AAMM/latest")" \
  >"$work/truncated/checkpoints/AAMM/step_000000040.h5"
run truncated one "$work/truncated"
expect 2
expect_log truncated "no valid checkpoint in $work/truncated/checkpoints/AAMM"
run small-budget one "$work/small" --pretrain.tokens=100
expect 2
expect_log small-budget "pretrain.tokens = 100 is smaller than one global batch"
run indivisible two "$work/indivisible" --pretrain.global_batch=6 --pretrain.micro_batch=2
expect 2
expect_log indivisible "pretrain.global_batch = 6 is not divisible by the 2 ranks x pretrain.micro_batch = 2"
[ ! -e "$work/small/results.h5" ] && [ ! -e "$work/indivisible/results.h5" ] || fail "a refused run wrote results"
echo "pretrain: all checks passed"
