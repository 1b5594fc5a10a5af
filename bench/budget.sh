#!/usr/bin/env bash
# API budget: authenticated requests and tokens per hour per appliance at default settings,
# from the simulator's counters over DURATION seconds (default 600), extrapolated to an hour.
source "$(dirname "$0")/lib.sh"
DURATION="${DURATION:-600}"
build
echo "budget: $(machine); 1 pair, default settings, measured ${DURATION}s"
start_sim 1
write_config observe
start_watchdog
control=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["control"])' "$READY")
counters() { curl -s "$control/sim/state"; }
before=$(counters); t0=$(date +%s.%N)
sleep "$DURATION"
after=$(counters); t1=$(date +%s.%N)
python3 - "$before" "$after" "$t0" "$t1" <<'PY'
import json, sys
before, after = json.loads(sys.argv[1]), json.loads(sys.argv[2])
hours = (float(sys.argv[4]) - float(sys.argv[3])) / 3600
pair_total = 0
for b, a in zip(before["appliances"], after["appliances"]):
    d = {k: a["counters"][k] - b["counters"][k] for k in a["counters"]}
    tokens = d["tokens_minted"] + d["token_rejections"]
    authenticated = d["requests"] - d["check_health_requests"] - tokens
    pair_total += authenticated / hours
    print(f"budget: {a['name']}: {authenticated / hours:7.1f} authenticated requests/hour "
          f"({100 * authenticated / hours / 15000:.2f}% of 15,000), {d['tokens_minted'] / hours:5.2f} tokens minted/hour, "
          f"{d['check_health_requests'] / hours:7.1f} unauthenticated probes/hour, reused connections {d['connections_reused']}")
print(f"budget: pair: {pair_total:7.1f} authenticated requests/hour (target: at most 400)")
PY
