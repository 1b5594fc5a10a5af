#!/usr/bin/env bash
# Several watchdogs on etcd: what the cluster costs.
# 1. The primary's death -> the failover call, with three clustered instances and with one
#    alone, at the same (aggressive) policy: RUNS runs each (default 3), medians.
# 2. etcd requests per second per instance while nothing happens (IDLE seconds, default 60),
#    from beyondtrust_watchdog_cluster_requests_total, at the default lease_ttl of 10s.
# Needs Debian's etcd-server (installed when missing).
source "$(dirname "$0")/lib.sh"
RUNS="${RUNS:-3}"
IDLE="${IDLE:-60}"
LEASE_TTL="${LEASE_TTL:-10s}"
need etcd etcd-server
build
echo "cluster: $(machine); $RUNS runs per setup, idle window ${IDLE}s, lease_ttl $LEASE_TTL"

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# start_etcd: one member on free loopback ports; sets ETCD_PID and ETCD_URL.
start_etcd() {
  local client peer dir
  client=$(free_port); peer=$(free_port); dir="$WORK/etcd-$RANDOM"
  ETCD_URL="http://127.0.0.1:$client"
  etcd --name b --data-dir "$dir" --listen-client-urls "$ETCD_URL" --advertise-client-urls "$ETCD_URL" \
    --listen-peer-urls "http://127.0.0.1:$peer" --initial-advertise-peer-urls "http://127.0.0.1:$peer" \
    --initial-cluster "b=http://127.0.0.1:$peer" > "$dir.log" 2>&1 &
  ETCD_PID=$!
  PIDS+=("$ETCD_PID")
  for _ in $(seq 1 300); do
    curl -fsS "$ETCD_URL/health" 2>/dev/null | grep -q '"health":"true"' && return 0
    sleep 0.1
  done
  echo "bench: etcd did not start" >&2; cat "$dir.log" >&2; exit 1
}

# clustered INSTANCE: appends [cluster] to CONFIG.
clustered() {
  printf '[cluster]\nendpoints = ["%s"]\nname = "bench"\ninstance = "%s"\nlease_ttl = "%s"\n' \
    "$ETCD_URL" "$1" "$LEASE_TTL" >> "$CONFIG"
}

aggressive() {
  sed -i 's/^client_secret_file = \(.*\)$/client_secret_file = \1\npoll_interval = "1s"\nhealth_interval = "5s"\nrequest_timeout = "1s"/' "$CONFIG"
}

POLICY='failover_after = "5s";stall_tolerance = "10s"'

# run_once INSTANCES: the death-to-call latency with INSTANCES watchdogs (1: alone, no etcd).
run_once() {
  local instances="$1" wds=() listens=()
  start_sim 1 --swap-duration 1s --sync-interval 5s
  [ "$instances" -gt 1 ] && start_etcd
  for i in $(seq 1 "$instances"); do
    write_config auto "$POLICY"; aggressive
    [ "$instances" -gt 1 ] && clustered "w$i"
    start_watchdog; wds+=("$WD_PID"); listens+=("$LISTEN")
  done
  local control; control=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["control"])' "$READY")
  sleep 12
  local killed; killed=$(date +%s.%N)
  curl -s -X POST -d '{"down": true}' "$control/sim/appliances/east/faults" >/dev/null
  local call=""
  for _ in $(seq 1 600); do
    call=$(curl -s "$control/sim/failover-calls" | python3 -c 'import json,sys,datetime; c=json.load(sys.stdin); print(datetime.datetime.fromisoformat(c[0]["at"]).timestamp() if c else "")')
    [ -n "$call" ] && break
    sleep 0.1
  done
  sleep 3
  local count; count=$(curl -s "$control/sim/failover-calls" | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))')
  for pid in "${wds[@]}"; do stop_pid "$pid"; done
  stop_pid "$SIM_PID"; [ "$instances" -gt 1 ] && stop_pid "$ETCD_PID"
  echo "$killed $call $count"
}

for instances in 1 3; do
  : > "$WORK/call"
  for run in $(seq 1 "$RUNS"); do
    read -r killed call count < <(run_once "$instances")
    [ "$count" = 1 ] || { echo "bench: $count failover calls with $instances instance(s), not 1" >&2; exit 1; }
    awk -v k="$killed" -v c="$call" 'BEGIN {printf "%.2f\n", c - k}' >> "$WORK/call"
  done
  printf 'cluster: %d instance(s): death to call: median %6.2fs  [runs: %s]\n' \
    "$instances" "$(median < "$WORK/call")" "$(tr '\n' ' ' < "$WORK/call")"
done

# Idle: three instances, default policy, nothing happens.
start_sim 1
start_etcd
listens=()
for i in 1 2 3; do
  write_config auto; clustered "w$i"; start_watchdog; listens+=("$LISTEN")
done
requests() {
  curl -s "http://$1/metrics" | awk '/^beyondtrust_watchdog_cluster_requests_total/ {print $2}'
}
sleep 15
before=(); for l in "${listens[@]}"; do before+=("$(requests "$l")"); done
sleep "$IDLE"
for i in 0 1 2; do
  after=$(requests "${listens[$i]}")
  awk -v a="$after" -v b="${before[$i]}" -v t="$IDLE" -v n="w$((i + 1))" \
    'BEGIN {printf "cluster: idle: %s: %.3f etcd requests/s (%d in %ss)\n", n, (a - b) / t, a - b, t}'
done
