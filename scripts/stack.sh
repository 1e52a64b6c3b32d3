#!/usr/bin/env bash
# `make up|preview|destroy` land here: check every prerequisite first and say exactly what is
# missing and how to get it (one line, exit 1), then run pulumi on the chosen stack.
# `check` runs the same checks and stops there (scripts/preview-diff.sh uses it).
#   usage: scripts/stack.sh up|preview|destroy|check|reverify [STACK] [extra pulumi args...]
# reverify = `pulumi up --replace <the verification-snapshot's URN>`: the baseline runs again,
# and with it the fortio Job and the check (the Job is stamped with the baseline's digest).
#
# The target is always shown first (context and API server). up/destroy/reverify then ask: on a
# terminal pulumi shows its preview and asks "Do you want to perform ...?"; YES=1 or CI=true
# answer yes; with neither (no terminal, nobody to ask) the script stops before pulumi runs.
# up/reverify record what monitoring and metrics-server `auto` decided (REDECIDE=1 forgets it).
# destroy needs no reachable cluster: when the cluster is gone it removes the stack's objects
# from the state only (PULUMI_K8S_DELETE_UNREACHABLE), and says so.
set -uo pipefail
cd "$(dirname "$0")/.."

action="${1:-}"
stack="${2:-dev}"
shift 2 2>/dev/null || shift $#

die() { echo "selfheal-lb: $*" >&2; exit 1; }

case "$action" in
  up|preview|destroy|check|reverify) ;;
  *) die "usage: scripts/stack.sh up|preview|destroy|check|reverify [STACK]" ;;
esac

[ -f "Pulumi.$stack.yaml" ] || die "no stack config Pulumi.$stack.yaml (stacks here: $(ls Pulumi.*.yaml 2>/dev/null | sed 's/Pulumi\.\(.*\)\.yaml/\1/' | tr '\n' ' '))"

py="${PYTHON:-venv/bin/python}"
[ -x "$py" ] || die "the project virtualenv is missing: run 'make venv' (needs Python 3.11+)"

command -v pulumi >/dev/null 2>&1 \
  || die "the pulumi CLI is not installed: see https://www.pulumi.com/docs/iac/download-install/ (e.g. 'curl -fsSL https://get.pulumi.com | sh'), then run 'make $action' again"

# Config values the checks depend on, read from the stack file (defaults from Pulumi.yaml).
read_config() {
  "$py" - "$stack" "$1" <<'EOF'
import sys
from components.offline import stack_config
value = stack_config(sys.argv[1]).get(f"selfheal-lb:{sys.argv[2]}", "")
print("" if value is None else value)
EOF
}
kube_context="$(read_config kubeContext)" || die "cannot read Pulumi.$stack.yaml"
image_ref="$(read_config imageRef)"

# Who confirms a change: YES=1 (make up YES=1) or CI=true say yes up front; otherwise a person
# at a terminal answers pulumi's own question after its preview.
auto_yes=""
case "${YES:-}" in 1|true|yes) auto_yes=1 ;; esac
[ "${CI:-}" = true ] && auto_yes=1

if [ "$action" = destroy ] && ! command -v kubectl >/dev/null 2>&1; then
  kubectl() { return 127; }  # destroy goes on without it: the cluster is then taken as gone
else
  command -v kubectl >/dev/null 2>&1 \
    || die "kubectl is not installed: see https://kubernetes.io/docs/tasks/tools/ (with minikube: 'minikube kubectl -- version' installs one)"
fi
ctx_args=()
[ -n "$kube_context" ] && ctx_args=(--context "$kube_context")
current_ctx="${kube_context:-$(kubectl config current-context 2>/dev/null)}"
if [ -z "$current_ctx" ] && [ "$action" != destroy ]; then
  die "no kubeconfig context: start a cluster ('minikube start') or set one with 'pulumi config set kubeContext NAME'"
fi
api_server="$(kubectl "${ctx_args[@]}" config view --minify -o 'jsonpath={.clusters[0].cluster.server}' 2>/dev/null)"
if [ -n "$kube_context" ]; then how="kubeContext of Pulumi.$stack.yaml"; else how="the current context: kubeContext is not set"; fi
target_line="selfheal-lb: target: stack '$stack' -> context '${current_ctx:-(none)}' ($how), API server ${api_server:-(unknown)}"
# check (scripts/preview-diff.sh, whose stdout is the comment) names the target on stderr once
# every check passed; the others name it first.
[ "$action" = check ] || echo "$target_line"
reachable=1
kubectl "${ctx_args[@]}" version --request-timeout=10s >/dev/null 2>&1 || reachable=""
if [ -z "$reachable" ] && [ "$action" != destroy ]; then
  die "the cluster of context '$current_ctx' is unreachable: start it ('minikube start') or pick another context ('kubectl config use-context NAME')"
fi
confirm=()
case "$action" in preview|check) ;; *)
  if [ -n "$auto_yes" ]; then
    confirm=(--yes)
  elif [ ! -t 0 ]; then
    die "nobody to ask (not a terminal) before changing context '${current_ctx:-(none)}': run 'make $action YES=1' (or with CI=true) to go ahead without a question"
  fi ;;
esac


if [ "$action" != destroy ] && [ -z "$image_ref" ]; then
  # The stack builds app/ into an image: on minikube, build into minikube's own Docker daemon
  # so the pods find the image without a registry.
  if [ "$current_ctx" = minikube ] && [ -z "${DOCKER_HOST:-}" ] && command -v minikube >/dev/null 2>&1; then
    eval "$(minikube -p minikube docker-env --shell bash)" \
      || die "could not point Docker at minikube ('minikube docker-env' failed): is minikube running?"
    echo "selfheal-lb: building into minikube's Docker daemon ($DOCKER_HOST)"
  fi
  command -v docker >/dev/null 2>&1 \
    || die "Docker is needed to build the app image: install it (https://docs.docker.com/engine/install/) or set a prebuilt image with 'pulumi config set imageRef REPO:TAG'"
  docker info >/dev/null 2>&1 \
    || die "the Docker daemon is not reachable${DOCKER_HOST:+ at $DOCKER_HOST}: start it, or set a prebuilt image with 'pulumi config set imageRef REPO:TAG'"
  image_base="$(read_config imageBase)"
  if [ -n "$image_base" ] && ! docker image inspect "$image_base" >/dev/null 2>&1 \
    && [ "${image_base%%/*}" = selfheal-lb ]; then
    die "the build base $image_base is not in the local Docker engine: build it with 'scripts/docker-base.sh --wheels app/requirements.txt'"
  fi
fi
if [ "$action" = check ]; then echo "$target_line" >&2; exit 0; fi

if [ "$action" != destroy ]; then
  # One metrics-server per cluster: does the cluster's metrics.k8s.io agree with
  # metricsServerEnabled? (The same decision the program makes, components/metrics_plan.py.)
  if ! metrics_line="$("$py" -m components.metrics_plan "$stack" 2>/dev/null)"; then
    die "${metrics_line:-the metrics-server check failed: see '$py -m components.metrics_plan $stack'}"
  fi
  [ -z "$metrics_line" ] || echo "selfheal-lb: $metrics_line" >&2
fi

case "${PULUMI_BACKEND_URL:-}" in
  file://*) mkdir -p "${PULUMI_BACKEND_URL#file://}" ;;
esac
pulumi stack select --create "$stack" >/dev/null \
  || die "could not select or create stack '$stack' on backend ${PULUMI_BACKEND_URL:-(pulumi default)}"

# Decided once, kept (components/decisions.py): what `auto` chose for monitoring and for
# metrics-server is read from the deployed stack's outputs and recorded in its config, so later
# runs follow it whatever the cluster's probe answers. REDECIDE=1 forgets it first.
record_decisions() {
  local outputs project key value
  outputs="$(pulumi stack output --stack "$stack" --json 2>/dev/null)" || return 0
  project="$("$py" -c 'from components.offline import project_name; print(project_name())')" || return 0
  "$py" -m components.decisions "$stack" <<<"$outputs" | while read -r key value; do
    pulumi config set --stack "$stack" "$project:$key" "$value" >/dev/null \
      && echo "selfheal-lb: recorded $key=$value in Pulumi.$stack.yaml: kept until you change it ('make up REDECIDE=1' decides again)"
  done
}
if [ "$action" = up ] || [ "$action" = reverify ]; then
  if [ -n "${REDECIDE:-}" ]; then
    project="$("$py" -c 'from components.offline import project_name; print(project_name())')"
    for key in monitoringDecision metricsServerDecision; do
      pulumi config rm --stack "$stack" "$project:$key" >/dev/null 2>&1 || true
    done
    echo "selfheal-lb: REDECIDE: monitoring and metrics-server auto are decided again from the cluster's answers"
  else
    record_decisions  # a stack deployed before decisions were recorded keeps what it has
  fi
fi

if [ "$action" = destroy ] && [ -z "$reachable" ]; then
  # The provider then removes the objects from the state only (its deleteUnreachable).
  export PULUMI_K8S_DELETE_UNREACHABLE=true
  echo "selfheal-lb: the cluster of context '${current_ctx:-(none)}' is unreachable: destroy removes the stack's objects from its state only; if that cluster comes back, delete them there by hand" >&2
fi

case "$action" in
  up)
    pulumi up --stack "$stack" "${confirm[@]}" "$@"
    rc=$?
    [ "$rc" -eq 0 ] && record_decisions
    exit "$rc" ;;
  preview) exec pulumi preview --stack "$stack" --diff "$@" ;;
  destroy) exec pulumi destroy --stack "$stack" "${confirm[@]}" "$@" ;;
  reverify)
    urn="$("$py" -c 'import sys; from components.offline import project_name; from components.verification import snapshot_urn; print(snapshot_urn(sys.argv[1], project_name()))' "$stack")" \
      || die "could not compute the verification snapshot's URN"
    pulumi up --stack "$stack" "${confirm[@]}" --replace "$urn" "$@"
    rc=$?
    [ "$rc" -eq 0 ] && record_decisions
    exit "$rc" ;;
esac
