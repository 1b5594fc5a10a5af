#!/usr/bin/env bash
# Footprint: RSS and CPU of the daemon watching N simulated pairs at default cadence, steady
# state. Usage: bench/footprint.sh [PAIRS...] (default 1 100 1000); DURATION seconds of
# measurement after WARMUP seconds (defaults 180 and 60).
source "$(dirname "$0")/lib.sh"
DURATION="${DURATION:-180}"; WARMUP="${WARMUP:-60}"
sizes=("$@"); [ ${#sizes[@]} -gt 0 ] || sizes=(1 100 1000)
build
echo "footprint: $(machine); warm-up ${WARMUP}s, measured ${DURATION}s"
for pairs in "${sizes[@]}"; do
  start_sim "$pairs"
  write_config observe
  start_watchdog
  sleep "$WARMUP"
  t0=$(cpu_ticks "$WD_PID"); s0=$(date +%s.%N)
  : > "$WORK/rss"
  end=$(( $(date +%s) + DURATION ))
  while [ "$(date +%s)" -lt "$end" ]; do rss_kib "$WD_PID" >> "$WORK/rss"; sleep 5; done
  t1=$(cpu_ticks "$WD_PID"); s1=$(date +%s.%N)
  rss=$(median < "$WORK/rss")
  cpu=$(awk -v a="$t0" -v b="$t1" -v s="$s0" -v e="$s1" -v hz="$(ticks_per_second)" 'BEGIN {printf "%.1f", 100*(b-a)/hz/(e-s)}')
  printf 'footprint: %5d pairs: RSS median %.1f MiB, CPU %s%% of one core\n' "$pairs" "$(awk -v k="$rss" 'BEGIN {print k/1024}')" "$cpu"
  stop_pid "$WD_PID"; stop_pid "$SIM_PID"
done
