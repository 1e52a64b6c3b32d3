#!/usr/bin/env bash
# Builds the StateStore's Redis image from Debian's redis-server package, for clusters that
# cannot pull the official image: components/redis/Dockerfile on the base scripts/docker-base.sh
# makes from Debian's packages (no registry). Prints the image reference on stdout; exit 77 =
# no Docker engine can run here (reason on stderr).
#   scripts/redis-image.sh                      # localhost/selfheal-lb/redis:7.0.15-bookworm
#   cluster/images.sh load "$(scripts/redis-image.sh)"
#   pulumi config set stateStoreImage localhost/selfheal-lb/redis:7.0.15-bookworm
set -euo pipefail
cd "$(dirname "$0")/.."

REDIS_VERSION="${REDIS_VERSION:-7.0.15}"   # what Debian bookworm ships; the build checks it
REF="${REDIS_IMAGE:-localhost/selfheal-lb/redis:$REDIS_VERSION-bookworm}"

base="$(./scripts/docker-base.sh)"   # exits 77 itself when Docker cannot run here
if ! docker image inspect "$REF" >/dev/null 2>&1; then
  echo "redis-image: docker build $REF on $base" >&2
  docker build -q --build-arg BASE_IMAGE="$base" --build-arg REDIS_VERSION="$REDIS_VERSION" \
    -t "$REF" components/redis >&2
fi
echo "$REF"
