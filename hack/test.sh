#!/usr/bin/env bash
# Runs every test of the workspace, unit and end-to-end, against both store backends (the
# etcd tests start real etcd processes on loopback). Installs what it needs first.
set -euo pipefail
cd "$(dirname "$0")/.."
source hack/lib.sh
ensure_build_deps
ensure_python_client

# Style and lints first: rustfmt.toml's layout and clippy without a warning.
cargo fmt --all --check
cargo clippy --workspace --all-targets --locked -- -D warnings

# Build once; every test binary shares the target dir.
cargo build --workspace --all-targets --locked
if command -v cargo-nextest >/dev/null 2>&1; then
  cargo nextest run --workspace --locked --no-fail-fast "$@"
else
  cargo test --workspace --locked --no-fail-fast "$@"
fi
