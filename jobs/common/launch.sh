# Sourced by the job scripts after env.sh: starts hnas on the allocation's ranks, passes
# the batch system's stop signal on, and requeues the job when hnas stopped resumably.
#
# hnas_launch ARGS...: runs "$HNAS_BIN" ARGS on every rank of the allocation and waits,
# with the exit status in `hnas_status`. The launcher is HNAS_LAUNCHER (srun or mpirun);
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
    mpirun) command=(mpirun ${HNAS_MPIRUN_ARGS:-}) ;;
    *) echo "hnas_launch: HNAS_LAUNCHER must be srun or mpirun, not '$launcher'" >&2; hnas_status=2; return ;;
  esac
  echo "hnas_launch: ${command[*]} $HNAS_BIN $*"
  # In the background and waited for: bash runs a trap only once the foreground command
  # returns, so a foreground launch would get the stop signal after the job ended.
  "${command[@]}" "$HNAS_BIN" "$@" &
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
}

# hnas_default_config FILE ARGS...: sets `config` to (--config FILE) unless ARGS already
# give a --config, so that the user's one never collides with the script's default.
hnas_default_config() {
  local default="$1"; shift
  config=()
  [[ " $* " == *" --config "* || " $* " == *" --config="* ]] || config=(--config "$default")
}

# hnas_finish: the last thing a script does. Exit 75 from hnas means "stopped
# resumably": the job requeues itself (Slurm) and the rerun resumes from the run
# directory; any other status is the job's. HNAS_REQUEUE=0 turns the requeue off.
hnas_finish() {
  if [ "$hnas_status" -eq 75 ] && [ -n "${SLURM_JOB_ID:-}" ] && [ "${HNAS_REQUEUE:-1}" = 1 ]; then
    echo "hnas_finish: hnas stopped resumably (exit 75); requeueing job $SLURM_JOB_ID (restart ${SLURM_RESTART_COUNT:-0})"
    # Requeueing kills this shell at once: nothing may follow it.
    scontrol requeue "$SLURM_JOB_ID"
  fi
  exit "$hnas_status"
}
