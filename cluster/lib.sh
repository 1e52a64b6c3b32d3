# Shared by cluster/*.sh: pinned versions, where things live, one-line messages.
# shellcheck shell=bash
CLUSTER_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=cluster/versions.env
source "$CLUSTER_DIR/versions.env"

# Built binaries: outside the checkout, so a fresh clone and later runs reuse them.
SLB_CACHE="${SELFHEAL_LB_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/selfheal-lb}/cluster"
SLB_BIN="$SLB_CACHE/bin"
# The running cluster's state (PKI, etcd data, logs, pids, kubeconfig). One cluster per machine.
SLB_STATE="${SELFHEAL_LB_CLUSTER_STATE:-$SLB_CACHE/state}"
SLB_KUBECONFIG="$SLB_CACHE/kubeconfig"
SLB_CONTEXT=selfheal-lb
SLB_LOGS="$SLB_STATE/logs"
SLB_PIDS="$SLB_STATE/pids"

# Addresses. The node lives on an interface of its own (a portless bridge), so nothing depends on (or
# sends to) the machine's real network; pods, Services and load-balancer addresses are routed
# to that interface, so a packet for an address nobody serves is dropped here, never sent out.
SLB_IFACE=slb0
NODE_IP=10.199.0.1
POD_CIDR=10.244.0.0/24
SERVICE_CIDR=10.96.0.0/16
KUBERNETES_SVC_IP=10.96.0.1
DNS_SVC_IP=10.96.0.10
LB_POOL_CIDR=10.199.1.0/24
CLUSTER_DOMAIN=cluster.local
NODE_NAME=selfheal-lb-node
API_PORT=6443
ETCD_CLIENT_PORT=2379
ETCD_PEER_PORT=2380

# Images the cluster and the e2e need: built here (no registry can be pulled from) and
# imported into containerd's k8s.io namespace under these names.
PAUSE_IMAGE="localhost/selfheal-lb/pause:$PAUSE_VERSION"
COREDNS_IMAGE="localhost/selfheal-lb/coredns:${COREDNS_VERSION#v}"
METRICS_SERVER_IMAGE="localhost/selfheal-lb/metrics-server:$METRICS_SERVER_VERSION"
FORTIO_IMAGE="localhost/selfheal-lb/fortio:${FORTIO_VERSION#v}"

log() { echo "cluster: $*" >&2; }
die() { echo "cluster: $*" >&2; exit 1; }

kc() { "$SLB_BIN/kubectl" --kubeconfig "$SLB_KUBECONFIG" --context "$SLB_CONTEXT" "$@"; }

# wait_for SECONDS DESCRIPTION CMD...: polls CMD every 0.5 s; one line and exit 1 on timeout.
wait_for() {
  local limit="$1" what="$2" deadline
  shift 2
  deadline=$((SECONDS + limit))
  until "$@" >/dev/null 2>&1; do
    ((SECONDS < deadline)) || die "timed out after ${limit} s waiting for $what"
    sleep 0.5
  done
}

# ours NAME: the PID recorded for daemon NAME, if that process is still the one we started (its
# command line names the binary), so a reused PID is never signalled.
ours() {
  local f="$SLB_PIDS/$1.pid" pid
  [ -s "$f" ] || return 1
  pid="$(cat "$f")"
  [ -r "/proc/$pid/cmdline" ] && tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q -- "$2" || return 1
  echo "$pid"
}
