#!/usr/bin/env bash
# `make cluster [NODES=N]`: a real Kubernetes cluster on this Linux machine, without minikube.
#   etcd, kube-apiserver (own PKI, aggregation layer), controller-manager, scheduler, kubelet on
#   containerd (Debian's), kube-proxy (iptables), CoreDNS, and what minikube gives the
#   walkthrough: the metrics-server addon in kube-system, a LoadBalancer implementation
#   (cluster/lb_status.py, like `minikube tunnel`) and a NetworkPolicy engine (kube-router's
#   firewall controller). Writes a kubeconfig with the context `selfheal-lb`.
#   up.sh [NODES]: NODES (1..4, default 1) kubelets; node 2.. each in a network namespace of its
#   own (cluster/nodes.sh), one control plane on node 1.
# Idempotent: a running cluster is left as it is. Every wait is bounded; every failure is one
# line naming what is missing. `make cluster-down` stops exactly what this started.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
source "$CLUSTER_DIR/pki.sh"
source "$CLUSTER_DIR/configs.sh"
source "$CLUSTER_DIR/nodes.sh"
T0=$SECONDS
ASKED="${1:-}"  # "" = whatever runs, else 1 for a new cluster
[[ -z "$ASKED" || "$ASKED" =~ ^[0-9]+$ ]] || die "NODES must be a number from 1 to $MAX_NODES (got '$ASKED')"
NODES="${ASKED:-1}"
((NODES >= 1 && NODES <= MAX_NODES)) \
  || die "NODES=$NODES: this machine's cluster runs 1 to $MAX_NODES nodes (one control plane, the rest in network namespaces)"

step() { log "$1 ($((SECONDS - T0)) s)"; }

# --- what the machine must offer -------------------------------------------------------------
[ "$(id -u)" -eq 0 ] || die "must run as root (it starts a kubelet, containerd and iptables rules)"
[ "$(uname -s)" = Linux ] || die "needs Linux (found $(uname -s))"
[ -d /sys/fs/cgroup/memory ] || [ -f /sys/fs/cgroup/cgroup.controllers ] || die "no cgroups mounted at /sys/fs/cgroup"
running() { ours "$1" "${2:-$1}" >/dev/null; }
# all_running: every daemon up.sh recorded is still the process it started.
all_running() {
  local f name
  for f in "$SLB_PIDS"/*.pid; do
    [ -e "$f" ] || return 1
    name="$(basename "$f" .pid)"
    case "$name" in lb-status) running lb-status lb_status.py ;; *) running "$name" "${name#node[0-9]-}" ;; esac \
      || return 1
  done
}

# Complete (up.sh finished: the ready marker) and every daemon alive: left as it is. Started
# with another node count: said, not silently ignored. Anything less: stopped, started again.
if [ -f "$SLB_STATE/ready" ] && all_running && kc get --raw /readyz >/dev/null 2>&1; then
  have="$(nodes_recorded)"
  if [ -n "$ASKED" ] && [ "$ASKED" != "$have" ]; then
    die "already running with $have node(s), NODES=$ASKED asked: run 'make cluster-down' first, then 'make cluster NODES=$ASKED'"
  fi
  log "already running with $have node(s) (kubeconfig $SLB_KUBECONFIG, context $SLB_CONTEXT)"
  exit 0
fi
if ls "$SLB_PIDS"/*.pid >/dev/null 2>&1 || ip netns list | grep -q '^slb-node'; then
  log "a partly started cluster was found: stopping it first"
  "$CLUSTER_DIR/down.sh"
fi

# Each extra node costs about EXTRA_NODE_MIB (measured, cluster/lib.sh) before any app pod.
if ((NODES > 1)); then
  avail=$(($(awk '/^MemAvailable:/{print $2}' /proc/meminfo) / 1024))
  need=$(((NODES - 1) * EXTRA_NODE_MIB + 1024))
  ((avail >= need)) || die "NODES=$NODES needs about $need MiB free ($EXTRA_NODE_MIB MiB per extra node + 1 GiB for pods), this machine has $avail MiB available"
fi

for port in $API_PORT $ETCD_CLIENT_PORT $ETCD_PEER_PORT 10250 10257 10259 10256; do
  if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
    die "port $port is in use by another process: stop it, then run 'make cluster' again"
  fi
done

"$CLUSTER_DIR/packages.sh"
"$CLUSTER_DIR/build.sh"
step "binaries ready"

mkdir -p "$SLB_STATE" "$SLB_LOGS" "$SLB_PIDS"
echo "$NODES" >"$SLB_STATE/nodes"

# close_fds: closes every descriptor above 2 this shell inherited, so a daemon never holds
# its caller's files (a `flock /tmp/x.lock make cluster` lock was held by the kubelet forever).
close_fds() {
  local fd
  for fd in /proc/"$BASHPID"/fd/*; do
    fd="${fd##*/}"
    ((fd > 2)) && eval "exec $fd>&-" 2>/dev/null
  done
  return 0
}
# start NAME CMD...: runs a daemon in its own session, log in $SLB_LOGS, pid in $SLB_PIDS
# (setsid and nsenter exec, so the PID is the daemon's own).
start() {
  local name="$1"
  shift
  (close_fds; exec setsid "$@") >"$SLB_LOGS/$name.log" 2>&1 </dev/null &
  echo $! >"$SLB_PIDS/$name.pid"
}
alive_or_die() {  # alive_or_die NAME [PATTERN]: still running; else its last log lines
  running "$1" "${2:-$1}" || die "$1 exited: $(tail -n 3 "$SLB_LOGS/$1.log" | tr '\n' ' ')"
}

# --- network ---------------------------------------------------------------------------------
# A bridge without ports: this kernel has no dummy interfaces, and a portless bridge holds
# addresses and routes just the same.
ip link show "$SLB_IFACE" >/dev/null 2>&1 || ip link add "$SLB_IFACE" type bridge
ip link set "$SLB_IFACE" up
ip addr replace "$NODE_IP/32" dev "$SLB_IFACE"
ip route replace "$SERVICE_CIDR" dev "$SLB_IFACE"
ip route replace "$LB_POOL_CIDR" dev "$SLB_IFACE"
sysctl -qw net.ipv4.ip_forward=1 net.bridge.bridge-nf-call-iptables=1 >/dev/null \
  || die "cannot enable IP forwarding and bridge netfilter (sysctl failed)"
# A running dockerd sets the FORWARD policy to DROP: accept the pods' bridge explicitly.
for rule in "-i cni0 -j ACCEPT" "-o cni0 -j ACCEPT"; do
  # shellcheck disable=SC2086
  iptables -C FORWARD $rule -m comment --comment selfheal-lb 2>/dev/null \
    || iptables -I FORWARD 1 $rule -m comment --comment selfheal-lb
done
if ((NODES > 1)); then
  # The host routes between the nodes' namespaces (all behind slb0): forward that too.
  for rule in "-i $SLB_IFACE -j ACCEPT" "-o $SLB_IFACE -j ACCEPT"; do
    # shellcheck disable=SC2086
    iptables -C FORWARD $rule -m comment --comment selfheal-lb 2>/dev/null \
      || iptables -I FORWARD 1 $rule -m comment --comment selfheal-lb
  done
fi

# --- control plane ---------------------------------------------------------------------------
make_pki
P="$SLB_STATE/pki"
write_kubeconfig "$SLB_KUBECONFIG" admin
for c in controller-manager scheduler kube-proxy kube-router lb-status; do  # kubelets: nodes.sh
  write_kubeconfig "$SLB_STATE/$c.kubeconfig" "$c"
done

start etcd "$SLB_BIN/etcd" --name "$NODE_NAME" --data-dir "$SLB_STATE/etcd" \
  --listen-client-urls "http://127.0.0.1:$ETCD_CLIENT_PORT" \
  --advertise-client-urls "http://127.0.0.1:$ETCD_CLIENT_PORT" \
  --listen-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" \
  --initial-advertise-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" \
  --initial-cluster "$NODE_NAME=http://127.0.0.1:$ETCD_PEER_PORT" \
  --listen-metrics-urls "" --log-level warn
wait_for 30 "etcd" bash -c "exec 3<>/dev/tcp/127.0.0.1/$ETCD_CLIENT_PORT"
alive_or_die etcd
step "etcd up"

start kube-apiserver "$SLB_BIN/kube-apiserver" \
  --etcd-servers "http://127.0.0.1:$ETCD_CLIENT_PORT" \
  --advertise-address "$NODE_IP" --bind-address 0.0.0.0 --secure-port "$API_PORT" \
  --service-cluster-ip-range "$SERVICE_CIDR" --service-node-port-range 30000-32767 \
  --allow-privileged=true --authorization-mode Node,RBAC \
  --enable-admission-plugins NodeRestriction \
  --client-ca-file "$P/ca.crt" \
  --tls-cert-file "$P/apiserver.crt" --tls-private-key-file "$P/apiserver.key" \
  --kubelet-client-certificate "$P/apiserver-kubelet-client.crt" \
  --kubelet-client-key "$P/apiserver-kubelet-client.key" \
  --kubelet-preferred-address-types InternalIP \
  --service-account-key-file "$P/sa.pub" --service-account-signing-key-file "$P/sa.key" \
  --service-account-issuer "https://kubernetes.default.svc.$CLUSTER_DOMAIN" \
  --requestheader-client-ca-file "$P/front-proxy-ca.crt" \
  --requestheader-allowed-names front-proxy-client \
  --requestheader-extra-headers-prefix X-Remote-Extra- \
  --requestheader-group-headers X-Remote-Group \
  --requestheader-username-headers X-Remote-User \
  --proxy-client-cert-file "$P/front-proxy-client.crt" \
  --proxy-client-key-file "$P/front-proxy-client.key" \
  --enable-aggregator-routing=true
# The API server runs on the host, outside the pod network: --enable-aggregator-routing sends
# metrics.k8s.io requests to the metrics-server pod's IP instead of its ClusterIP.
write_kubeconfig "$SLB_STATE/admin.kubeconfig" admin
wait_for 120 "kube-apiserver /readyz" kc get --raw /readyz
step "kube-apiserver ready"

# Several nodes: a lost node is called NotReady after 20 s without a lease renewal, not
# Kubernetes' default 50 s, so its pods (tolerating 5 s) are replaced within the stack's 60 s
# goal; the kubelets renew every 5 s (configs.sh), four chances within the grace period, which
# did not flap under `make test` on 2 cores (docs/local-cluster-and-ci.md). One node: unchanged.
NODE_MONITOR=()
((NODES > 1)) && NODE_MONITOR=(--node-monitor-grace-period=20s --node-monitor-period=2s)
start kube-controller-manager "$SLB_BIN/kube-controller-manager" \
  --kubeconfig "$SLB_STATE/controller-manager.kubeconfig" \
  --authentication-kubeconfig "$SLB_STATE/controller-manager.kubeconfig" \
  --authorization-kubeconfig "$SLB_STATE/controller-manager.kubeconfig" \
  --bind-address 127.0.0.1 --leader-elect=false --use-service-account-credentials \
  --service-account-private-key-file "$P/sa.key" --root-ca-file "$P/ca.crt" \
  --cluster-signing-cert-file "$P/ca.crt" --cluster-signing-key-file "$P/ca.key" \
  --service-cluster-ip-range "$SERVICE_CIDR" --cluster-cidr "$([ "$NODES" -gt 1 ] && echo "$CLUSTER_CIDR" || echo "$POD_CIDR")" \
  --allocate-node-cidrs=false --controllers '*,-service-lb-controller,-cloud-node-lifecycle' \
  "${NODE_MONITOR[@]}"
start kube-scheduler "$SLB_BIN/kube-scheduler" \
  --kubeconfig "$SLB_STATE/scheduler.kubeconfig" \
  --authentication-kubeconfig "$SLB_STATE/scheduler.kubeconfig" \
  --authorization-kubeconfig "$SLB_STATE/scheduler.kubeconfig" \
  --bind-address 127.0.0.1 --leader-elect=false

# --- nodes -----------------------------------------------------------------------------------
write_containerd_config 1
start containerd containerd --config "$SLB_STATE/containerd/config.toml"
wait_for 30 "containerd" ctr --address "$SLB_STATE/containerd.sock" version
alive_or_die containerd
for ((n = 2; n <= NODES; n++)); do node_runtime "$n"; done
"$CLUSTER_DIR/images.sh" system  # into every node's containerd
step "containerd up on $NODES node(s), system images imported"

for ((n = 1; n <= NODES; n++)); do node_kubelet "$n"; done
for ((n = 1; n <= NODES; n++)); do
  wait_for 90 "node $(node_name "$n") Ready" kc wait --for=condition=Ready "node/$(node_name "$n")" --timeout=2s
  alive_or_die "$(node_pid "$n" kubelet)" kubelet
  alive_or_die "$(node_pid "$n" kube-proxy)" kube-proxy
done
# The control plane's node (no taint: app pods run there too); CoreDNS and the metrics-server
# addon are pinned to it, so losing another node never takes DNS or metrics with it.
kc label --overwrite node "$NODE_NAME" "$CONTROL_PLANE_LABEL=" >/dev/null
step "$NODES node(s) Ready"

# --- addons (and the permissions of the agents below) ----------------------------------------
"$CLUSTER_DIR/addons.sh"
for ((n = 1; n <= NODES; n++)); do node_router "$n"; done
start lb-status "$SLB_CACHE/venv/bin/python" "$CLUSTER_DIR/lb_status.py" \
  --kubeconfig "$SLB_STATE/lb-status.kubeconfig" --pool "$LB_POOL_CIDR"
wait_for 120 "CoreDNS ready" kc -n kube-system rollout status deploy/coredns --timeout=2s
wait_for 180 "the metrics-server addon (APIService v1beta1.metrics.k8s.io Available)" \
  kc wait --for=condition=Available apiservice/v1beta1.metrics.k8s.io --timeout=2s
for ((n = 1; n <= NODES; n++)); do alive_or_die "$(node_pid "$n" kube-router)" kube-router; done
running lb-status lb_status.py || die "lb-status exited: $(tail -n 3 "$SLB_LOGS/lb-status.log" | tr '\n' ' ')"
touch "$SLB_STATE/ready"
step "ready with $NODES node(s): kubeconfig $SLB_KUBECONFIG, context $SLB_CONTEXT (export KUBECONFIG=$SLB_KUBECONFIG)"
