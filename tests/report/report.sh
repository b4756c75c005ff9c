#!/usr/bin/env bash
# hnas-report on real run directories: the tiny hnas run pipeline at three pre-training
# budgets (and MAD seeds, so that the searches differ), and a copy of one stopped after
# the aggregation; report_check.py checks the
# figures' series, the written files and the page.
#   report.sh HNAS MAKE_SHARDS MPIEXEC SOURCE_DIR
set -euo pipefail
hnas="$1"; make_shards="$2"; mpiexec="$3"; src="$4"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
source "$src/tests/e2e/scratch_lib.sh"
scratch report
text_shards "$make_shards" "$work/text" "$src"
seed=0
for tokens in 20480 40960 81920; do
  seed=$((seed + 1))
  "$mpiexec" -n 2 --oversubscribe "$hnas" run --config "$src/inputs/ci/run_tiny.ini" --run-dir "$work/run-$tokens" \
    --pretrain.data "$work/text_train_000000.bin" --pretrain.valid "$work/text_val_000000.bin" \
    --pretrain.tokens="$tokens" --mad.seed="$seed" >"$work/run-$tokens.log" 2>&1 || { tail -5 "$work/run-$tokens.log"; exit 1; }
done
# A run directory as it is while pre-training has not begun.
cp -r "$work/run-40960" "$work/partial"
/usr/bin/python3 -c "
import h5py, sys
with h5py.File(sys.argv[1] + '/results.h5', 'a') as f:
    for group in ('pretrain', 'inference', 'summary'):
        del f[group]
" "$work/partial"
/usr/bin/python3 "$src/tests/report/report_check.py" "$src" "$work/run-40960" "$work/run-20480" "$work/run-81920" \
  "$work/partial" "$work"
