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
echo "bench smoke: every script ran"
