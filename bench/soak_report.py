#!/usr/bin/env python3
"""The soak's verdict: python3 bench/soak_report.py DIR (DIR holds samples.csv from
bench/soak.py). Writes DIR/slopes.txt and DIR/soak.png (gnuplot) and exits 1 when a quantity
grows or a healthy appliance missed a poll.

The criterion, per quantity, after WARMUP_MINUTES (default 10): the samples are grouped in
blocks of BLOCK_SECONDS (default 300; a flood or a burst of churn is then one block, and
neighbouring blocks are close to independent, which single samples 10 s apart are not); a
straight line is fitted to the blocks' medians by least squares, and its slope per hour gets a
95 % confidence interval (Student's t, blocks - 2 degrees of freedom). The quantity passes
when that interval contains zero (no trend that the noise cannot explain) or lies wholly below
its bound (a trend, but one too small to matter: the bounds below, per hour). Any missed poll
of an untouched (healthy) appliance fails the run.
"""

import csv
import json
import math
import os
import statistics
import subprocess
import sys

# (column, label, unit scale, bound per hour in the plotted unit). "other_series" is every
# series but those of the families whose label values appear the first time something happens
# to an appliance (bench/soak.py's FIRST_SEEN_FAMILIES: requests by endpoint and status or
# error kind, client types, token outcomes). Those stay once seen: bounded by closed label
# sets (endpoints x codes, six client types, four outcomes per appliance), they grow while the
# churn meets new combinations, which the warm-up's tour makes it meet first. They are fitted,
# shown and judged apart, against a looser bound (FIRST_SEEN_SERIES).
QUANTITIES = [
    ("rss_kib", "RSS (MiB)", 1 / 1024, float(os.environ.get("SOAK_BOUND_RSS_MIB", 0.25))),
    ("fds", "open descriptors", 1, float(os.environ.get("SOAK_BOUND_FDS", 1))),
    ("threads", "threads", 1, float(os.environ.get("SOAK_BOUND_THREADS", 0.5))),
    ("tasks", "runtime tasks", 1, float(os.environ.get("SOAK_BOUND_TASKS", 2))),
    ("other_series", "other series", 1, float(os.environ.get("SOAK_BOUND_SERIES", 1))),
    ("first_seen_series", "first-seen series", 1,
     float(os.environ.get("SOAK_BOUND_FIRST_SEEN_SERIES", 50))),
]
# Two-sided 95 % quantiles of Student's t by degrees of freedom.
T975 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306,
        9: 2.262, 10: 2.228, 11: 2.201, 12: 2.179, 13: 2.160, 14: 2.145, 15: 2.131,
        16: 2.120, 17: 2.110, 18: 2.101, 19: 2.093, 20: 2.086, 22: 2.074, 24: 2.064,
        26: 2.056, 28: 2.048, 30: 2.042, 40: 2.021, 60: 2.000, 120: 1.980}


def t975(df):
    if df in T975:
        return T975[df]
    below = [k for k in T975 if k <= df]
    return T975[max(below)] if below else float("inf")


def fit(points):
    """Least squares: (slope, half width of its 95 % interval)."""
    n = len(points)
    if n < 3:
        return None
    xs = [p[0] for p in points]
    ys = [p[1] for p in points]
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    sxx = sum((x - mx) ** 2 for x in xs)
    if sxx == 0:
        return None
    slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sxx
    residual = sum((y - my - slope * (x - mx)) ** 2 for x, y in zip(xs, ys))
    se = math.sqrt(residual / (n - 2) / sxx)
    return slope, t975(n - 2) * se, my - slope * mx


def main():
    out = sys.argv[1]
    warmup = float(os.environ.get("WARMUP_MINUTES", 10)) * 60
    block = float(os.environ.get("BLOCK_SECONDS", 300))
    rows = list(csv.DictReader(open(os.path.join(out, "samples.csv"))))
    for r in rows:
        # Earlier runs counted only the request series apart (`request_series`), the first
        # ones nothing: those judge what they have.
        if r.get("first_seen_series") in (None, ""):
            r["first_seen_series"] = r.get("request_series") or ""
        r["other_series"] = (str(int(r["series"]) - int(r["first_seen_series"]))
                             if r["series"] and r["first_seen_series"] else r["series"])
    if not rows:
        print("soak: no samples", file=sys.stderr)
        return 1
    summary_path = os.path.join(out, "summary.json")
    summary = json.load(open(summary_path)) if os.path.exists(summary_path) else {}
    duration = float(rows[-1]["seconds"])
    lines = [f"soak: {duration / 60:.1f} min sampled, {len(rows)} samples; slopes fitted after "
             f"{warmup / 60:.0f} min of warm-up to the medians of {block:.0f}-s blocks; pass: the "
             f"95 % interval of the slope contains 0 or lies below the bound"]
    if summary:
        lines.append("soak: " + json.dumps({k: v for k, v in summary.items()}))
    failed = []
    fits = {}
    split = any(r["first_seen_series"] != "" for r in rows)
    for column, label, scale, bound in QUANTITIES:
        if column == "other_series" and not split:
            label = "series in /metrics"
        points = [(float(r["seconds"]), float(r[column]) * scale) for r in rows
                  if r[column] != "" and float(r["seconds"]) >= warmup]
        blocks = {}
        for t, y in points:
            blocks.setdefault(int((t - warmup) // block), []).append((t, y))
        # A last block shorter than half a block is left out: its median is of a few samples.
        medians = [(statistics.fmean(t for t, _ in b) / 3600, statistics.median(y for _, y in b))
                   for key, b in sorted(blocks.items())
                   if (key + 1) * block + warmup <= duration + block / 2]
        result = fit(medians)
        values = [y for _, y in points]
        if result is None and column == "first_seen_series" and not points:
            lines.append(f"{label:20s}: not sampled in this run (counted in the series above)")
            continue
        if result is None:
            lines.append(f"{label:20s}: too few blocks ({len(medians)}) after the warm-up to fit")
            failed.append(f"{label}: not enough data")
            continue
        slope, half, intercept = result
        fits[column] = (slope, intercept)
        low, high = slope - half, slope + half
        ok = (low <= 0 <= high) or high <= bound
        verdict = "pass" if ok else "FAIL"
        lines.append(
            f"{label:20s}: slope {slope:+.3f}/h, 95 % interval [{low:+.3f}, {high:+.3f}]/h, "
            f"bound {bound}/h; median {statistics.median(values):.1f}, min {min(values):.1f}, "
            f"max {max(values):.1f}; {len(medians)} blocks: {verdict}")
        # For a quantity that settles (label values that appear once, caches that fill), the
        # second half's slope says whether the growth is slowing; not part of the verdict.
        half = fit(medians[len(medians) // 2:])
        if half is not None:
            lines.append(f"{'':20s}  second half: slope {half[0]:+.3f}/h, 95 % interval "
                         f"[{half[0] - half[1]:+.3f}, {half[0] + half[1]:+.3f}]/h")
        if not ok:
            failed.append(label)
    missed = int(rows[-1]["missed_polls"] or 0)
    lines.append(f"missed polls of untouched appliances: {missed}: {'pass' if missed == 0 else 'FAIL'}")
    if missed:
        failed.append("missed polls")
    lines.append("soak: " + ("PASS" if not failed else "FAIL: " + ", ".join(failed)))
    text = "\n".join(lines) + "\n"
    open(os.path.join(out, "slopes.txt"), "w").write(text)
    print(text, end="")
    plot(out, rows, fits, warmup)
    return 1 if failed else 0


def plot(out, rows, fits, warmup):
    # Only the quantities this run sampled; all series under one name when not split.
    split = any(r["first_seen_series"] != "" for r in rows)
    shown = [(c, ("series in /metrics" if c == "other_series" and not split else label), s, b)
             for c, label, s, b in QUANTITIES if any(r[c] != "" for r in rows)]
    data = os.path.join(out, "samples.dat")
    with open(data, "w") as f:
        for r in rows:
            values = [float(r["seconds"]) / 60] + [
                (float(r[c]) * s if r[c] != "" else float("nan")) for c, _, s, _ in shown]
            values.append(float(r["flooding"]))
            f.write(" ".join(f"{v:.4f}" for v in values) + "\n")
    title = f"bt-watchdog soak: {float(rows[-1]['seconds']) / 60:.0f} min"
    summary_path = os.path.join(out, "summary.json")
    if os.path.exists(summary_path):
        summary = json.load(open(summary_path))
        title += f", {summary.get('pairs', '?')} pairs"
    script = [
        "set terminal pngcairo size 1000,1300 font 'sans,9'",
        f"set output '{os.path.join(out, 'soak.png')}'",
        f"set multiplot layout {len(shown)},1 title '{title} (grey: floods; red: fit after the warm-up)'",
        "set grid", "set key off", "set xlabel 'minutes'",
        f"set arrow from {warmup / 60},graph 0 to {warmup / 60},graph 1 nohead dt 2 lc 'gray40'",
    ]
    for index, (column, label, _, _) in enumerate(shown):
        col = index + 2
        if not any(r[column] != "" for r in rows):
            script.append(f"set ylabel '{label}'")
            script.append("plot 0 with lines lc 'white' title 'no data'")
            continue
        fitted = ""
        if column in fits:
            slope, intercept = fits[column]
            fitted = (f", (x >= {warmup / 60} ? {intercept} + {slope} * x / 60 : 1/0) "
                      "with lines lw 2 lc 'red'")
        script.append(f"set ylabel '{label}'")
        script.append(
            f"plot '{data}' using 1:($" + str(len(shown) + 2) + " > 0 ? $" + str(col) +
            " : 1/0) with points pt 7 ps 0.3 lc 'gray70', "
            f"'{data}' using 1:" + str(col) + " with lines lc 'blue'" + fitted)
    script.append("unset multiplot")
    try:
        subprocess.run(["gnuplot"], input="\n".join(script) + "\n", text=True, check=True)
    except (OSError, subprocess.CalledProcessError) as error:
        print(f"soak: no plot: {error}", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
