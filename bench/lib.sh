# Shared helpers of the benchmark scripts: build, start the simulator and the watchdog,
# read /proc, take medians. Sourced, not run.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# BT_WATCHDOG_BIN: a binary to measure instead of building target/release (a long run that
# must not see a rebuild).
BIN="${BT_WATCHDOG_BIN:-$ROOT/target/release/bt-watchdog}"
WORK="$(mktemp -d /tmp/bt-watchdog-bench.XXXXXX)"
PIDS=()

cleanup() {
  for pid in "${PIDS[@]:-}"; do
    [ -n "$pid" ] && kill "$pid" 2>/dev/null || true
  done
  wait 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

need() {
  # need COMMAND DEBIAN-PACKAGE: install the package when the command is missing.
  if ! command -v "$1" >/dev/null 2>&1; then
    echo "bench: installing $2" >&2
    if [ "$(id -u)" -eq 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$2" >/dev/null
    else sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$2" >/dev/null; fi
  fi
}

build() {
  need python3 python3
  [ -n "${BT_WATCHDOG_BIN:-}" ] || (cd "$ROOT" && cargo build --release --locked --quiet)
  ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"
}

# start_sim PAIRS [simulate options...]: starts the simulator; sets SIM_PID and READY.
start_sim() {
  local pairs="$1"; shift
  READY="$WORK/ready-$RANDOM.json"
  "$BIN" simulate --pairs "$pairs" --ready-file "$READY" "$@" > "$WORK/sim.log" 2>&1 &
  SIM_PID=$!
  PIDS+=("$SIM_PID")
  for _ in $(seq 1 600); do [ -s "$READY" ] && return 0; sleep 0.1; done
  echo "bench: the simulator did not start" >&2; cat "$WORK/sim.log" >&2; exit 1
}

# write_config MODE [POLICY-TOML-LINES]: one site per simulated pair; sets CONFIG and LISTEN.
write_config() {
  local mode="$1" policy="${2:-}"
  CONFIG="$WORK/config-$RANDOM.toml"
  LISTEN="127.0.0.1:$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
  printf 'simulated-secret\n' > "$WORK/secret"; chmod 600 "$WORK/secret"
  python3 - "$READY" "$CONFIG" "$mode" "$WORK" "$LISTEN" "$policy" <<'PY'
import json, sys
ready, config, mode, work, listen, policy = sys.argv[1:7]
pairs = json.load(open(ready))["pairs"]
out = [f'mode = "{mode}"', f'state_dir = "{work}/state-{listen.split(":")[1]}"', "[exporter]", f'listen = "{listen}"']
for i, p in enumerate(pairs):
    a, b = p["appliances"]
    out += ["[[site]]", f'name = "pair{i}"', 'client_id = "bt-watchdog"', f'client_secret_file = "{work}/secret"', 'allow_plain_http = true',
            f'appliances = [ {{ name = "{a["name"]}", url = "{a["url"]}" }}, {{ name = "{b["name"]}", url = "{b["url"]}" }} ]']
    if policy:
        out += ["[site.policy]"] + policy.split(";")
open(config, "w").write("\n".join(out) + "\n")
PY
}

# start_watchdog: runs the daemon on CONFIG; sets WD_PID; waits for /healthz.
start_watchdog() {
  # MALLOC_ARENA_MAX=2 as the systemd unit and the container image set it; BENCH_ARENAS=""
  # runs with glibc's default (the figures before the unit set it).
  env ${BENCH_ARENAS-MALLOC_ARENA_MAX=2} "$BIN" run --config "$CONFIG" > "$WORK/watchdog-$RANDOM.log" 2>&1 &
  WD_PID=$!
  PIDS+=("$WD_PID")
  for _ in $(seq 1 600); do
    curl -fsS "http://$LISTEN/healthz" >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  echo "bench: the watchdog did not become healthy" >&2; exit 1
}

stop_pid() { kill "$1" 2>/dev/null || true; wait "$1" 2>/dev/null || true; }

rss_kib() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
ticks_per_second() { getconf CLK_TCK; }

# median of the numbers on stdin
median() { sort -g | awk '{a[NR]=$1} END {if (NR==0) print "nan"; else if (NR%2) print a[(NR+1)/2]; else print (a[NR/2]+a[NR/2+1])/2}'; }

machine() { echo "$(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(date -u +%Y-%m-%d)"; }
