#!/usr/bin/env bash
# What the node needs from Debian (container runtime, CNI plugins, iptables, openssl, the
# Docker engine that builds the images) and the cluster's own small virtualenv. Idempotent.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

declare -A provides=(
  [containerd]=containerd [runc]=runc [iptables]=iptables [ipset]=ipset [conntrack]=conntrack
  [openssl]=openssl [dockerd]=docker.io [envsubst]=gettext-base [ip]=iproute2
  [setsid]=util-linux
)
need=()
for cmd in "${!provides[@]}"; do
  command -v "$cmd" >/dev/null 2>&1 || need+=("${provides[$cmd]}")
done
[ -x /usr/lib/cni/bridge ] && [ -x /usr/lib/cni/host-local ] && [ -x /usr/lib/cni/portmap ] \
  || need+=(containernetworking-plugins)
if ((${#need[@]})); then
  command -v apt-get >/dev/null 2>&1 || die "missing ${need[*]}: install them with your package manager"
  log "apt-get install ${need[*]}"
  apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 install -y -qq "${need[@]}" >/dev/null \
    || die "apt-get install ${need[*]} failed"
fi

venv="$SLB_CACHE/venv"
if [ "$(cat "$venv/.requirements" 2>/dev/null)" != "$(sha256sum <"$CLUSTER_DIR/requirements.txt")" ]; then
  log "creating the cluster's virtualenv ($venv)"
  python3 -m venv "$venv"
  "$venv/bin/python" -m pip install -q -r "$CLUSTER_DIR/requirements.txt" || die "pip install failed"
  sha256sum <"$CLUSTER_DIR/requirements.txt" >"$venv/.requirements"
fi
