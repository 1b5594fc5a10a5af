#!/usr/bin/env bash
# Soak: PAIRS simulated pairs (default 100) in auto mode for SOAK_MINUTES (default 120) with
# continuous churn (appliances dying and returning, 429s, hanging and slow answers, revoked
# tokens, failovers, tokens expiring every minute), scraped every 5 s and flooded for a minute
# every 15 minutes, reloaded with SIGHUP every 10 minutes. Every 10 s it samples the daemon's
# RSS, open descriptors, threads, runtime tasks and series; at the end (or on SIGINT/SIGTERM)
# bench/soak_report.py fits a slope per hour to each after the warm-up, draws soak.png and
# fails when one grows or a healthy appliance missed a poll. Not part of CI; the smoke
# variant is (bench/smoke.sh: SOAK_MINUTES=3 PAIRS=10, shorter periods).
#
# SOAK_OUT: directory for samples.csv, events.log, the logs, slopes.txt and soak.png
# (default: a directory under the benchmark's temporary one, removed at the end).
# BT_WATCHDOG_BIN: a binary to use instead of building (a soak outlives rebuilds).
# Periods (seconds): SCRAPE_EVERY 5, FLOOD_EVERY 900, FLOOD_SECONDS 60, HUP_EVERY 600,
# SAMPLE_EVERY 10, CHURN_EVERY 15; WARMUP_MINUTES 10; BLOCK_SECONDS 300 (slopes are fitted
# to the medians of blocks this long, so that a flood is one block, not a trend).
source "$(dirname "$0")/lib.sh"
PAIRS="${PAIRS:-100}"
SOAK_MINUTES="${SOAK_MINUTES:-120}"
OUT="${SOAK_OUT:-$WORK/soak}"
mkdir -p "$OUT"
need wrk wrk
need gnuplot gnuplot-nox
build
echo "soak: $(machine); $PAIRS pairs for ${SOAK_MINUTES} min; output in $OUT; binary $BIN ($(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown) in the tree)"
"$BIN" --version > "$OUT/version.txt" 2>&1 || true
# Tokens expire every minute; the rest is the simulator's default.
start_sim "$PAIRS" --token-lifetime 60s
# auto mode; a short cooldown so that a pair can fail over again within the run.
write_config auto 'cooldown = "5m"'
cp "$CONFIG" "$OUT/config.toml"
cp "$READY" "$OUT/ready.json"
start_watchdog
echo "soak: watchdog pid $WD_PID on $LISTEN, simulator pid $SIM_PID"
status=0
python3 "$ROOT/bench/soak.py" \
  --ready "$READY" --listen "$LISTEN" --pid "$WD_PID" --out "$OUT" \
  --minutes "$SOAK_MINUTES" --config "$CONFIG" || status=$?
cp "$WORK"/watchdog-*.log "$OUT/watchdog.log" 2>/dev/null || true
cp "$WORK/sim.log" "$OUT/sim.log" 2>/dev/null || true
if [ "$status" -ne 0 ] && [ "$status" -ne 130 ] && [ "$status" -ne 143 ]; then
  echo "soak: the driver failed ($status)" >&2; exit "$status"
fi
python3 "$ROOT/bench/soak_report.py" "$OUT"
