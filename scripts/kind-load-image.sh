#!/usr/bin/env bash
# The preview workflow runs this in the base checkout before deploying it to the throwaway kind
# cluster (PREVIEW_DIFF_BEFORE_UP): a stack that builds app/ into an image (imageRef "") builds
# it into the runner's Docker, which kind's node cannot pull from. So build that same image
# (name and tag from `make render`'s summary: the tag is app/'s content hash) and load it into
# the node first; the Deployment (imagePullPolicy IfNotPresent) then finds it there.
#   usage: scripts/kind-load-image.sh KIND_CLUSTER [STACK]   (in the checkout to deploy)
set -euo pipefail

die() { echo "selfheal-lb: $*" >&2; exit 1; }

cluster="${1:-}"
stack="${2:-${DIFF_STACK:-dev}}"
[ -n "$cluster" ] || die "usage: scripts/kind-load-image.sh KIND_CLUSTER [STACK]"
py="${PYTHON:-venv/bin/python}"
[ -x "$py" ] || die "no virtualenv in $PWD: run 'make venv' there first"

rendered="$(mktemp -d)"
trap 'rm -rf "$rendered"' EXIT
"$py" -m components.render --stack "$stack" --out "$rendered" > /dev/null \
  || die "'python -m components.render --stack $stack' failed in $PWD"

# One "name<TAB>context<TAB>dockerfile" line per image the stack builds.
images="$("$py" - "$rendered/summary.yaml" <<'PY'
import sys
import yaml
summary = yaml.safe_load(open(sys.argv[1])) or {}
for image in summary.get("images") or []:
    build = image.get("build") or {}
    print(image["imageName"], build.get("context", "."), build.get("dockerfile", ""), sep="\t")
PY
)" || die "could not read the images from $rendered/summary.yaml"

if [ -z "$images" ]; then
  echo "selfheal-lb: stack $stack builds no image (a prebuilt imageRef): nothing to load"
  exit 0
fi
while IFS=$'\t' read -r name context dockerfile; do
  echo "selfheal-lb: building $name and loading it into kind cluster $cluster"
  docker build -t "$name" ${dockerfile:+-f "$dockerfile"} "$context"
  kind load docker-image "$name" --name "$cluster"
done <<< "$images"
