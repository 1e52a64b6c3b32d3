#!/usr/bin/env bash
# Container images for a cluster that cannot pull from any registry: built here and imported
# into containerd's k8s.io namespace of every running node (what `kind load docker-image` or
# `minikube image load` do for their nodes): a pod may land on any of them.
#   images.sh system        pause, CoreDNS, metrics-server, fortio: each a static binary from
#                           cluster/build.sh in an image FROM scratch
#   images.sh load REF...   copy images from the local Docker engine into every node
set -euo pipefail
source "$(dirname "$0")/lib.sh"
mapfile -t SOCKS < <(live_node_socks)
((${#SOCKS[@]})) || die "no node's containerd answers (is the cluster running? make cluster)"

docker_up() {  # the local Docker engine (started when root and missing), no registry needed
  "$CLUSTER_DIR/../scripts/docker-base.sh" >/dev/null \
    || die "no Docker engine to build images with (scripts/docker-base.sh said why above)"
}

load() {  # load REF...: docker save once, ctr import into each node's containerd
  local ref sock tar
  for ref in "$@"; do
    docker image inspect "$ref" >/dev/null 2>&1 || die "image $ref is not in the local Docker engine: build it first"
  done
  tar="$(mktemp --suffix .tar)"
  # shellcheck disable=SC2064
  trap "rm -f '$tar'" EXIT
  docker save "$@" >"$tar" || die "docker save $* failed"
  for sock in "${SOCKS[@]}"; do
    ctr --address "$sock" --namespace k8s.io images import --no-unpack=false "$tar" >/dev/null \
      || die "could not import $* into the containerd at $sock"
  done
  rm -f "$tar"
}

scratch_image() {  # scratch_image REF BINARY [EXTRA_FILE_DIR]: FROM scratch + one static binary
  local ref="$1" bin="$2" ctx
  [ -x "$bin" ] || die "missing binary $bin (run cluster/build.sh)"
  if docker image inspect "$ref" >/dev/null 2>&1 \
    && [ "$(docker image inspect -f '{{index .Config.Labels "selfheal-lb.binary-sha256"}}' "$ref")" = "$(sha256sum "$bin" | cut -c1-64)" ]; then
    return 0
  fi
  ctx="$(mktemp -d)"
  cp "$bin" "$ctx/entry"
  cat >"$ctx/Dockerfile" <<DOCKERFILE
FROM scratch
COPY entry /usr/bin/$(basename "$bin")
LABEL selfheal-lb.binary-sha256=$(sha256sum "$bin" | cut -c1-64)
ENTRYPOINT ["/usr/bin/$(basename "$bin")"]
DOCKERFILE
  docker build -q -t "$ref" "$ctx" >"$ctx.log" 2>&1 \
    || { rm -rf "$ctx"; die "docker build of $ref failed: $(tail -n 2 "$ctx.log" | tr '\n' ' ')"; }
  rm -f "$ctx.log"
  rm -rf "$ctx"
}

case "${1:-}" in
  system)
    docker_up
    scratch_image "$PAUSE_IMAGE" "$SLB_BIN/pause"
    scratch_image "$COREDNS_IMAGE" "$SLB_BIN/coredns"
    scratch_image "$METRICS_SERVER_IMAGE" "$SLB_BIN/metrics-server"
    scratch_image "$FORTIO_IMAGE" "$SLB_BIN/fortio"
    load "$PAUSE_IMAGE" "$COREDNS_IMAGE" "$METRICS_SERVER_IMAGE" "$FORTIO_IMAGE"
    ;;
  load)
    shift
    (($#)) || die "usage: cluster/images.sh load IMAGE..."
    load "$@"
    ;;
  *) die "usage: cluster/images.sh system | load IMAGE..." ;;
esac
