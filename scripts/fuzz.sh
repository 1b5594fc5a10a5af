#!/usr/bin/env bash
# Builds every cargo-fuzz target (fuzz/, see src/fuzzing.rs) and runs each for SECONDS
# (default 10) from its seed corpus in fuzz/corpus/. A crash fails the script and is kept in
# fuzz/artifacts/TARGET/ for `cargo +nightly fuzz run TARGET fuzz/artifacts/TARGET/crash-…`.
# Usage: scripts/fuzz.sh [SECONDS] [TARGET...]
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-10}"
shift || true

command -v cargo-fuzz >/dev/null 2>&1 || cargo install cargo-fuzz --locked
# libFuzzer's instrumentation needs a nightly compiler: the machine's nightly toolchain when
# rustup has one, else the stable compiler with its nightly features unlocked.
toolchain=()
if command -v rustup >/dev/null 2>&1 && rustup toolchain list 2>/dev/null | grep -q '^nightly'; then
  toolchain=(+nightly)
else
  export RUSTC_BOOTSTRAP=1
fi

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
cd fuzz
cargo "${toolchain[@]}" fuzz build -O
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  mapfile -t targets < <(cargo "${toolchain[@]}" fuzz list)
fi
for target in "${targets[@]}"; do
  mkdir -p "$work/$target" "artifacts/$target"
  # New inputs go to the scratch directory; the committed seeds stay as they are.
  if ! cargo "${toolchain[@]}" fuzz run -O "$target" "$work/$target" "corpus/$target" -- \
      -max_total_time="$seconds" -rss_limit_mb=2048 -max_len=65536 -timeout=10 \
      -artifact_prefix="artifacts/$target/" -print_final_stats=1 > "$work/$target.log" 2>&1; then
    tail -n 40 "$work/$target.log"
    echo "fuzz target $target FAILED (the input is in fuzz/artifacts/$target/)" >&2
    exit 1
  fi
  runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$work/$target.log" | grep -o '[0-9]*$' || echo '?')
  echo "fuzz $target: $runs executions in ${seconds}s, no crash"
done
