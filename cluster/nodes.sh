# The extra nodes of `make cluster NODES=N` (node 2..N), sourced by cluster/up.sh. Node N is its
# own containerd, kubelet, kube-proxy and kube-router on this machine, all in the network
# namespace slb-node<N>: eth0 there (10.199.0.N/24) is one end of a veth pair whose other end
# (slbn<N>) is a port of the host's bridge slb0; its pods sit behind a cni0 bridge of its own
# (10.244.(N-1).0/24). The host (node 1, 10.199.0.1) routes each node's pod range to that node
# and each node's default route is the host, so pods reach pods and Services on every node.
# cluster/node.sh cuts a node by taking slbn<N> down; cluster/down.sh removes it all.
# shellcheck shell=bash

# node_network N: the namespace, the veth pair, the addresses and the routes of node N.
node_network() {
  local n="$1" ns veth ip
  ns="$(node_netns "$n")" veth="$(node_veth "$n")" ip="$(node_ip "$n")"
  ip netns list | grep -qw "^$ns" || ip netns add "$ns"
  ip link show "$veth" >/dev/null 2>&1 || ip link add "$veth" type veth peer name eth0 netns "$ns"
  ip link set "$veth" master "$SLB_IFACE" up
  ip -n "$ns" link set lo up
  ip -n "$ns" addr replace "$ip/24" dev eth0
  ip -n "$ns" link set eth0 up
  ip -n "$ns" route replace default via "$NODE_IP" dev eth0
  ip route replace "$ip/32" dev "$SLB_IFACE" src "$NODE_IP"
  ip route replace "$(node_pod_cidr "$n")" via "$ip" dev "$SLB_IFACE"
  # The namespace starts with forwarding off and without bridge netfilter (kube-proxy and
  # kube-router filter the pods' bridge there as they do on node 1).
  node_run "$n" sysctl -qw net.ipv4.ip_forward=1 net.bridge.bridge-nf-call-iptables=1 >/dev/null \
    || die "cannot enable IP forwarding in $ns (sysctl failed)"
}

# node_cgroups N: the cgroup below which node N's kubelet keeps its pods, in every v1
# hierarchy (the kubelet refuses a cgroupRoot that does not exist).
node_cgroups() {
  local n="$1" d cg
  cg="$(node_cgroup "$n")"
  for d in /sys/fs/cgroup/*/; do
    mountpoint -q "$d" || continue
    mkdir -p "$d${cg#/}"
  done
  # A new cpuset cgroup starts with no CPUs and no memory nodes: give it its parent's.
  if [ -d "/sys/fs/cgroup/cpuset${cg}" ]; then
    cat /sys/fs/cgroup/cpuset/cpuset.cpus >"/sys/fs/cgroup/cpuset${cg}/cpuset.cpus"
    cat /sys/fs/cgroup/cpuset/cpuset.mems >"/sys/fs/cgroup/cpuset${cg}/cpuset.mems"
  fi
}

# node_runtime N: node N's network, cgroups and containerd (images are imported after this,
# into every node at once: cluster/images.sh).
node_runtime() {
  local n="$1"
  node_network "$n"
  node_cgroups "$n"
  write_containerd_config "$n"
  # shellcheck disable=SC2046
  start "$(node_pid "$n" containerd)" $(node_exec "$n") containerd \
    --config "$(node_state "$n")/containerd/config.toml"
  wait_for 30 "containerd of node $n" ctr --address "$(node_sock "$n")" version
  alive_or_die "$(node_pid "$n" containerd)" containerd
}

# node_exec N: the prefix that runs a daemon in node N's network namespace, exec'd (unlike
# node_run), so its PID is the daemon's own; nothing for node 1 (the host's namespace).
node_exec() { (($1 == 1)) || echo "nsenter --net=/var/run/netns/$(node_netns "$1")"; }

# node_kubelet N: node N's kubelet and kube-proxy (node 1's too), in its namespace. Extra nodes
# carry EXTRA_NODE_LABEL; node 1 is labelled control plane once it is registered (up.sh).
node_kubelet() {
  local n="$1" st labels=()
  st="$(node_state "$n")"
  ((n > 1)) && labels=(--node-labels "$EXTRA_NODE_LABEL=true")
  write_kubeconfig "$st/kubelet.kubeconfig" "$(node_cert kubelet "$n")"
  write_kubelet_config "$n"
  write_kube_proxy_config "$n"
  # shellcheck disable=SC2046  # node_exec's words are meant to split
  start "$(node_pid "$n" kubelet)" $(node_exec "$n") "$SLB_BIN/kubelet" \
    --config "$st/kubelet/config.yaml" --kubeconfig "$st/kubelet.kubeconfig" \
    --hostname-override "$(node_name "$n")" --node-ip "$(node_ip "$n")" \
    --root-dir "$st/kubelet/root" --cert-dir "$st/kubelet/pki" "${labels[@]}"
  # shellcheck disable=SC2046
  start "$(node_pid "$n" kube-proxy)" $(node_exec "$n") "$SLB_BIN/kube-proxy" \
    --config "$st/kube-proxy/config.yaml"
}

# node_router N: kube-router's NetworkPolicy firewall for node N's pods, in its namespace.
node_router() {
  local n="$1"
  # shellcheck disable=SC2046
  start "$(node_pid "$n" kube-router)" $(node_exec "$n") "$SLB_BIN/kube-router" \
    --kubeconfig "$SLB_STATE/kube-router.kubeconfig" --hostname-override "$(node_name "$n")" \
    --run-firewall=true --run-router=false --run-service-proxy=false --run-loadbalancer=false \
    --metrics-port 0 --health-port 20244
}
