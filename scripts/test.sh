#!/usr/bin/env bash
# Runs every check of the project on a fresh Debian machine: installs what the tests need,
# then format, lints and all tests. This is the README's test command and what CI runs.
set -euo pipefail
cd "$(dirname "$0")/.."

need_packages=()
command -v curl >/dev/null 2>&1 || need_packages+=(curl)
command -v openssl >/dev/null 2>&1 || need_packages+=(openssl)
# A real Prometheus and promtool, for the exporter, dashboard and alert rule tests.
{ command -v prometheus >/dev/null 2>&1 && command -v promtool >/dev/null 2>&1; } || need_packages+=(prometheus)
# A real browser for the status page test: Debian's Chromium driven by its chromedriver
# (nothing is downloaded at test time).
[ -x /usr/bin/chromium ] || need_packages+=(chromium)
[ -x /usr/bin/chromedriver ] || need_packages+=(chromium-driver)
# A real etcd, for the tests of several watchdogs acting as one (tests/cluster.rs).
command -v etcd >/dev/null 2>&1 || need_packages+=(etcd-server)
if [ ${#need_packages[@]} -gt 0 ]; then
  echo "==> installing Debian packages: ${need_packages[*]}"
  if [ "$(id -u)" -eq 0 ]; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_packages[@]}" >/dev/null
  else
    sudo apt-get update -qq
    sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_packages[@]}" >/dev/null
  fi
fi

if command -v rustup >/dev/null 2>&1; then
  rustup component add rustfmt clippy >/dev/null 2>&1 || true
fi

echo "==> cargo fmt --check"
cargo fmt --all -- --check
echo "==> cargo clippy (warnings are errors)"
cargo clippy --locked --all-targets -- -D warnings
echo "==> packages (.deb installed and checked, .rpm listed; needs root)"
./packaging/check-packages.sh
echo "==> benchmark scripts, smoke run (tiny parameters; the real runs are in BENCHMARKS.md)"
./bench/smoke.sh
echo "==> cargo test"
cargo test --locked --all-targets
echo "==> fuzz targets, a short run of each (scripts/fuzz.sh; longer runs: scripts/fuzz.sh 600)"
./scripts/fuzz.sh "${FUZZ_SECONDS:-10}"

