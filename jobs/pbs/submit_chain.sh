#!/usr/bin/env bash
# Submits the pipeline to PBS as one job per stage, each after the one before it
# succeeded (-W depend=afterok; PBS deletes the dependants of a failed stage).
#   jobs/pbs/submit_chain.sh [--qsub "RESOURCES"] RUN_DIR --config FILE [--section.key=value ...]
# RESOURCES go to every stage's qsub, for example
#   jobs/pbs/submit_chain.sh --qsub "-l select=2:ncpus=64:mpiprocs=8:ngpus=8 -l walltime=24:00:00" runs/c \
#     --config inputs/paper/composer_6l_stack_1b.ini
# Prints the job ids, one line per stage; the last is the summary. The hnas options may
# not contain commas or quotes (qsub -v passes them); put such keys in the INI file.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
resources=""
if [ "${1:-}" = --qsub ]; then resources="$2"; shift 2; fi
usage="usage: jobs/pbs/submit_chain.sh [--qsub \"RESOURCES\"] RUN_DIR --config FILE [--section.key=value ...]"
run_dir="${1:?$usage}"
shift
[[ "$*" != *[,\'\"]* ]] || { echo "submit_chain.sh: hnas options with commas or quotes go in the INI file" >&2; exit 2; }
dependency=()
for stage in search aggregate extrapolate pretrain inference summary; do
  # shellcheck disable=SC2086  # RESOURCES is a list of qsub options
  job=$(qsub $resources -N "hnas-$stage" "${dependency[@]}" \
        -v "HNAS_ROOT=$root,STAGE=$stage,RUN_DIR=$run_dir,HNAS_ARGS=$*" "$root/jobs/pbs/stage.pbs")
  echo "$stage $job"
  dependency=(-W "depend=afterok:$job")
done
