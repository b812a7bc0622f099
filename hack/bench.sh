#!/usr/bin/env bash
# Benchmarks, printing figures (never pass/fail). Usage: hack/bench.sh [store|apiserver|scheduler|node-simulator|controllers|all]
set -euo pipefail
cd "$(dirname "$0")/.."
source hack/lib.sh
ensure_build_deps
# The e2e harness (e2e::Cluster) behind the component benchmarks starts the binaries here.
export KUBE_BIN_DIR="$PWD/target/release"

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
  cargo build --release --locked -p apiserver --bin kube-apiserver
  cargo build --release --locked -p e2e --example bench_apiserver
  target/release/examples/bench_apiserver
}

bench_scheduler() {
  cargo build --release --locked -p apiserver -p scheduler
  cargo build --release --locked -p e2e --example bench_scheduler
  target/release/examples/bench_scheduler
}

bench_controllers() {
  cargo build --release --locked -p apiserver -p scheduler -p node-simulator -p controller-manager
  cargo build --release --locked -p e2e --example bench_controllers
  target/release/examples/bench_controllers
}

bench_node_simulator() {
  cargo build --release --locked -p apiserver -p scheduler -p node-simulator
  cargo build --release --locked -p e2e --example bench_node_simulator
  target/release/examples/bench_node_simulator
}

what=${1:-all}
case "$what" in
  store) bench_store ;;
  apiserver) bench_apiserver ;;
  scheduler) bench_scheduler ;;
  node-simulator) bench_node_simulator ;;
  controllers) bench_controllers ;;
  all) bench_store; bench_apiserver; bench_scheduler; bench_node_simulator; bench_controllers ;;
  *) echo "usage: $0 [store|apiserver|scheduler|node-simulator|controllers|all]" >&2; exit 2 ;;
esac
