#!/usr/bin/env bash
# Benchmarks, printing figures (never pass/fail). Usage: hack/bench.sh [store|apiserver|all]
set -euo pipefail
cd "$(dirname "$0")/.."
source hack/lib.sh
ensure_build_deps

bench_store() {
  cargo build --release --locked -p store --example bench
  local bench=target/release/examples/bench
  "$bench"

  local dir port peer
  dir=$(mktemp -d)
  port=$(free_port)
  peer=$(free_port)
  etcd --name bench --data-dir "$dir/etcd" \
    --listen-client-urls "http://127.0.0.1:$port" --advertise-client-urls "http://127.0.0.1:$port" \
    --listen-peer-urls "http://127.0.0.1:$peer" --initial-advertise-peer-urls "http://127.0.0.1:$peer" \
    --initial-cluster "bench=http://127.0.0.1:$peer" >"$dir/etcd.log" 2>&1 &
  local etcd_pid=$!
  trap "kill $etcd_pid 2>/dev/null; rm -rf $dir" RETURN
  for _ in $(seq 100); do
    curl -fsS "http://127.0.0.1:$port/health" >/dev/null 2>&1 && break
    sleep 0.1
  done
  "$bench" --etcd-servers "http://127.0.0.1:$port"
}

bench_apiserver() {
  cargo build --release --locked --bin kube-apiserver -p e2e --example bench_apiserver
  target/release/examples/bench_apiserver target/release/kube-apiserver
}

what=${1:-all}
case "$what" in
  store) bench_store ;;
  apiserver) bench_apiserver ;;
  all) bench_store; bench_apiserver ;;
  *) echo "usage: $0 [store|apiserver|all]" >&2; exit 2 ;;
esac
