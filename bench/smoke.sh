#!/usr/bin/env bash
# Runs every benchmark script with tiny parameters, so that they cannot rot. Not a benchmark.
set -euo pipefail
cd "$(dirname "$0")"
DURATION=2 WARMUP=2 ./footprint.sh 1
WARMUP=2 SCRAPE=1 ./scrape.sh 1
DURATION=3 ./budget.sh
RUNS=1 POLICIES=aggressive ./latency.sh
PAIRS=1 DURATION=5 WARMUP=5 ./blackbox.sh
RUNS=1 IDLE=3 ./cluster.sh
# The soak in four minutes: 10 pairs, everything five to fifteen times as often, slopes over
# 20-s blocks after two minutes. Its bounds catch a leak per poll or per scrape (an fd, a
# task, a series or 1 MiB a minute), not a slow one: the two-hour run does that. In four
# minutes every pair meets new faults, so new error series keep appearing (hundreds an hour
# here, bounded by endpoints x error kinds); a leak of one series per poll is 14,000 an hour.
# The warm-up's tour of every fault is an eight-second one per kind.
SOAK_MINUTES=4 PAIRS=10 WARMUP_MINUTES=2 BLOCK_SECONDS=20 FLOOD_EVERY=60 FLOOD_SECONDS=10 \
  HUP_EVERY=45 CHURN_EVERY=5 TOUR_HOLD=5 TOUR_REST=3 SOAK_BOUND_RSS_MIB=60 SOAK_BOUND_FDS=60 \
  SOAK_BOUND_THREADS=30 SOAK_BOUND_TASKS=120 SOAK_BOUND_SERIES=6000 \
  SOAK_BOUND_FIRST_SEEN_SERIES=6000 ./soak.sh
echo "bench smoke: every script ran"
