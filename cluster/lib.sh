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

# Extra nodes (make cluster NODES=N, cluster/nodes.sh): node N >= 2 is a kubelet, containerd,
# kube-proxy and kube-router in a network namespace of its own, joined to slb0 by a veth pair.
# Node 1 is the one above (host namespace, control plane). Node N: address 10.199.0.N, pods
# 10.244.(N-1).0/24; the host routes every node's pod range to that node's address.
MAX_NODES=4
CLUSTER_CIDR=10.244.0.0/16
CONTROL_PLANE_LABEL=node-role.kubernetes.io/control-plane
EXTRA_NODE_LABEL=selfheal-lb.dev/extra-node
# What one extra node needs: its four daemons' RSS measured 248-251 MiB idle
# (docs/local-cluster-and-ci.md), plus room for their growth and the pods' shims; up.sh refuses
# NODES it cannot fit into MemAvailable.
EXTRA_NODE_MIB=400

# Images the cluster and the e2e need: built here (no registry can be pulled from) and
# imported into containerd's k8s.io namespace under these names.
PAUSE_IMAGE="localhost/selfheal-lb/pause:$PAUSE_VERSION"
COREDNS_IMAGE="localhost/selfheal-lb/coredns:${COREDNS_VERSION#v}"
METRICS_SERVER_IMAGE="localhost/selfheal-lb/metrics-server:$METRICS_SERVER_VERSION"
FORTIO_IMAGE="localhost/selfheal-lb/fortio:${FORTIO_VERSION#v}"

node_name() { if (($1 == 1)); then echo "$NODE_NAME"; else echo "$NODE_NAME$1"; fi; }
node_ip() { echo "10.199.0.$1"; }
node_pod_cidr() { echo "10.244.$(($1 - 1)).0/24"; }
node_netns() { echo "slb-node$1"; }
node_veth() { echo "slbn$1"; }  # the host side of node N's veth pair (on slb0)
# node_state N: node 1's files stay where they always were; node N's below node<N>/.
node_state() { if (($1 == 1)); then echo "$SLB_STATE"; else echo "$SLB_STATE/node$1"; fi; }
node_sock() { echo "$(node_state "$1")/containerd.sock"; }
# node_containerd_root N: images survive make cluster-down (each node has its own store).
node_containerd_root() { if (($1 == 1)); then echo "$SLB_CACHE/containerd"; else echo "$SLB_CACHE/containerd-node$1"; fi; }
# node_cgroup N: the extra node's kubelet keeps its pods below this cgroup (node 1: /kubepods).
node_cgroup() { echo "/selfheal-lb-node$1"; }
# node_cert BASE N: node N's certificate (node 1 keeps the names it always had).
node_cert() { if (($2 == 1)); then echo "$1"; else echo "$1-node$2"; fi; }
# node_pid N DAEMON: the name its PID file has ($SLB_PIDS/<name>.pid).
node_pid() { if (($1 == 1)); then echo "$2"; else echo "node$1-$2"; fi; }
# node_run N CMD...: CMD in node N's network namespace (only the network: `ip netns exec`
# would also give it a mount namespace of its own and a fresh /sys without the cgroups, and the
# kubelet's volume mounts must be seen by containerd).
node_run() {
  local n="$1"
  shift
  if ((n == 1)); then "$@"; else nsenter --net="/var/run/netns/$(node_netns "$n")" "$@"; fi
}
# nodes_recorded: how many nodes the running (or last) cluster was started with.
nodes_recorded() { cat "$SLB_STATE/nodes" 2>/dev/null || echo 1; }
# live_node_socks: the containerd socket of every node whose containerd answers.
live_node_socks() {
  local n sock
  for ((n = 1; n <= MAX_NODES; n++)); do
    sock="$(node_sock "$n")"
    [ -S "$sock" ] && timeout 5 ctr --address "$sock" version >/dev/null 2>&1 && echo "$sock"
  done
  return 0
}

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
