#!/usr/bin/env bash
# Detection and failover latency: from the moment the simulated primary dies to the failover
# call arriving at the simulator, and from that call to the watchdog having verified the new
# roles; at the default policy and an aggressive one, RUNS times each (default 3), medians.
# The lower bound of the call latency is failover_after + one poll_interval + one request_timeout.
source "$(dirname "$0")/lib.sh"
RUNS="${RUNS:-3}"
POLICIES="${POLICIES:-default aggressive}"
build
echo "latency: $(machine); $RUNS runs per policy"
run_once() {
  local policy_lines="$1"
  start_sim 1 --swap-duration 1s --sync-interval 5s
  write_config auto "$policy_lines"
  if [ "$2" = aggressive ]; then
    sed -i 's/^client_secret_file = \(.*\)$/client_secret_file = \1\npoll_interval = "1s"\nhealth_interval = "5s"\nrequest_timeout = "1s"/' "$CONFIG"
  fi
  start_watchdog
  local control; control=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["control"])' "$READY")
  sleep 12
  local killed; killed=$(date +%s.%N)
  curl -s -X POST -d '{"down": true}' "$control/sim/appliances/east/faults" >/dev/null
  local call="" verified=""
  for _ in $(seq 1 1800); do
    if [ -z "$call" ]; then
      call=$(curl -s "$control/sim/failover-calls" | python3 -c 'import json,sys,datetime; c=json.load(sys.stdin); print(datetime.datetime.fromisoformat(c[0]["at"]).timestamp() if c else "")')
    fi
    if [ -n "$call" ] && curl -s "http://$LISTEN/status" | grep -q '"state": "cooldown"'; then
      verified=$(date +%s.%N); break
    fi
    sleep 0.1
  done
  stop_pid "$WD_PID"; stop_pid "$SIM_PID"
  echo "$killed $call $verified"
}
for policy in $POLICIES; do
  case "$policy" in
    default) lines=""; bound=40 ;;                                     # 30s + 5s + 5s
    aggressive) lines='failover_after = "5s";stall_tolerance = "10s"'; bound=7 ;;   # 5s + 1s + 1s
  esac
  : > "$WORK/call"; : > "$WORK/verify"
  for run in $(seq 1 "$RUNS"); do
    read -r killed call verified < <(run_once "$lines" "$policy")
    awk -v k="$killed" -v c="$call" 'BEGIN {printf "%.2f\n", c - k}' >> "$WORK/call"
    awk -v c="$call" -v v="$verified" 'BEGIN {printf "%.2f\n", v - c}' >> "$WORK/verify"
  done
  call_median=$(median < "$WORK/call"); verify_median=$(median < "$WORK/verify")
  printf 'latency: %-10s death to call: median %6.2fs (bound %ss, ratio %.2f); call to roles verified: median %5.2fs  [runs: %s]\n' \
    "$policy" "$call_median" "$bound" "$(awk -v a="$call_median" -v b="$bound" 'BEGIN {print a/b}')" "$verify_median" "$(tr '\n' ' ' < "$WORK/call")"
done
