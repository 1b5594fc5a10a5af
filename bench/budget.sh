#!/usr/bin/env bash
# API budget: authenticated requests and tokens per hour per appliance at default settings,
# from the simulator's counters over DURATION seconds (default 600), extrapolated to an hour.
source "$(dirname "$0")/lib.sh"
DURATION="${DURATION:-600}"
# The appliances' token lifetime (documented: 1h); a shorter one shows the refresh pattern.
TOKEN_LIFETIME="${TOKEN_LIFETIME:-1h}"
# NO_CHECK_HEALTH=1: neither appliance serves /check_health (404), so /health carries liveness.
NO_CHECK_HEALTH="${NO_CHECK_HEALTH:-0}"
build
echo "budget: $(machine); 1 pair, default settings, token lifetime $TOKEN_LIFETIME, /check_health $([ "$NO_CHECK_HEALTH" = 1 ] && echo 'not offered' || echo offered), measured ${DURATION}s"
start_sim 1 --token-lifetime "$TOKEN_LIFETIME"
control=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["control"])' "$READY")
if [ "$NO_CHECK_HEALTH" = 1 ]; then
  for name in $(curl -s "$control/sim/state" | python3 -c 'import json,sys; print(" ".join(a["name"] for a in json.load(sys.stdin)["appliances"]))'); do
    curl -s -X POST -d '{"no_check_health": true}' "$control/sim/appliances/$name/faults" >/dev/null
  done
fi
write_config observe
start_watchdog
counters() { curl -s "$control/sim/state"; }
# The window starts once both appliances have their first token, so that the start-up mint
# is not extrapolated to an hour.
for _ in $(seq 1 300); do
  counters | python3 -c 'import json,sys; s=json.load(sys.stdin); sys.exit(0 if all(a["counters"]["tokens_minted"] > 0 for a in s["appliances"]) else 1)' && break
  sleep 0.1
done
before=$(counters); t0=$(date +%s.%N)
sleep "$DURATION"
after=$(counters); t1=$(date +%s.%N)
python3 - "$before" "$after" "$t0" "$t1" "$TOKEN_LIFETIME" <<'PY'
import json, re, sys
before, after = json.loads(sys.argv[1]), json.loads(sys.argv[2])
hours = (float(sys.argv[4]) - float(sys.argv[3])) / 3600
units = {"s": 1, "m": 60, "h": 3600}
lifetime = sum(int(n) * units[u] for n, u in re.findall(r"(\d+)([smh])", sys.argv[5])) / 3600
pair_total = 0
for b, a in zip(before["appliances"], after["appliances"]):
    d = {k: a["counters"][k] - b["counters"][k] for k in a["counters"]}
    tokens = d["tokens_minted"] + d["token_rejections"]
    authenticated = d["requests"] - d["check_health_requests"] - tokens
    pair_total += authenticated / hours
    print(f"budget: {a['name']}: {authenticated / hours:7.1f} authenticated requests/hour "
          f"({100 * authenticated / hours / 15000:.2f}% of 15,000), {d['tokens_minted']} tokens minted in {hours * 60:.0f} min "
          f"({d['tokens_minted'] * lifetime / hours:.2f} per token lifetime), "
          f"{d['check_health_requests'] / hours:7.1f} unauthenticated probes/hour, reused connections {d['connections_reused']}")
print(f"budget: pair: {pair_total:7.1f} authenticated requests/hour (target: at most 200 with /check_health offered)")
PY
