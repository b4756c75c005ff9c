# Sourced by the job scripts after env.sh: starts hnas on the allocation's ranks, passes
# the batch system's stop signal on, and requeues the job when hnas stopped resumably.
#
# hnas_launch ARGS...: runs "$HNAS_BIN" ARGS (with the job's --deadline, hnas_deadline)
# on every rank of the allocation and waits, with the exit status in `hnas_status`. The launcher is HNAS_LAUNCHER (srun or mpirun);
# by default srun with --mpi=pmix where this Slurm has the pmix plugin (Debian's Open MPI
# has no PMI-1/PMI-2 support, so plain srun would start singletons), else mpirun, which
# reads the allocation itself. HNAS_MPIRUN_ARGS adds arguments to mpirun.
hnas_launch() {
  local launcher="${HNAS_LAUNCHER:-}"
  if [ -z "$launcher" ]; then
    if [ -n "${SLURM_JOB_ID:-}" ] && srun --mpi=list 2>&1 | grep -q pmix; then launcher=srun; else launcher=mpirun; fi
  fi
  local command
  case "$launcher" in
    srun) command=(srun --mpi=pmix --kill-on-bad-exit=1) ;;
    mpirun)
      command=(mpirun ${HNAS_MPIRUN_ARGS:-} -x HNAS_EXIT_STATUS_FILE)
      # PBS lists one line per MPI process of the select statement.
      if [ -n "${PBS_NODEFILE:-}" ] && [ -r "$PBS_NODEFILE" ]; then command+=(--hostfile "$PBS_NODEFILE"); fi ;;
    *) echo "hnas_launch: HNAS_LAUNCHER must be srun or mpirun, not '$launcher'" >&2; hnas_status=2; return ;;
  esac
  hnas_deadline "$@"
  # hnas's rank 0 writes its exit code here: a launcher that exits 0 without having
  # started it (seen with srun right after a requeue) is told from a finished run.
  export HNAS_EXIT_STATUS_FILE
  HNAS_EXIT_STATUS_FILE=$(mktemp "${TMPDIR:-/tmp}/hnas-exit.XXXXXX")
  local attempt
  for attempt in 1 2 3; do
    [ "$launcher" = srun ] && hnas_wait_for_old_steps
    : >"$HNAS_EXIT_STATUS_FILE"
    echo "hnas_launch: ${command[*]} $HNAS_BIN $* ${deadline[*]}"
    # In the background and waited for: bash runs a trap only once the foreground command
    # returns, so a foreground launch would get the stop signal after the job ended.
    "${command[@]}" "$HNAS_BIN" "$@" "${deadline[@]}" &
    hnas_pid=$!
    trap 'echo "hnas_launch: stop signal: passing USR1 on"; kill -USR1 "$hnas_pid" 2>/dev/null' USR1 TERM
    hnas_status=0
    while true; do
      wait "$hnas_pid" && hnas_status=0 || hnas_status=$?
      # A status above 128 with the launcher still alive is the trap interrupting wait.
      if [ "$hnas_status" -gt 128 ] && kill -0 "$hnas_pid" 2>/dev/null; then continue; fi
      break
    done
    trap - USR1 TERM
    if [ "$hnas_status" -ne 0 ] || [ -s "$HNAS_EXIT_STATUS_FILE" ]; then break; fi
    echo "hnas_launch: $launcher exited 0 but hnas never ran (attempt $attempt of 3); launching again in 10 s" >&2
    hnas_status=1
    sleep 10
  done
  rm -f "$HNAS_EXIT_STATUS_FILE"
}

# hnas_wait_for_old_steps: after a requeue, the previous run's job steps may still be
# ending on the nodes, and a new step then fails to launch: wait (up to a minute) until
# squeue lists none of this job's steps.
hnas_wait_for_old_steps() {
  [ -n "${SLURM_JOB_ID:-}" ] && [ "${SLURM_RESTART_COUNT:-0}" -gt 0 ] || return 0
  local _
  for _ in $(seq 60); do
    squeue -h -s -j "$SLURM_JOB_ID" -o %i 2>/dev/null | grep -qE "^${SLURM_JOB_ID}\.[0-9]+$" || return 0
    sleep 1
  done
}

# hnas_deadline ARGS...: sets `deadline` to (--deadline END), the end of this job's
# allocation, unless ARGS give a --deadline: hnas then stops with exit 75 before the
# walltime kill whether or not a warning signal comes. SLURM: SLURM_JOB_END_TIME if the
# Slurm sets it (hnas reads it itself), else the EndTime squeue reports. PBS: the job's
# start plus Resource_List.walltime from qstat (HNAS_WALLTIME=H:MM:SS overrides it), as
# measured from this script's start less the walltime already used. Elsewhere: none.
hnas_deadline() {
  deadline=()
  [[ " $* " == *" --deadline "* || " $* " == *" --deadline="* ]] && return
  if [ -n "${SLURM_JOB_ID:-}" ]; then
    [ -n "${SLURM_JOB_END_TIME:-}" ] && return
    local end
    end=$(squeue -h -j "$SLURM_JOB_ID" -o %e 2>/dev/null | head -n 1)
    [[ "$end" == [0-9][0-9][0-9][0-9]-* ]] && deadline=(--deadline "$end")
  elif [ -n "${PBS_JOBID:-}" ]; then
    local limit="${HNAS_WALLTIME:-}" used=""
    if [ -z "$limit" ]; then
      local status
      status=$(qstat -f "$PBS_JOBID" 2>/dev/null)
      limit=$(sed -n 's/^ *Resource_List.walltime = //p' <<<"$status" | head -n 1)
      used=$(sed -n 's/^ *resources_used.walltime = //p' <<<"$status" | head -n 1)
    fi
    [[ "$limit" =~ ^([0-9]+):([0-9]{2}):([0-9]{2})$ ]] || return
    local seconds=$(( 10#${BASH_REMATCH[1]} * 3600 + 10#${BASH_REMATCH[2]} * 60 + 10#${BASH_REMATCH[3]} ))
    if [[ "$used" =~ ^([0-9]+):([0-9]{2}):([0-9]{2})$ ]]; then
      seconds=$(( seconds - 10#${BASH_REMATCH[1]} * 3600 - 10#${BASH_REMATCH[2]} * 60 - 10#${BASH_REMATCH[3]} ))
    fi
    deadline=(--deadline "@$(( $(date +%s) + seconds ))")
  fi
}

# hnas_stage_command STAGE: sets `command` to the hnas command of a pipeline stage (the
# per-stage scripts): search, aggregate, extrapolate, pretrain, inference (hnas generate
# --run-dir) or summary (hnas run, which finds every stage done and writes /summary).
# Returns 2 for another STAGE.
hnas_stage_command() {
  case "$1" in
    search | aggregate | extrapolate | pretrain) command=("$1") ;;
    inference) command=(generate) ;;
    summary) command=(run) ;;
    *) echo "STAGE must be search, aggregate, extrapolate, pretrain, inference or summary, not '$1'" >&2
       return 2 ;;
  esac
}

# hnas_default_config FILE ARGS...: sets `config` to (--config FILE) unless ARGS already
# give a --config, so that the user's one never collides with the script's default.
hnas_default_config() {
  local default="$1"; shift
  config=()
  [[ " $* " == *" --config "* || " $* " == *" --config="* ]] || config=(--config "$default")
}

# hnas_finish: the last thing a script does. Exit 75 from hnas means "stopped
# resumably": the job requeues itself (Slurm: scontrol requeue) or submits its successor
# (PBS: qsub of the same script with the same resources and variables, after this job),
# and the rerun resumes from the run directory; any other status is the job's.
# HNAS_REQUEUE=0 turns this off.
hnas_finish() {
  if [ "$hnas_status" -eq 75 ] && [ "${HNAS_REQUEUE:-1}" = 1 ]; then
    if [ -n "${SLURM_JOB_ID:-}" ]; then
      echo "hnas_finish: hnas stopped resumably (exit 75); requeueing job $SLURM_JOB_ID (restart ${SLURM_RESTART_COUNT:-0})"
      # Requeueing kills this shell at once: nothing may follow it.
      scontrol requeue "$SLURM_JOB_ID"
    elif [ -n "${PBS_JOBID:-}" ]; then
      hnas_resubmit_pbs
    fi
  fi
  exit "$hnas_status"
}

# hnas_resubmit_pbs: qsub again the script PBS runs ($HNAS_PBS_SCRIPT, set by the PBS
# scripts) with this job's select, walltime and variables, to start once this job has
# ended (depend=afterany), so that two jobs never share the run directory.
hnas_resubmit_pbs() {
  local status select walltime
  status=$(qstat -f "$PBS_JOBID" 2>/dev/null)
  select=$(sed -n 's/^ *Resource_List.select = //p' <<<"$status" | head -n 1)
  walltime=$(sed -n 's/^ *Resource_List.walltime = //p' <<<"$status" | head -n 1)
  local resources=()
  [ -n "$select" ] && resources+=(-l "select=$select")
  [ -n "$walltime" ] && resources+=(-l "walltime=$walltime")
  local next
  next=$(qsub "${resources[@]}" -W "depend=afterany:$PBS_JOBID" -v "RUN_DIR='$RUN_DIR',HNAS_ARGS='${HNAS_ARGS:-}',STAGE='${STAGE:-}'" \
    "$HNAS_PBS_SCRIPT") && echo "hnas_finish: hnas stopped resumably (exit 75); resubmitted as $next" \
    || echo "hnas_finish: hnas stopped resumably (exit 75); qsub failed: resubmit $HNAS_PBS_SCRIPT by hand to resume"
}
