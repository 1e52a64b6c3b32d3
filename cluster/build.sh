#!/usr/bin/env bash
# Builds the pinned binaries of the local cluster once, into a cache outside the checkout
# (cluster/lib.sh: $SLB_CACHE/bin), from the Go module proxy:
#   Kubernetes (apiserver, controller-manager, scheduler, kubelet, kube-proxy, kubectl) through
#   the wrapper module build/kubernetes, etcd through build/etcd, the sandbox's pause from
#   build/pause, CoreDNS and metrics-server with `go install`, kube-router (NetworkPolicy
#   engine) through build/kube-router, fortio (static, for its image) with `go install`.
# A binary is rebuilt only when its stamp (version + wrapper go.mod/go.sum) changes, so a second
# run takes seconds and a fresh clone reuses the cache. The Go build cache makes a rebuild of
# one binary after a bump cheap too.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

command -v go >/dev/null 2>&1 || die "Go is needed to build the cluster's binaries (https://go.dev/dl/; Go 1.26+)"
mkdir -p "$SLB_BIN"
: >"$SLB_CACHE/build.log"

# stamp NAME PARTS...: prints "ok" when $SLB_BIN/.NAME.stamp matches, else writes nothing.
stamp_of() { cat "$@" 2>/dev/null | sha256sum | cut -c1-16; }
fresh() { [ -x "$SLB_BIN/$1" ] && [ "$(cat "$SLB_BIN/.$1.stamp" 2>/dev/null)" = "$2" ]; }
mark() { echo "$2" >"$SLB_BIN/.$1.stamp"; }

build_in() {  # build_in DIR LDFLAGS PKG... : go build inside a wrapper module into $SLB_BIN
  local dir="$1" ldflags="$2"; shift 2
  (cd "$CLUSTER_DIR/build/$dir" && CGO_ENABLED=0 GOFLAGS=-mod=readonly go build -trimpath \
    -ldflags "-s -w $ldflags" -o "$SLB_BIN/" "$@")
}

# timed LABEL CMD...: runs CMD with its output in $SLB_CACHE/build.log (Go's download lines are
# many); one line with the time, or the log's last lines when it fails.
timed() {
  local label="$1" t0=$SECONDS
  shift
  "$@" >>"$SLB_CACHE/build.log" 2>&1 \
    || die "building $label failed: $(tail -n 5 "$SLB_CACHE/build.log" | tr '\n' ' ')"
  log "built $label in $((SECONDS - t0)) s"
}

k8s_stamp="$K8S_VERSION-$(stamp_of "$CLUSTER_DIR/build/kubernetes/go.mod" "$CLUSTER_DIR/build/kubernetes/go.sum")"
k8s_bins=(kube-apiserver kube-controller-manager kube-scheduler kubelet kube-proxy kubectl)
need_k8s=()
for b in "${k8s_bins[@]}"; do fresh "$b" "$k8s_stamp" || need_k8s+=("k8s.io/kubernetes/cmd/$b"); done
if ((${#need_k8s[@]})); then
  minor="${K8S_VERSION#v1.}"; minor="${minor%%.*}"
  v="k8s.io/component-base/version"
  log "building ${need_k8s[*]##*/} $K8S_VERSION (cold: about 10 min on 2 cores; cached afterwards)"
  timed "Kubernetes $K8S_VERSION" build_in kubernetes \
    "-X $v.gitVersion=$K8S_VERSION -X $v.gitMajor=1 -X $v.gitMinor=$minor -X $v.gitTreeState=clean" \
    "${need_k8s[@]}"
  for b in "${k8s_bins[@]}"; do mark "$b" "$k8s_stamp"; done
fi

s="$ETCD_VERSION-$(stamp_of "$CLUSTER_DIR/build/etcd/go.mod" "$CLUSTER_DIR/build/etcd/go.sum")"
if ! fresh etcd "$s"; then
  timed etcd build_in etcd "" .
  mark etcd "$s"
fi

s="$PAUSE_VERSION-$(stamp_of "$CLUSTER_DIR/build/pause/main.go")"
if ! fresh pause "$s"; then timed pause build_in pause "" .; mark pause "$s"; fi

s="$KUBE_ROUTER_VERSION-$(stamp_of "$CLUSTER_DIR/build/kube-router/go.mod" "$CLUSTER_DIR/build/kube-router/go.sum")"
if ! fresh kube-router "$s"; then
  timed kube-router build_in kube-router \
    "-X github.com/cloudnativelabs/kube-router/v2/pkg/version.Version=$KUBE_ROUTER_VERSION" \
    github.com/cloudnativelabs/kube-router/v2/cmd/kube-router
  mark kube-router "$s"
fi

go_install() {  # go_install NAME MODULE/PKG@VERSION
  if ! fresh "$1" "$2"; then
    timed "$1" env CGO_ENABLED=0 GOBIN="$SLB_BIN" go install -trimpath -ldflags "-s -w" "$2"
    mark "$1" "$2"
  fi
}
go_install coredns "github.com/coredns/coredns@$COREDNS_VERSION"
go_install metrics-server "sigs.k8s.io/metrics-server/cmd/metrics-server@$METRICS_SERVER_VERSION"
go_install fortio "fortio.org/fortio@$FORTIO_VERSION"  # static, for its image FROM scratch
log "binaries ready in $SLB_BIN"
