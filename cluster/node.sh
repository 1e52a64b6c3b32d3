#!/usr/bin/env bash
# A node loss on the local cluster (make cluster NODES>=2), as a partitioned machine:
#   node.sh cut NODE      takes the node's link to slb0 down: its kubelet can no longer reach the
#                         API server and nothing reaches its pods; its processes keep running.
#                         Idempotent, one line.
#   node.sh restore NODE  brings the link back and waits (up to RESTORE_TIMEOUT s, default 120)
#                         for the node Ready again; one line with the time it took.
#   node.sh status        every node: Ready or not, cut or not.
# NODE is a node's name (selfheal-lb-node2) or number (2). Node 1 holds the control plane and
# cannot be cut.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
RESTORE_TIMEOUT="${RESTORE_TIMEOUT:-120}"

usage() { die "usage: cluster/node.sh cut NODE | restore NODE | status"; }

# number NODE: the node's number, or one line naming what is wrong.
number() {
  local arg="$1" n
  case "$arg" in
    [0-9]) n="$arg" ;;
    "$NODE_NAME") n=1 ;;
    "$NODE_NAME"[0-9]) n="${arg#"$NODE_NAME"}" ;;
    *) die "no node '$arg' on the local cluster (nodes: $(names))" ;;
  esac
  ((n == 1)) && die "$NODE_NAME holds the control plane and cannot be cut: pick an extra node ($(extras))"
  ip link show "$(node_veth "$n")" >/dev/null 2>&1 \
    || die "no node '$arg' on the local cluster (nodes: $(names))"
  echo "$n"
}
extras() {  # the extra nodes' names, or "none: make cluster NODES=3"
  local n out=""
  for ((n = 2; n <= MAX_NODES; n++)); do
    ip link show "$(node_veth "$n")" >/dev/null 2>&1 && out+="${out:+, }$(node_name "$n")"
  done
  echo "${out:-none: make cluster NODES=3}"
}
names() { echo "$NODE_NAME, $(extras)"; }
is_cut() { ! ip -br link show "$(node_veth "$1")" 2>/dev/null | grep -qw UP; }
ready() {  # ready NAME: the node's Ready condition as the API server has it (True/False/Unknown)
  kc get node "$1" -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}' --request-timeout=5s 2>/dev/null \
    || echo "?"
}

[ "$(id -u)" -eq 0 ] || die "must run as root (it changes network interfaces)"
case "${1:-}" in
  cut)
    (($# == 2)) || usage
    n="$(number "$2")"
    if is_cut "$n"; then
      log "$(node_name "$n") was already cut"
    else
      ip link set "$(node_veth "$n")" down
      log "$(node_name "$n") cut: its link to the host is down, its processes keep running"
    fi
    ;;
  restore)
    (($# == 2)) || usage
    n="$(number "$2")"
    t0=$SECONDS
    ip link set "$(node_veth "$n")" up
    wait_for "$RESTORE_TIMEOUT" "$(node_name "$n") Ready after the restore" \
      kc wait --for=condition=Ready "node/$(node_name "$n")" --timeout=2s
    log "$(node_name "$n") restored: Ready after $((SECONDS - t0)) s"
    ;;
  status)
    (($# == 1)) || usage
    kc get --raw /readyz --request-timeout=5s >/dev/null 2>&1 || die "the local cluster is not running (make cluster NODES=3)"
    printf '%-20s %-8s %s\n' NODE READY CUT
    printf '%-20s %-8s %s\n' "$NODE_NAME" "$(ready "$NODE_NAME")" "no (control plane)"
    for ((n = 2; n <= MAX_NODES; n++)); do
      ip link show "$(node_veth "$n")" >/dev/null 2>&1 || continue
      printf '%-20s %-8s %s\n' "$(node_name "$n")" "$(ready "$(node_name "$n")")" "$(is_cut "$n" && echo yes || echo no)"
    done
    ;;
  *) usage ;;
esac
