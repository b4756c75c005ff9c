# Sourced by the Slurm tests: a one-node Slurm cluster on localhost, private to the test
# (its own slurm.conf, state and spool under $work/slurm, so every start is clean), and
# the job helpers. See ../shared/design/slurm-local.md for what was found to work.
#
# slurm_start: starts munged (unless running) and slurmctld + slurmd for this machine;
# exits 77 (CTest's skip code) with a visible message where they cannot start.
# slurm_stop: stops the two Slurm daemons (called at exit).
slurm_skip() { echo "SKIPPED: $*"; exit 77; }

slurm_start() {
  command -v slurmctld >/dev/null && command -v munged >/dev/null || slurm_skip "slurm-wlm or munge is not installed"
  [ "$(id -u)" = 0 ] || slurm_skip "the one-node cluster needs root (it runs its daemons as root)"
  local dir="$work/slurm"
  mkdir -p "$dir/state" "$dir/spool"
  if ! pgrep -x munged >/dev/null; then
    install -d -o munge -g munge /run/munge
    runuser -u munge -- munged || slurm_skip "munged did not start"
  fi
  local host node
  host=$(hostname -s)
  node=$(slurmd -C | head -n 1 | sed -E 's/RealMemory=[0-9]+/RealMemory=1000/')
  [[ "$node" == NodeName=* ]] || slurm_skip "slurmd -C printed no node line"
  export SLURM_CONF="$dir/slurm.conf"
  cat >"$SLURM_CONF" <<CONF
ClusterName=hnas-ci
SlurmctldHost=$host
SlurmUser=root
AuthType=auth/munge
MpiDefault=none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd.pid
SlurmctldLogFile=$dir/slurmctld.log
SlurmdLogFile=$dir/slurmd.log
MinJobAge=600
$node
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
CONF
  trap 'status=$?; slurm_stop; (exit $status); scratch_cleanup' EXIT
  slurmctld -f "$SLURM_CONF" || slurm_skip "slurmctld did not start"
  slurmd -f "$SLURM_CONF" || slurm_skip "slurmd did not start"
  local i
  for i in $(seq 60); do
    [ "$(sinfo -h -o %T 2>/dev/null)" = idle ] && return 0
    sleep 0.5
  done
  tail -n 5 "$dir/slurmctld.log" "$dir/slurmd.log" || true
  slurm_skip "the node did not become idle within 30 s"
}

slurm_stop() {
  local name pid
  for name in slurmd slurmctld; do
    pid=$(cat "$work/slurm/$name.pid" 2>/dev/null) || continue
    kill "$pid" 2>/dev/null || true
  done
  for name in slurmd slurmctld; do
    pid=$(cat "$work/slurm/$name.pid" 2>/dev/null) || continue
    for _ in $(seq 20); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
    kill -9 "$pid" 2>/dev/null || true
  done
}

# job_field JOB FIELD: one field of `scontrol show job` (JobState, Restarts, ExitCode, ...).
job_field() { scontrol show job "$1" 2>/dev/null | grep -oE "\b$2=[^ ]*" | head -n 1 | cut -d= -f2-; }

# job_wait JOB SECONDS: waits for a terminal state, and prints it. A requeued job goes
# RUNNING -> PENDING (BeginTime, cred_expire + 1 s) -> RUNNING; its start is brought
# forward so the test does not wait two minutes for it, but only after 10 s: started at
# once, its first step raced the old run's clean-up on the node and failed to launch.
job_wait() {
  local job="$1" limit="$2" state reason start=$SECONDS held=""
  while (( SECONDS - start < limit )); do
    state=$(job_field "$job" JobState)
    case "$state" in
      COMPLETED | FAILED | CANCELLED | TIMEOUT | NODE_FAIL | OUT_OF_MEMORY | BOOT_FAIL | DEADLINE | PREEMPTED)
        echo "$state"; return 0 ;;
      PENDING)
        reason=$(job_field "$job" Reason)
        if [ "$reason" = BeginTime ]; then
          held="${held:-$SECONDS}"
          if (( SECONDS - held >= 10 )); then scontrol update JobId="$job" StartTime=now 2>/dev/null || true; fi
        fi ;;
      *) held="" ;;  # each requeue waits its own 10 s: earlier, Slurm revokes the credential
    esac
    sleep 1
  done
  echo "TIMEOUT_WAITING"
}
