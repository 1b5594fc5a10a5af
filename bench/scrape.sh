#!/usr/bin/env bash
# Scrape cost: /metrics latency (median, p99) and size under concurrent scraping, for N pairs,
# then again while one appliance hangs. Usage: bench/scrape.sh [PAIRS...] (default 1 1000);
# WARMUP seconds before measuring (default 30), SCRAPE seconds of wrk load (default 15).
source "$(dirname "$0")/lib.sh"
WARMUP="${WARMUP:-30}"; SCRAPE="${SCRAPE:-15}"
sizes=("$@"); [ ${#sizes[@]} -gt 0 ] || sizes=(1 1000)
need wrk wrk
build
echo "scrape: $(machine); wrk -t2 -c4 for ${SCRAPE}s after ${WARMUP}s of warm-up"
measure() {
  local label="$1" encoding out p50 p99 size
  # Prometheus always sends Accept-Encoding: gzip; a plain client does not.
  for encoding in identity gzip; do
    out=$(wrk -t2 -c4 -d"${SCRAPE}s" --latency -H "Accept-Encoding: $encoding" "http://$LISTEN/metrics")
    p50=$(echo "$out" | awk '$1 == "50%" {print $2}')
    p99=$(echo "$out" | awk '$1 == "99%" {print $2}')
    size=$(curl -s -o /dev/null -H "Accept-Encoding: $encoding" -w '%{size_download}' "http://$LISTEN/metrics")
    printf 'scrape: %5d pairs %-22s %-8s median %8s  p99 %8s  transferred %6.2f MB\n' "$pairs" "$label" "$encoding" "$p50" "$p99" "$(awk -v b="$size" 'BEGIN {print b/1e6}')"
  done
}
for pairs in "${sizes[@]}"; do
  start_sim "$pairs"
  write_config observe
  start_watchdog
  sleep "$WARMUP"
  measure "all answering"
  control=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["pairs"][0]["control"])' "$READY")
  curl -s -X POST -d '{"hang": true}' "$control/sim/appliances/east/faults" >/dev/null
  sleep 10
  measure "one appliance hanging"
  stop_pid "$WD_PID"; stop_pid "$SIM_PID"
done
