#!/usr/bin/env bash
# Builds the control plane, starts it on the embedded store (or on etcd with
# ETCD_SERVERS=http://host:2379,...), waits until it is ready and prints the KUBECONFIG line.
# Ctrl-C stops everything. State lives in $LOCAL_DIR (default: _output/local), so a second
# run reuses the cluster's data and certificates.
set -euo pipefail
cd "$(dirname "$0")/.."
source hack/lib.sh
ensure_build_deps

LOCAL_DIR=${LOCAL_DIR:-$PWD/_output/local}
SECURE_PORT=${SECURE_PORT:-6443}
mkdir -p "$LOCAL_DIR"

echo "building release binaries..." >&2
cargo build --release --locked --bin kube-apiserver --bin kube-controller-manager --bin kube-scheduler --bin node-simulator

# NodeRestriction next to the default Node,RBAC authorization, as kubeadm enables it.
args=(--secure-port "$SECURE_PORT" --cert-dir "$LOCAL_DIR/pki" --data-dir "$LOCAL_DIR/data"
  --enable-admission-plugins NodeRestriction)
if [ -n "${ETCD_SERVERS:-}" ]; then
  args+=(--etcd-servers "$ETCD_SERVERS")
fi

pids=()
cleanup() {
  trap - INT TERM EXIT
  echo "stopping..." >&2
  [ ${#pids[@]} -gt 0 ] && kill "${pids[@]}" 2>/dev/null
  wait 2>/dev/null
}
trap cleanup INT TERM EXIT

target/release/kube-apiserver "${args[@]}" >"$LOCAL_DIR/kube-apiserver.log" 2>&1 &
pids+=($!)

export KUBECONFIG="$LOCAL_DIR/pki/admin.conf"
for _ in $(seq 300); do
  if [ -f "$KUBECONFIG" ] && kubectl get --raw /readyz >/dev/null 2>&1; then
    break
  fi
  if ! kill -0 "${pids[0]}" 2>/dev/null; then
    echo "kube-apiserver exited; its log:" >&2
    cat "$LOCAL_DIR/kube-apiserver.log" >&2
    exit 1
  fi
  sleep 0.1
done

# --use-service-account-credentials as kubeadm passes it: each controller writes as its own
# kube-system service account, so the apiserver's default --authorization-mode=Node,RBAC
# needs only the bootstrap policy.
# The cluster CA the apiserver generated signs approved CertificateSigningRequests.
target/release/kube-controller-manager --kubeconfig "$LOCAL_DIR/pki/controller-manager.conf" \
  --service-account-private-key-file "$LOCAL_DIR/pki/sa.key" --use-service-account-credentials \
  --cluster-signing-cert-file "$LOCAL_DIR/pki/ca.crt" --cluster-signing-key-file "$LOCAL_DIR/pki/ca.key" \
  --bind-address 127.0.0.1 --secure-port "${CONTROLLER_MANAGER_PORT:-10257}" \
  >"$LOCAL_DIR/kube-controller-manager.log" 2>&1 &
pids+=($!)

target/release/kube-scheduler --kubeconfig "$LOCAL_DIR/pki/scheduler.conf" \
  --bind-address 127.0.0.1 --secure-port "${SCHEDULER_PORT:-10259}" \
  >"$LOCAL_DIR/kube-scheduler.log" 2>&1 &
pids+=($!)

# Each simulated node gets its own identity (system:node:<name>) through a CSR the
# controller-manager approves and signs, as kubelet's TLS bootstrap; the admin kubeconfig only
# bootstraps them and watches pods for all of them.
target/release/node-simulator --kubeconfig "$LOCAL_DIR/pki/admin.conf" --nodes "${SIMULATED_NODES:-3}" \
  --tls-bootstrap >"$LOCAL_DIR/node-simulator.log" 2>&1 &
pids+=($!)

cat <<MSG
Cluster is up (logs in $LOCAL_DIR/*.log). In another terminal:

  export KUBECONFIG=$KUBECONFIG
  kubectl get nodes

Press Ctrl-C to stop it.
MSG
wait
