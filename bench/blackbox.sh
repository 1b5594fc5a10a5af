#!/usr/bin/env bash
# Beside blackbox_exporter: the watchdog and Debian's prometheus-blackbox-exporter probe the
# same /check_health URLs of the same N pairs (default 100) every 5 s, side by side; RSS and
# CPU of each over DURATION seconds (default 180), and their ratio. A Prometheus drives the
# blackbox probes (as it would in production); its own cost is not counted.
source "$(dirname "$0")/lib.sh"
PAIRS="${PAIRS:-100}"; DURATION="${DURATION:-180}"; WARMUP="${WARMUP:-30}"
need prometheus-blackbox-exporter prometheus-blackbox-exporter
need prometheus prometheus
build
echo "blackbox: $(machine); $PAIRS pairs, every 5s, measured ${DURATION}s after ${WARMUP}s"
start_sim "$PAIRS"
write_config observe
start_watchdog
bb_port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
prom_port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
cat > "$WORK/blackbox.yml" <<'YML'
modules:
  http_2xx:
    prober: http
    timeout: 5s
    http:
      method: GET
YML
targets=$(python3 -c 'import json,sys; print(",".join("\""+a["url"]+"/check_health\"" for p in json.load(open(sys.argv[1]))["pairs"] for a in p["appliances"]))' "$READY")
cat > "$WORK/prometheus.yml" <<YML
global: { scrape_interval: 5s, scrape_timeout: 5s }
scrape_configs:
  - job_name: blackbox
    metrics_path: /probe
    params: { module: [http_2xx] }
    static_configs: [ { targets: [ $targets ] } ]
    relabel_configs:
      - { source_labels: [__address__], target_label: __param_target }
      - { source_labels: [__param_target], target_label: instance }
      - { target_label: __address__, replacement: "127.0.0.1:$bb_port" }
YML
prometheus-blackbox-exporter --config.file="$WORK/blackbox.yml" --web.listen-address="127.0.0.1:$bb_port" > "$WORK/bb.log" 2>&1 &
BB_PID=$!; PIDS+=("$BB_PID")
prometheus --config.file="$WORK/prometheus.yml" --storage.tsdb.path="$WORK/tsdb" --web.listen-address="127.0.0.1:$prom_port" > "$WORK/prom.log" 2>&1 &
PIDS+=("$!")
sleep "$WARMUP"
w0=$(cpu_ticks "$WD_PID"); b0=$(cpu_ticks "$BB_PID"); s0=$(date +%s.%N)
: > "$WORK/wd_rss"; : > "$WORK/bb_rss"
end=$(( $(date +%s) + DURATION ))
while [ "$(date +%s)" -lt "$end" ]; do rss_kib "$WD_PID" >> "$WORK/wd_rss"; rss_kib "$BB_PID" >> "$WORK/bb_rss"; sleep 5; done
w1=$(cpu_ticks "$WD_PID"); b1=$(cpu_ticks "$BB_PID"); s1=$(date +%s.%N)
hz=$(ticks_per_second)
wd_rss=$(median < "$WORK/wd_rss"); bb_rss=$(median < "$WORK/bb_rss")
wd_cpu=$(awk -v a="$w0" -v b="$w1" -v s="$s0" -v e="$s1" -v hz="$hz" 'BEGIN {printf "%.2f", 100*(b-a)/hz/(e-s)}')
bb_cpu=$(awk -v a="$b0" -v b="$b1" -v s="$s0" -v e="$s1" -v hz="$hz" 'BEGIN {printf "%.2f", 100*(b-a)/hz/(e-s)}')
probes=$(curl -s "http://127.0.0.1:$prom_port/api/v1/query?query=count(probe_success)" | python3 -c 'import json,sys; r=json.load(sys.stdin)["data"]["result"]; print(r[0]["value"][1] if r else 0)')
printf 'blackbox: bt-watchdog:       RSS %.1f MiB, CPU %s%% of one core (also polls /health and /appliance, decides)\n' "$(awk -v k="$wd_rss" 'BEGIN {print k/1024}')" "$wd_cpu"
printf 'blackbox: blackbox_exporter: RSS %.1f MiB, CPU %s%% of one core (%s targets probed)\n' "$(awk -v k="$bb_rss" 'BEGIN {print k/1024}')" "$bb_cpu" "$probes"
printf 'blackbox: ratio watchdog/blackbox: RSS %.2f, CPU %s\n' "$(awk -v a="$wd_rss" -v b="$bb_rss" 'BEGIN {print a/b}')" "$(awk -v a="$wd_cpu" -v b="$bb_cpu" 'BEGIN {if (b>0) printf "%.2f", a/b; else print "n/a"}')"
