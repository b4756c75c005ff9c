#!/usr/bin/env bash
# shellcheck disable=SC2034  # the rate arrays are read through a nameref in efficiency()
# Search throughput: candidates per hour of `hnas search` over a fixed candidate list
# (exhaustive {A,M}^5, tools/bench/search_throughput.ini) at 1 rank and at 2 ranks of one
# intra-op thread each, the parallel efficiency between them, and, for context, 1 rank
# with 2 threads. Also prints the results.h5 write overhead that each search logs.
# Prints figures only; asserts nothing.
#
#   flock /tmp/hnas-build.lock tools/bench/search_throughput.sh [--rounds 2] [--hnas PATH]
#                                                               [--config INI] [--keep DIR]
#
# Run it while holding the build lock: a compile beside it takes a core from the search.
set -euo pipefail

source_dir=$(cd "$(dirname "$0")/../.." && pwd)
hnas=$source_dir/build/src/app/hnas
config=$source_dir/tools/bench/search_throughput.ini
rounds=2
keep=""
while [[ $# -gt 0 ]]; do
  case $1 in
    --rounds) rounds=$2; shift 2 ;;
    --hnas) hnas=$2; shift 2 ;;
    --config) config=$2; shift 2 ;;
    --keep) keep=$2; shift 2 ;;  # keep run directories and logs there
    *) echo "usage: $0 [--rounds N] [--hnas PATH] [--config INI] [--keep DIR]" >&2; exit 2 ;;
  esac
done
[[ -x $hnas ]] || { echo "$hnas not found: build the hnas target first" >&2; exit 1; }

export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
if [[ -n $keep ]]; then
  work=$keep
  mkdir -p "$work"
else
  work=$(mktemp -d /tmp/hnas-search-throughput.XXXXXX)
  trap 'rm -rf "$work"' EXIT
fi
cores=$(nproc)

# Busy jiffies of the whole machine (user+nice+system+irq+softirq+steal), to tell how much
# CPU other processes took during a run.
busy_jiffies() { awk '/^cpu / { print $2 + $3 + $4 + $7 + $8 + $9 }' /proc/stat; }

# "42.3s", "1m39s" or "1h02m" (log::format_duration) -> seconds.
duration_seconds() {
  awk -v d="$1" 'BEGIN {
    s = 0
    if (match(d, /[0-9]+h/)) s += 3600 * substr(d, RSTART, RLENGTH - 1)
    if (match(d, /[0-9]+m/)) s += 60 * substr(d, RSTART, RLENGTH - 1)
    if (match(d, /[0-9.]+s/)) s += substr(d, RSTART, RLENGTH - 1)
    print s }'
}

declare -A rate_search rate_process other_cpu
results=()
# One search in a fresh run directory; appends a row to `results` and fills the rates.
run_one() {
  local ranks=$1 threads=$2 round=$3
  local name=${ranks}x${threads} dir=$work/r${ranks}t${threads}_$round
  rm -rf "$dir" "$dir.log"
  local busy0 t0 t1 busy1 rusage
  busy0=$(busy_jiffies)
  t0=$(date +%s.%N)
  # /usr/bin/time reports the CPU time of mpirun and the ranks it reaped.
  if ! /usr/bin/time -f "%U %S" -o "$dir.time" mpirun -np "$ranks" --oversubscribe "$hnas" search \
      --config "$config" --run-dir "$dir" --run.threads="$threads" >"$dir.log" 2>&1; then
    echo "search failed ($ranks ranks, $threads threads); log: $dir.log" >&2
    tail -20 "$dir.log" >&2
    exit 1
  fi
  t1=$(date +%s.%N)
  busy1=$(busy_jiffies)
  rusage=$(tail -1 "$dir.time")

  # "search complete: 32 evaluations in 1m39s; results.h5 written 24 times, 0.298 s = 0.301% of wall time"
  local line
  line=$(grep -o 'search complete: .*' "$dir.log" | tail -1)
  [[ -n $line ]] || { echo "no 'search complete' line in $dir.log" >&2; exit 1; }
  local evals duration writes write_s write_pct
  read -r evals duration writes write_s write_pct < <(sed -E \
    's/search complete: ([0-9]+) evaluations in ([^;]+); results.h5 written ([0-9]+) times, ([0-9.]+) s = ([0-9.]+)%.*/\1 \2 \3 \4 \5/' \
    <<<"$line")
  local search_s
  search_s=$(duration_seconds "$duration")
  local row
  row=$(awk -v n="$evals" -v s="$search_s" -v t0="$t0" -v t1="$t1" -v b0="$busy0" -v b1="$busy1" \
    -v ru="$rusage" -v cores="$cores" -v w="$writes" -v ws="$write_s" -v wp="$write_pct" \
    -v name="$name" -v round="$round" 'BEGIN {
      wall = t1 - t0
      split(ru, r, " "); ours = r[1] + r[2]
      other = ((b1 - b0) / 100 - ours) / (cores * wall); if (other < 0) other = 0
      printf "%-6s %5d %5d %8.1f %9.1f %9.0f %10.0f %6d %7.3f %7.3f %7.1f\n",
        name, round, n, s, wall, 3600 * n / s, 3600 * n / wall, w, ws, wp, 100 * other }')
  results+=("$row")
  rate_search[$name,$round]=$(awk -v n="$evals" -v s="$search_s" 'BEGIN { print 3600 * n / s }')
  other_cpu[$name,$round]=$(awk '{ print $NF }' <<<"$row")
  rate_process[$name,$round]=$(awk -v n="$evals" -v t0="$t0" -v t1="$t1" 'BEGIN { print 3600 * n / (t1 - t0) }')
  echo "  done: $row" >&2
}

echo "hnas search throughput: $(basename "$config"), $cores cores, $rounds rounds; $(git -C "$source_dir" describe --always --dirty 2>/dev/null || echo '?')"
# Rounds alternate the configurations so that the machine's drift spreads over all of them.
for ((round = 1; round <= rounds; ++round)); do
  for config_rt in "1 1" "2 1" "1 2"; do
    # shellcheck disable=SC2086
    run_one $config_rt "$round"
  done
done

echo
echo "ranks x threads, round; candidates per hour over the search wall time (from the log line) and over the"
echo "whole mpirun (start-up included); results.h5 writes; CPU taken by other processes during the run"
printf "%-6s %5s %5s %8s %9s %9s %10s %6s %7s %7s %7s\n" "config" "round" "cands" "search_s" "process_s" \
  "cand/h" "cand/h_all" "writes" "write_s" "write_%" "other_%"
printf '%s\n' "${results[@]}"
echo

# Parallel efficiency = (rate at 2 ranks / rate at 1 rank) / 2, per round (the two runs
# are minutes apart) and from the mean rates of all rounds. A round is marked disturbed
# when other processes took more than 5% of the CPU during either run.
efficiency() {
  local -n rates=$1
  local label=$2 line="" sum1=0 sum2=0 sum12=0
  for ((round = 1; round <= rounds; ++round)); do
    line+=$(awk -v a="${rates[1x1,$round]}" -v b="${rates[2x1,$round]}" -v r="$round" \
      -v o1="${other_cpu[1x1,$round]}" -v o2="${other_cpu[2x1,$round]}" \
      'BEGIN { printf "round %d %.1f%%%s, ", r, 50 * b / a, (o1 > 5 || o2 > 5) ? " (disturbed)" : "" }')
    sum1=$(awk -v s="$sum1" -v x="${rates[1x1,$round]}" 'BEGIN { print s + x }')
    sum2=$(awk -v s="$sum2" -v x="${rates[2x1,$round]}" 'BEGIN { print s + x }')
    sum12=$(awk -v s="$sum12" -v x="${rates[1x2,$round]}" 'BEGIN { print s + x }')
  done
  awk -v l="$label" -v line="$line" -v a="$sum1" -v b="$sum2" -v c="$sum12" -v n="$rounds" 'BEGIN {
    printf "parallel efficiency, %s: %smean rates %.1f%% (goal >= 85%%)\n", l, line, 50 * b / a
    printf "  context, %s: 1 rank x 2 threads / 1 rank x 1 thread = %.2fx; 2 ranks x 1 thread / 1 rank x 2 threads = %.2fx\n",
      l, c / a, b / c }'
}
efficiency rate_search "search wall time"
efficiency rate_process "process wall time"
printf '%s\n' "${results[@]}" | awk '{ if ($10 > worst) worst = $10 }
  END { printf "results.h5 overhead: at most %.3f%% of the search wall time over these runs (goal < 1%%)\n", worst }'
