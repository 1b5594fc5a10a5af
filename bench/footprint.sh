#!/usr/bin/env bash
# Footprint: RSS and CPU of the daemon watching N simulated pairs at default cadence, steady
# state, and the series its /metrics holds. Usage: bench/footprint.sh [PAIRS...] (default 1 100
# 1000); DURATION seconds of measurement after WARMUP seconds (defaults 180 and 60);
# HISTOGRAMS=true turns on exporter.request_duration_histograms.
source "$(dirname "$0")/lib.sh"
DURATION="${DURATION:-180}"; WARMUP="${WARMUP:-60}"
sizes=("$@"); [ ${#sizes[@]} -gt 0 ] || sizes=(1 100 1000)
build
echo "footprint: $(machine); warm-up ${WARMUP}s, measured ${DURATION}s"
for pairs in "${sizes[@]}"; do
  start_sim "$pairs"
  write_config observe
  if [ "${HISTOGRAMS:-false}" = true ]; then
    sed -i 's|^listen = .*|&\nrequest_duration_histograms = true|' "$CONFIG"
  fi
  start_watchdog
  sleep "$WARMUP"
  t0=$(cpu_ticks "$WD_PID"); s0=$(date +%s.%N)
  : > "$WORK/rss"
  end=$(( $(date +%s) + DURATION ))
  while [ "$(date +%s)" -lt "$end" ]; do rss_kib "$WD_PID" >> "$WORK/rss"; sleep 5; done
  t1=$(cpu_ticks "$WD_PID"); s1=$(date +%s.%N)
  rss=$(median < "$WORK/rss")
  cpu=$(awk -v a="$t0" -v b="$t1" -v s="$s0" -v e="$s1" -v hz="$(ticks_per_second)" 'BEGIN {printf "%.1f", 100*(b-a)/hz/(e-s)}')
  series=$(curl -fsS "http://$LISTEN/metrics" | grep -vc '^#' || true)
  printf 'footprint: %5d pairs: RSS median %.1f MiB, CPU %s%% of one core, %s series (%.1f per pair)\n' "$pairs" "$(awk -v k="$rss" 'BEGIN {print k/1024}')" "$cpu" "$series" "$(awk -v n="$series" -v p="$pairs" 'BEGIN {print n/p}')"
  stop_pid "$WD_PID"; stop_pid "$SIM_PID"
done
