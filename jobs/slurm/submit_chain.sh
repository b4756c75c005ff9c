#!/usr/bin/env bash
# Submits the pipeline as one job per stage, each starting after the one before it
# succeeded (--dependency=afterok); a failed stage cancels its dependants
# (--kill-on-invalid-dep=yes) instead of leaving them pending forever.
#   jobs/slurm/submit_chain.sh [--sbatch "RESOURCES"] RUN_DIR --config FILE [--section.key=value ...]
# RESOURCES go to every stage's sbatch (default "-n 1"), for example
#   jobs/slurm/submit_chain.sh --sbatch "-N 2 --ntasks-per-node=4 --gpus-per-node=4" runs/c --config inputs/X.ini
# Prints the job ids, one line per stage; the last is the summary.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
resources="-n 1"
if [ "${1:-}" = --sbatch ]; then resources="$2"; shift 2; fi
usage="usage: jobs/slurm/submit_chain.sh [--sbatch \"RESOURCES\"] RUN_DIR --config FILE [--section.key=value ...]"
run_dir="${1:?$usage}"
shift
dependency=()
for stage in search aggregate extrapolate pretrain inference summary; do
  # shellcheck disable=SC2086  # RESOURCES is a list of sbatch options
  job=$(HNAS_ROOT="$root" sbatch --parsable $resources --job-name="hnas-$stage" "${dependency[@]}" \
        "$root/jobs/slurm/stage.sbatch" "$stage" "$run_dir" "$@")
  job="${job%%;*}"
  echo "$stage $job"
  dependency=(--dependency="afterok:$job" --kill-on-invalid-dep=yes)
done
