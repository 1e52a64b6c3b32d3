#!/usr/bin/env bash
# Installs the real tools the tests drive on loopback: HAProxy (the load balancer in the
# distribution tests), redis-server (the shared state store's tests), wrk (the benchmark's load
# generator) and fortio (pinned, from the Go module proxy, into .tools/bin). Idempotent; run by
# `make tools` and so by `make test`.
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
command -v jq >/dev/null 2>&1 || need_apt+=(jq)  # the PR-comment script's filter, tested for real
# redis-server: the shared-store tests start their own on a free loopback port (never the service).
command -v redis-server >/dev/null 2>&1 || need_apt+=(redis-server)
if ((${#need_apt[@]})); then
  if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    echo "install-tools: missing ${need_apt[*]}; install them with your package manager (e.g. apt-get install ${need_apt[*]})" >&2
    exit 1
  fi
  echo "install-tools: apt-get install ${need_apt[*]}"
  apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi

if [ ! -x "$TOOLS_BIN/fortio" ] || ! "$TOOLS_BIN/fortio" version 2>/dev/null | grep -q "${FORTIO_VERSION#v}"; then
  if ! command -v go >/dev/null 2>&1; then
    echo "install-tools: fortio needs Go to build (https://go.dev/dl/); tests that need fortio will skip" >&2
  else
    echo "install-tools: go install fortio.org/fortio@$FORTIO_VERSION"
    GOBIN="$TOOLS_BIN" GOFLAGS=-mod=mod go install "fortio.org/fortio@$FORTIO_VERSION"
  fi
fi
