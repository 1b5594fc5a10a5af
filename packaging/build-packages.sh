#!/usr/bin/env bash
# Builds the release binary, its shell completions and man page, then the .deb and the .rpm
# into target/debian/ and target/generate-rpm/. Installs cargo-deb and cargo-generate-rpm
# from crates.io when missing.
set -euo pipefail
cd "$(dirname "$0")/.."

command -v cargo-deb >/dev/null 2>&1 || cargo install --locked cargo-deb
command -v cargo-generate-rpm >/dev/null 2>&1 || cargo install --locked cargo-generate-rpm

cargo build --release --locked
mkdir -p target/assets
bin=target/release/bt-watchdog
"$bin" completions bash > target/assets/bt-watchdog.bash
"$bin" completions zsh > target/assets/_bt-watchdog
"$bin" completions fish > target/assets/bt-watchdog.fish
"$bin" manpage | gzip -9n > target/assets/bt-watchdog.1.gz

cargo deb --no-build
cargo generate-rpm
ls -1 target/debian/*.deb target/generate-rpm/*.rpm
