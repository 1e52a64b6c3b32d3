#!/usr/bin/env bash
# Installs the real tools the tests drive on loopback: HAProxy (the load balancer in the
# distribution tests), wrk (the benchmark's load generator), Prometheus (tests/monitoring scrapes
# real app processes with it), Chromium (renders the HTML report), redis-server (the shared state
# store's tests) and fortio (pinned, from the Go module proxy, into .tools/bin). Idempotent; run
# by `make tools` and so by `make test`.
set -euo pipefail
cd "$(dirname "$0")/.."

# One pin for fortio (the tests' binary, the local cluster's image, loadgenImage's default):
# cluster/versions.env. Newer releases need grol.io, which the Go proxy here refuses.
FORTIO_VERSION="$(sed -n 's/^FORTIO_VERSION=//p' cluster/versions.env)"
TOOLS_BIN="$PWD/.tools/bin"
mkdir -p "$TOOLS_BIN"

need_apt=()
command -v haproxy >/dev/null 2>&1 || need_apt+=(haproxy)
command -v wrk >/dev/null 2>&1 || need_apt+=(wrk)
command -v prometheus >/dev/null 2>&1 || need_apt+=(prometheus)
command -v jq >/dev/null 2>&1 || need_apt+=(jq)  # the PR-comment script's filter, tested for real
# Headless Chromium renders `loadgen verify --html` pages in tests/loadgen/test_loadgen_html.py.
command -v chromium >/dev/null 2>&1 || need_apt+=(chromium)
# redis-server: the shared-store tests start their own on a free loopback port (never the service).
command -v redis-server >/dev/null 2>&1 || need_apt+=(redis-server)
if ((${#need_apt[@]})); then
  if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    echo "install-tools: missing ${need_apt[*]}; install them with your package manager (e.g. apt-get install ${need_apt[*]})" >&2
    exit 1
  fi
  echo "install-tools: apt-get install ${need_apt[*]}"
  apt-get update -qq >/dev/null
  with_recommends=("${need_apt[@]/prometheus/}")
  if [ -n "${with_recommends[*]// /}" ]; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq ${with_recommends[*]} >/dev/null
  fi
  # The tests start their own Prometheus on a free loopback port with their own config and data
  # directory; the package's service (where an init system started it) would only hold :9090.
  if [[ " ${need_apt[*]} " == *" prometheus "* ]]; then
    # No recommends: they would add node-exporter, which the tests do not use.
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus >/dev/null
    if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet prometheus 2>/dev/null; then
      systemctl disable --now prometheus >/dev/null 2>&1 || true
    elif command -v service >/dev/null 2>&1 && service prometheus status >/dev/null 2>&1; then
      service prometheus stop >/dev/null 2>&1 || true
    fi
  fi
fi

if [ ! -x "$TOOLS_BIN/fortio" ] || ! "$TOOLS_BIN/fortio" version 2>/dev/null | grep -q "${FORTIO_VERSION#v}"; then
  if ! command -v go >/dev/null 2>&1; then
    echo "install-tools: fortio needs Go to build (https://go.dev/dl/); tests that need fortio will skip" >&2
  else
    echo "install-tools: go install fortio.org/fortio@$FORTIO_VERSION"
    GOBIN="$TOOLS_BIN" GOFLAGS=-mod=mod go install "fortio.org/fortio@$FORTIO_VERSION"
  fi
fi

# helm, pinned, for `make render` and the tests: under the SDK's mocks it renders the
# metrics-server chart as the kubernetes provider does at deploy time
# (components/helm_template.py). Built from the Go module proxy into a cache outside the
# checkout (the same place components/helm_template.py looks).
HELM_VERSION="${HELM_VERSION:-v3.19.5}"   # keep in step with HELM_VERSION in components/helm_template.py
HELM_DIR="${SELFHEAL_LB_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/selfheal-lb}/tools/helm-$HELM_VERSION"
if [ ! -x "$HELM_DIR/helm" ]; then
  if ! command -v go >/dev/null 2>&1; then
    echo "install-tools: helm needs Go to build (https://go.dev/dl/); make render leaves metrics-server's objects out and the tests that render a chart skip" >&2
  else
    echo "install-tools: go install helm.sh/helm/v3/cmd/helm@$HELM_VERSION (once; a few minutes)"
    mkdir -p "$HELM_DIR"
    GOBIN="$HELM_DIR" GOFLAGS=-mod=mod go install "helm.sh/helm/v3/cmd/helm@$HELM_VERSION"
  fi
fi
