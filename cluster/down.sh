#!/usr/bin/env bash
# `make cluster-down`: stops exactly what cluster/up.sh started (by the PIDs it recorded, and
# the pod processes of its own containerd), removes its iptables rules, network interfaces and
# mounts, and deletes the cluster's state. The built binaries and imported images stay cached.
set -uo pipefail
source "$(dirname "$0")/lib.sh"
[ "$(id -u)" -eq 0 ] || die "must run as root (it stops the kubelet, containerd and their iptables rules)"
T0=$SECONDS
SOCK="$SLB_STATE/containerd.sock"

stop() {  # stop NAME [PATTERN]: SIGTERM, up to 10 s, then SIGKILL; only if it is still ours
  local pid
  if pid="$(ours "$1" "${2:-$1}")"; then
    kill "$pid" 2>/dev/null
    for _ in $(seq 1 20); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
    kill -9 "$pid" 2>/dev/null
  fi
  rm -f "$SLB_PIDS/$1.pid"
}

stop lb-status lb_status.py
stop kube-router
[ -x "$SLB_BIN/kube-router" ] && timeout 30 "$SLB_BIN/kube-router" --cleanup-config >/dev/null 2>&1
stop kubelet
stop kube-proxy
[ -x "$SLB_BIN/kube-proxy" ] && timeout 30 "$SLB_BIN/kube-proxy" --cleanup >/dev/null 2>&1

# The pods: every task of this containerd (not Docker's), then their network namespaces.
if [ -S "$SOCK" ] && timeout 5 ctr --address "$SOCK" version >/dev/null 2>&1; then
  CTR=(timeout 20 ctr --address "$SOCK" --namespace k8s.io)
  netns=()
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
fi
# Shims whose containerd is ours and that outlived it.
for pid in $(pgrep -f "containerd-shim.*-address $SOCK" 2>/dev/null); do kill -9 "$pid" 2>/dev/null; done
stop containerd
stop kube-scheduler
stop kube-controller-manager
stop kube-apiserver
stop etcd

# Mounts the kubelet and containerd left below the cluster's directories, deepest first.
findmnt -rn -o TARGET 2>/dev/null | grep -E "^($SLB_STATE|$SLB_CACHE/containerd)/" | sort -r \
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

rm -rf "$SLB_STATE"
log "stopped and removed in $((SECONDS - T0)) s (binaries and images stay in $SLB_CACHE)"
