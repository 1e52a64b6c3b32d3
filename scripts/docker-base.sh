#!/usr/bin/env bash
# Makes a Docker engine and a local Python base image available for the app's image test
# (tests/app/test_image.py), without pulling from any image registry:
#   1. installs docker.io and debootstrap from Debian's packages if missing (root only),
#   2. starts dockerd in the background if no daemon answers (root only),
#   3. builds the base image from Debian's packages (debootstrap minbase + python3 +
#      python3-venv, then `docker import`) unless it already exists; the rootfs tarball is
#      cached under $SELFHEAL_LB_CACHE (default $XDG_CACHE_HOME/selfheal-lb) so a re-import is quick.
#   4. with --wheels REQUIREMENTS: also an "offline build base" (APP_BASE_REF, default
#      selfheal-lb/app-base:bookworm): the base plus a wheelhouse of REQUIREMENTS that pip on
#      the host downloads (with the host's own index settings and CA trust), and
#      PIP_NO_INDEX/PIP_FIND_LINKS set, so app/Dockerfile's unchanged `pip install` needs no
#      network. Rebuilt when REQUIREMENTS changes. The stack's imageBase can name it.
# Prints the (offline) base image reference on stdout. Exit 77 = cannot run here (reason on
# stderr), which the test turns into a skip.
set -euo pipefail

BASE_REF="${ARTICLES_DEBIAN_BASE:-selfheal-lb/debian-python:bookworm}"
SUITE="${DEBIAN_SUITE:-bookworm}"
MIRROR="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
CACHE_DIR="${SELFHEAL_LB_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/selfheal-lb}"
TARBALL="$CACHE_DIR/debian-python-$SUITE.tar"

skip() { echo "docker-base: $*" >&2; exit 77; }
log() { echo "docker-base: $*" >&2; }
is_root() { [ "$(id -u)" -eq 0 ]; }

need=()
command -v docker >/dev/null 2>&1 || need+=(docker.io)
command -v dockerd >/dev/null 2>&1 || need+=(docker.io)
command -v debootstrap >/dev/null 2>&1 || need+=(debootstrap)
if ((${#need[@]})); then
  is_root && command -v apt-get >/dev/null 2>&1 || skip "missing ${need[*]} and cannot apt-get install them (not root or no apt)"
  log "apt-get install ${need[*]}"
  apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null \
    || skip "apt-get install ${need[*]} failed"
fi

if ! timeout 10 docker info >/dev/null 2>&1; then
  is_root || skip "no Docker daemon answers and only root can start one"
  log "starting dockerd in the background (log: /tmp/selfheal-lb-dockerd.log)"
  nohup dockerd >/tmp/selfheal-lb-dockerd.log 2>&1 &
  for _ in $(seq 1 60); do
    timeout 5 docker info >/dev/null 2>&1 && break
    sleep 0.5
  done
  timeout 10 docker info >/dev/null 2>&1 \
    || skip "dockerd did not come up: $(tail -n 3 /tmp/selfheal-lb-dockerd.log | tr '\n' ' ')"
fi

mkdir -p "$CACHE_DIR"
# Several test runs may start at once: one builds the base, the others wait for it.
exec 9>"$CACHE_DIR/.lock"
flock -w 600 9 || skip "timed out waiting for another run building the base image"
if ! docker image inspect "$BASE_REF" >/dev/null 2>&1; then
  if [ ! -s "$TARBALL" ]; then
    is_root || skip "debootstrap needs root to build the base image"
    rootfs="$(mktemp -d "$CACHE_DIR/rootfs.XXXXXX")"
    trap 'rm -rf "$rootfs"' EXIT
    log "debootstrap $SUITE minbase + python3 (takes a minute or two)"
    debootstrap --variant=minbase --include=python3,python3-venv "$SUITE" "$rootfs" "$MIRROR" \
      >"$CACHE_DIR/debootstrap.log" 2>&1 \
      || skip "debootstrap failed: $(tail -n 3 "$CACHE_DIR/debootstrap.log" | tr '\n' ' ')"
    # Nothing the image needs at run time: package caches, docs, man pages.
    rm -rf "$rootfs"/var/cache/apt/* "$rootfs"/var/lib/apt/lists/* \
      "$rootfs"/usr/share/doc/* "$rootfs"/usr/share/man/* "$rootfs"/usr/share/locale/*
    tar -C "$rootfs" -cf "$TARBALL.tmp" . && mv "$TARBALL.tmp" "$TARBALL"
  fi
  log "docker import $TARBALL as $BASE_REF"
  docker import --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'CMD ["python3"]' "$TARBALL" "$BASE_REF" >/dev/null
fi
if [ "${1:-}" != --wheels ]; then
  echo "$BASE_REF"
  exit 0
fi
requirements="${2:?usage: docker-base.sh [--wheels REQUIREMENTS]}"
[ -f "$requirements" ] || skip "no requirements file $requirements"
APP_BASE_REF="${APP_BASE_REF:-selfheal-lb/app-base:$SUITE}"
sum="$(cat "$requirements" <(echo "$BASE_REF") | sha256sum | cut -c1-16)"
if [ "$(docker image inspect -f '{{index .Config.Labels "selfheal-lb.requirements"}}' "$APP_BASE_REF" 2>/dev/null)" != "$sum" ]; then
  ctx="$(mktemp -d)"
  trap 'rm -rf "$ctx"' EXIT
  log "pip download the wheels of $requirements into $APP_BASE_REF"
  "${PYTHON:-python3}" -m pip download -q --only-binary=:all: -r "$requirements" -d "$ctx/wheels" \
    >"$ctx/pip.log" 2>&1 || skip "pip download failed: $(tail -n 2 "$ctx/pip.log" | tr '\n' ' ')"
  printf 'FROM %s\nCOPY wheels/ /wheels/\nENV PIP_NO_INDEX=1 PIP_FIND_LINKS=/wheels\nLABEL selfheal-lb.requirements=%s\n' \
    "$BASE_REF" "$sum" >"$ctx/Dockerfile"
  docker build -q -t "$APP_BASE_REF" "$ctx" >"$ctx/build.log" 2>&1 \
    || skip "docker build of $APP_BASE_REF failed: $(tail -n 2 "$ctx/build.log" | tr '\n' ' ')"
fi
echo "$APP_BASE_REF"
