#!/usr/bin/env bash
# `make cluster-down`: stops exactly what cluster/up.sh started (by the PIDs it recorded, and
# the pod processes of its own containerds), removes its iptables rules, network interfaces,
# the extra nodes' network namespaces, routes and cgroups, and mounts, and deletes the
# cluster's state. The built binaries and imported images stay cached.
set -uo pipefail
source "$(dirname "$0")/lib.sh"
[ "$(id -u)" -eq 0 ] || die "must run as root (it stops the kubelet, containerd and their iptables rules)"
T0=$SECONDS

# leftovers: anything of a cluster still on this machine (processes it recorded, the extra
# nodes' namespaces, veths, routes and cgroups, slb0/cni0, tagged iptables rules), one per line.
leftovers() {
  local f
  for f in "$SLB_PIDS"/*.pid; do
    [ -e "$f" ] && ours "$(basename "$f" .pid)" "$(basename "$f" .pid | sed 's/^node[0-9]-//; s/^lb-status$/lb_status.py/')" >/dev/null \
      && echo "process $(basename "$f" .pid)"
  done
  ip netns list 2>/dev/null | awk '/^slb-node/{print "netns " $1}'
  ip -br link 2>/dev/null | awk -v i="$SLB_IFACE" '$1 == i || $1 == "cni0" || $1 ~ /^slbn[0-9]/ {sub(/@.*/, "", $1); print "link " $1}'
  ip route 2>/dev/null | awk '/^10\.244\.|^10\.199\./{print "route " $1}'
  ls -d /sys/fs/cgroup/*/selfheal-lb-node* 2>/dev/null | sed 's/^/cgroup /'
  iptables -S 2>/dev/null | grep -c -- '--comment "\?selfheal-lb' | awk '$1 > 0 {print "iptables rules " $1}'
  return 0
}
if [ "${1:-}" = --check ]; then  # down.sh --check: list what is left, exit 1 if anything
  left="$(leftovers)"
  [ -z "$left" ] || die "left on this machine: $(echo "$left" | paste -sd, -)"
  exit 0
fi

stop() {  # stop NAME [PATTERN]: SIGTERM, up to 10 s, then SIGKILL; only if it is still ours
  local pid
  if pid="$(ours "$1" "${2:-$1}")"; then
    kill "$pid" 2>/dev/null
    for _ in $(seq 1 20); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
    kill -9 "$pid" 2>/dev/null
  fi
  rm -f "$SLB_PIDS/$1.pid"
}

# kill_pods SOCK: every task of that containerd (not Docker's), then their network namespaces.
kill_pods() {
  local sock="$1" id ns
  [ -S "$sock" ] && timeout 5 ctr --address "$sock" version >/dev/null 2>&1 || return 0
  local CTR=(timeout 20 ctr --address "$sock" --namespace k8s.io) netns=()
  for id in $("${CTR[@]}" containers ls -q 2>/dev/null); do
    ns="$("${CTR[@]}" containers info "$id" 2>/dev/null | python3 -c '
import json, sys
spec = json.load(sys.stdin).get("Spec") or {}
for n in (spec.get("linux") or {}).get("namespaces") or []:
    if n.get("type") == "network" and n.get("path", "").startswith("/var/run/netns/"):
        print(n["path"])' 2>/dev/null)"
    [ -n "$ns" ] && netns+=("$ns")
    "${CTR[@]}" tasks kill --signal SIGKILL "$id" >/dev/null 2>&1
  done
  sleep 1
  for id in $("${CTR[@]}" containers ls -q 2>/dev/null); do
    "${CTR[@]}" tasks delete --force "$id" >/dev/null 2>&1
    "${CTR[@]}" containers delete "$id" >/dev/null 2>&1
  done
  for ns in "${netns[@]}"; do
    umount "$ns" 2>/dev/null
    rm -f "$ns"
  done
}
kill_shims() {  # shims whose containerd (SOCK) is ours and that outlived it
  local pid
  for pid in $(pgrep -f "containerd-shim.*-address $1" 2>/dev/null); do kill -9 "$pid" 2>/dev/null; done
}

stop lb-status lb_status.py
# The extra nodes (cluster/nodes.sh), whatever count they were started with: their daemons
# and pods, then the namespace (its iptables rules, ipsets and cni0 go with it), the veth
# pair, the host's routes to it and its cgroups.
for ((n = MAX_NODES; n >= 2; n--)); do
  ns="$(node_netns "$n")"
  [ -e "/var/run/netns/$ns" ] || [ -d "$(node_state "$n")" ] || continue
  stop "$(node_pid "$n" kube-router)" kube-router
  stop "$(node_pid "$n" kubelet)" kubelet
  stop "$(node_pid "$n" kube-proxy)" kube-proxy
  kill_pods "$(node_sock "$n")"
  kill_shims "$(node_sock "$n")"
  stop "$(node_pid "$n" containerd)" containerd
  ip link show "$(node_veth "$n")" >/dev/null 2>&1 && ip link delete "$(node_veth "$n")"
  ip route del "$(node_pod_cidr "$n")" 2>/dev/null
  ip route del "$(node_ip "$n")/32" 2>/dev/null
  [ -e "/var/run/netns/$ns" ] && ip netns delete "$ns"
  # Deepest first: a cgroup is removed only once empty (its pods are gone above).
  for d in /sys/fs/cgroup/*/"$(node_cgroup "$n")"; do
    [ -d "$d" ] && find "$d" -depth -type d -exec rmdir {} + 2>/dev/null
  done
done

stop kube-router
[ -x "$SLB_BIN/kube-router" ] && timeout 30 "$SLB_BIN/kube-router" --cleanup-config >/dev/null 2>&1
stop kubelet
stop kube-proxy
[ -x "$SLB_BIN/kube-proxy" ] && timeout 30 "$SLB_BIN/kube-proxy" --cleanup >/dev/null 2>&1

# Node 1's pods, then its containerd.
kill_pods "$(node_sock 1)"
kill_shims "$(node_sock 1)"
stop containerd
stop kube-scheduler
stop kube-controller-manager
stop kube-apiserver
stop etcd

# Mounts the kubelet and containerd left below the cluster's directories, deepest first.
findmnt -rn -o TARGET 2>/dev/null | grep -E "^($SLB_STATE|$SLB_CACHE/containerd(-node[0-9]+)?)/" | sort -r \
  | while read -r m; do umount -l "$m" 2>/dev/null; done

ip link show cni0 >/dev/null 2>&1 && ip link delete cni0
ip link show "$SLB_IFACE" >/dev/null 2>&1 && ip link delete "$SLB_IFACE"
# Rules this cluster added (tagged with the comment selfheal-lb), and the CNI's masquerading.
for table in filter nat; do
  iptables -t "$table" -S 2>/dev/null | grep -E -- '--comment "?(selfheal-lb|name: "selfheal-lb")' \
    | sed 's/^-A /-D /' | while read -r rule; do eval "iptables -t $table $rule" 2>/dev/null; done
done
for chain in $(iptables -t nat -S 2>/dev/null | awk '/^-N CNI-/{print $2}'); do
  iptables -t nat -S POSTROUTING | grep -- "-j $chain" | sed 's/^-A /-D /' \
    | while read -r rule; do eval "iptables -t nat $rule" 2>/dev/null; done
  iptables -t nat -F "$chain" 2>/dev/null && iptables -t nat -X "$chain" 2>/dev/null
done

left="$(leftovers)"
rm -rf "$SLB_STATE"
[ -z "$left" ] || die "stopped, but these are left: $(echo "$left" | paste -sd, -)"
log "stopped and removed in $((SECONDS - T0)) s (binaries and images stay in $SLB_CACHE)"
