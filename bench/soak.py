#!/usr/bin/env python3
"""The soak's driver (run by bench/soak.sh): churn on the simulated pairs, scrapes, floods,
reloads, and a sample of the daemon every SAMPLE_EVERY seconds into samples.csv.

A fifth of the pairs (at least one) is never touched: their appliances stay healthy, and every
poll they miss is counted (the simulator counts each appliance's /check_health probes; one
is due every poll_interval). The other pairs get a new fault every CHURN_EVERY seconds, each
lifted again after its duration. Python's standard library only.
"""

import argparse
import gzip
import http.client
import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request

POLL_INTERVAL = 5.0  # the configuration's default poll_interval


def env(name, default):
    return float(os.environ.get(name, default))


SCRAPE_EVERY = env("SCRAPE_EVERY", 5)
FLOOD_EVERY = env("FLOOD_EVERY", 900)
FLOOD_SECONDS = env("FLOOD_SECONDS", 60)
HUP_EVERY = env("HUP_EVERY", 600)
SAMPLE_EVERY = env("SAMPLE_EVERY", 10)
CHURN_EVERY = env("CHURN_EVERY", 15)
# The warm-up's tour: every fault kind on every churned pair at once, held TOUR_HOLD seconds,
# then TOUR_REST seconds of calm (0 skips the tour). See `tour`.
TOUR_HOLD = env("TOUR_HOLD", 45)
TOUR_REST = env("TOUR_REST", 20)
# Families whose label values appear the first time something happens to an appliance (a
# status or error kind on an endpoint, a client type, a token outcome) and then stay: bounded
# by closed label sets, but they grow until the churn has met every combination. They are
# counted apart (`first_seen_series`) so that the other series are judged on their own.
FIRST_SEEN_FAMILIES = ("beyondtrust_api_requests_total{", "beyondtrust_appliance_clients{",
                       "beyondtrust_api_token_requests_total{")
# A window for counting missed polls: long enough that one late poll is not a miss.
MISS_WINDOW = 60.0

stopping = threading.Event()


def request(method, url, body=None, headers=None, timeout=10.0):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    if data is not None:
        req.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(req, timeout=timeout) as answer:
        return answer.read(), answer.headers


def control(pair, method, path, body=None):
    raw, _ = request(method, pair["control"] + path, body)
    return json.loads(raw) if raw else None


class Log:
    def __init__(self, path):
        self.file = open(path, "a", buffering=1)
        self.lock = threading.Lock()
        self.start = time.monotonic()

    def __call__(self, text):
        with self.lock:
            self.file.write(f"{time.monotonic() - self.start:9.1f} {text}\n")


# What churn does to an appliance: (name, weight, fault patch or None, seconds (min, max)).
EVENTS = [
    ("primary_down", 4, {"down": True}, (50, 120)),
    ("backup_down", 2, {"down": True}, (30, 90)),
    ("rate_limited", 3, {"rate_limited": True, "retry_after_secs": 20}, (30, 90)),
    ("hang", 3, {"hang": True}, (20, 60)),
    ("slow", 2, {"slow_ms": 3000}, (30, 60)),
    ("unhealthy", 2, {"unhealthy": True}, (30, 90)),
    ("revoke_tokens", 1, None, (0, 0)),
]


def target(pair, kind, rng):
    """The appliance of `pair` a fault of `kind` goes to."""
    state = control(pair, "GET", "/sim/state")
    roles = {a["name"]: a["failover_role"] for a in state["appliances"]}
    names = list(roles)
    if kind == "primary_down":
        return next((n for n in names if roles[n] == "primary"), names[0])
    if kind == "backup_down":
        return next((n for n in names if roles[n] != "primary"), names[1])
    return rng.choice(names)


def tour(pairs, log, counts, rng):
    """The warm-up's tour: each fault kind in turn on every pair at once, held TOUR_HOLD
    seconds, then lifted for TOUR_REST. Every appliance then has met every fault once, so the
    label values that appear on first sight (`FIRST_SEEN_FAMILIES`) are mostly there before
    the slopes are fitted: what still grows after the warm-up is what a leak looks like, not
    the first 429 of some appliance. It also makes every churned pair fail over at once."""
    if TOUR_HOLD <= 0:
        return
    log(f"tour starts: {len(EVENTS)} fault kinds on {len(pairs)} pairs")
    for kind, _, patch, _ in EVENTS:
        touched = []
        for index, pair in enumerate(pairs):
            if stopping.is_set():
                return
            try:
                name = target(pair, kind, rng)
                if patch is None:
                    control(pair, "POST", f"/sim/appliances/{name}/revoke-tokens")
                else:
                    control(pair, "POST", f"/sim/appliances/{name}/faults", patch)
                    touched.append((index, name))
                counts[kind] = counts.get(kind, 0) + 1
            except (OSError, urllib.error.URLError, KeyError, ValueError) as error:
                log(f"pair{index}: tour {kind} failed: {error}")
        log(f"tour: {kind} on {len(pairs)} pairs")
        if touched:
            stopping.wait(TOUR_HOLD)
        for index, name in touched:
            try:
                control(pairs[index], "DELETE", f"/sim/appliances/{name}/faults")
            except (OSError, urllib.error.URLError) as error:
                log(f"pair{index} {name}: lifting failed: {error}")
        stopping.wait(TOUR_REST)
    log("tour ends")


def churn(pairs, log, counts):
    """After the warm-up's tour, every CHURN_EVERY seconds one fault on one pair that has none;
    each is lifted after its duration. Runs until `stopping`."""
    busy = {}  # pair index -> (appliance name, lift time)
    rng = random.Random(19)
    tour(pairs, log, counts, rng)
    weights = [e[1] for e in EVENTS]
    next_event = time.monotonic()
    while not stopping.is_set():
        now = time.monotonic()
        for index, (name, lift) in list(busy.items()):
            if now >= lift:
                try:
                    control(pairs[index], "DELETE", f"/sim/appliances/{name}/faults")
                    log(f"pair{index} {name}: faults lifted")
                    del busy[index]
                except (OSError, urllib.error.URLError) as error:
                    log(f"pair{index} {name}: lifting failed: {error}")
        if now >= next_event:
            next_event += CHURN_EVERY
            free = [i for i in range(len(pairs)) if i not in busy]
            if free:
                index = rng.choice(free)
                kind, _, patch, (low, high) = rng.choices(EVENTS, weights)[0]
                try:
                    name = target(pairs[index], kind, rng)
                    if patch is None:
                        control(pairs[index], "POST", f"/sim/appliances/{name}/revoke-tokens")
                    else:
                        control(pairs[index], "POST", f"/sim/appliances/{name}/faults", patch)
                        busy[index] = (name, now + rng.uniform(low, high))
                    counts[kind] = counts.get(kind, 0) + 1
                    log(f"pair{index} {name}: {kind}")
                except (OSError, urllib.error.URLError, KeyError, ValueError) as error:
                    log(f"pair{index}: {kind} failed: {error}")
        stopping.wait(0.5)
    for index, (name, _) in busy.items():
        try:
            control(pairs[index], "DELETE", f"/sim/appliances/{name}/faults")
        except (OSError, urllib.error.URLError):
            pass


def scrape(listen):
    """One scrape as Prometheus makes it (gzip), from 127.0.0.2: the exporter caps connections
    per client address, and the flood comes from 127.0.0.1 (Prometheus is not the flooder)."""
    host, port = listen.rsplit(":", 1)
    connection = http.client.HTTPConnection(host, int(port), timeout=10,
                                            source_address=("127.0.0.2", 0))
    try:
        connection.request("GET", "/metrics", headers={"Accept-Encoding": "gzip"})
        answer = connection.getresponse()
        raw = answer.read()
        if answer.status != 200:
            raise OSError(f"status {answer.status}")
        if answer.getheader("Content-Encoding") == "gzip":
            raw = gzip.decompress(raw)
        return raw
    finally:
        connection.close()


def scraper(listen, shared, log):
    """Scrapes /metrics every SCRAPE_EVERY seconds and keeps the series count and the
    runtime's task count of the last scrape."""
    while not stopping.is_set():
        started = time.monotonic()
        try:
            raw = scrape(listen)
            series = 0
            first_seen = 0
            tasks = None
            for line in raw.decode().splitlines():
                if line and not line.startswith("#"):
                    series += 1
                    if line.startswith(FIRST_SEEN_FAMILIES):
                        first_seen += 1
                    if line.startswith("beyondtrust_watchdog_runtime_tasks "):
                        tasks = float(line.split()[1])
            with shared["lock"]:
                shared["series"] = series
                shared["first_seen_series"] = first_seen
                shared["tasks"] = tasks
                shared["scrapes"] += 1
                shared["scrape_seconds"] = time.monotonic() - started
        except (OSError, http.client.HTTPException, ValueError) as error:
            with shared["lock"]:
                shared["scrape_failures"] += 1
            log(f"scrape failed: {error}")
        stopping.wait(max(0.0, SCRAPE_EVERY - (time.monotonic() - started)))


def flood(listen, log):
    """For FLOOD_SECONDS, 64 connections scrape /metrics and /status as fast as they can."""
    log("flood starts")
    procs = [
        subprocess.Popen(
            ["wrk", "-t1", "-c32", f"-d{int(FLOOD_SECONDS)}s", "-H", "Accept-Encoding: gzip",
             f"http://{listen}{path}"],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        for path in ("/metrics", "/status")
    ]
    for proc in procs:
        out, _ = proc.communicate()
        requests = [l for l in out.splitlines() if "requests in" in l]
        log(f"flood: {' '.join(proc.args[-1:])}: {requests[0].strip() if requests else out.strip()[-200:]}")
    log("flood ends")


def proc_sample(pid):
    status = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            status[key] = value.split()
    fds = len(os.listdir(f"/proc/{pid}/fd"))
    return int(status["VmRSS"][0]), fds, int(status["Threads"][0])


def check_health_counts(pairs):
    counts = {}
    for index, pair in enumerate(pairs):
        state = control(pair, "GET", "/sim/state")
        for appliance in state["appliances"]:
            counts[(index, appliance["name"])] = appliance["counters"]["check_health_requests"]
    return counts


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--ready", required=True)
    parser.add_argument("--listen", required=True)
    parser.add_argument("--pid", type=int, required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--minutes", type=float, required=True)
    parser.add_argument("--config", required=True)
    args = parser.parse_args()

    pairs = json.load(open(args.ready))["pairs"]
    untouched = max(1, len(pairs) // 5)
    healthy, churned = pairs[:untouched], pairs[untouched:]
    log = Log(os.path.join(args.out, "events.log"))
    log(f"start: {len(pairs)} pairs, {untouched} untouched (pair0..pair{untouched - 1}), "
        f"scrape every {SCRAPE_EVERY}s, flood {FLOOD_SECONDS}s every {FLOOD_EVERY}s, "
        f"SIGHUP every {HUP_EVERY}s, churn every {CHURN_EVERY}s, sample every {SAMPLE_EVERY}s")

    def stop(signum, _frame):
        log(f"signal {signum}: stopping early")
        stopping.set()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)

    shared = {"lock": threading.Lock(), "series": None, "first_seen_series": None, "tasks": None,
              "scrapes": 0,
              "scrape_failures": 0, "scrape_seconds": None}
    counts = {}
    # Churn indexes are into `churned`; name them by their place in `pairs`.
    threads = [
        threading.Thread(target=churn, args=(churned, lambda t: log(shift(t, untouched)), counts),
                         daemon=True),
        threading.Thread(target=scraper, args=(args.listen, shared, log), daemon=True),
    ]
    for thread in threads:
        thread.start()

    start = time.monotonic()
    end = start + args.minutes * 60
    next_sample = start
    next_hup = start + HUP_EVERY
    # The first flood comes half a period in, clear of the start.
    next_flood = start + FLOOD_EVERY / 2
    flood_thread = None
    window_start, window_counts = time.monotonic(), check_health_counts(healthy)
    missed = 0
    hups = 0
    floods = 0
    samples = open(os.path.join(args.out, "samples.csv"), "w", buffering=1)
    samples.write("seconds,rss_kib,fds,threads,tasks,series,missed_polls,scrapes,scrape_failures,"
                  "floods,reloads,flooding,first_seen_series\n")
    while not stopping.is_set() and time.monotonic() < end:
        now = time.monotonic()
        if now >= next_hup:
            next_hup += HUP_EVERY
            os.kill(args.pid, signal.SIGHUP)
            hups += 1
            log("SIGHUP")
        if now >= next_flood:
            next_flood += FLOOD_EVERY
            floods += 1
            flood_thread = threading.Thread(target=flood, args=(args.listen, log), daemon=True)
            flood_thread.start()
        if now - window_start >= MISS_WINDOW:
            counts_now = check_health_counts(healthy)
            elapsed = now - window_start
            due = int(elapsed // POLL_INTERVAL) - 1
            for key, seen in counts_now.items():
                polled = seen - window_counts.get(key, seen)
                if polled < due:
                    missed += due - polled
                    log(f"pair{key[0]} {key[1]}: {polled} polls in {elapsed:.0f}s, {due} due: "
                        f"{due - polled} missed")
            window_start, window_counts = now, counts_now
        if now >= next_sample:
            next_sample += SAMPLE_EVERY
            try:
                rss, fds, nthreads = proc_sample(args.pid)
            except (OSError, KeyError) as error:
                log(f"the watchdog is gone: {error}")
                stopping.set()
                return 1
            with shared["lock"]:
                series, tasks = shared["series"], shared["tasks"]
                first_seen = shared["first_seen_series"]
                scrapes, failures = shared["scrapes"], shared["scrape_failures"]
            flooding = int(flood_thread is not None and flood_thread.is_alive())
            samples.write(f"{now - start:.1f},{rss},{fds},{nthreads},"
                          f"{'' if tasks is None else int(tasks)},{'' if series is None else series},"
                          f"{missed},{scrapes},{failures},{floods},{hups},{flooding},"
                          f"{'' if first_seen is None else first_seen}\n")
        stopping.wait(max(0.05, min(next_sample, next_hup, next_flood) - time.monotonic()))
    stopping.set()
    for thread in threads:
        thread.join(timeout=15)
    if flood_thread is not None:
        flood_thread.join(timeout=FLOOD_SECONDS + 15)
    summary = {
        "seconds": round(time.monotonic() - start, 1),
        "pairs": len(pairs),
        "untouched_pairs": untouched,
        "missed_polls": missed,
        "events": counts,
        "floods": floods,
        "reloads": hups,
        "scrapes": shared["scrapes"],
        "scrape_failures": shared["scrape_failures"],
        "failover_calls": sum(control(p, "GET", "/sim/state")["failover_calls"] for p in churned),
    }
    json.dump(summary, open(os.path.join(args.out, "summary.json"), "w"), indent=1)
    log(f"end: {json.dumps(summary)}")
    return 0


def shift(text, by):
    """`pairN` of the churned list is pair N+by of the whole."""
    if text.startswith("pair"):
        number, _, rest = text[4:].partition(" ")
        if number.rstrip(":").isdigit():
            tail = ":" if number.endswith(":") else ""
            return f"pair{int(number.rstrip(':')) + by}{tail} {rest}"
    return text


if __name__ == "__main__":
    sys.exit(main())
