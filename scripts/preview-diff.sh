#!/usr/bin/env bash
# `make preview-diff BASE=<git ref>` and the pull-request workflow land here: what would this
# checkout change on a cluster where BASE is deployed?
#
#   1. refuse in one line what cannot work (no pulumi CLI, BASE not a commit, a stack file missing,
#      the cluster or Docker not there: scripts/stack.sh check)
#   2. check BASE out into a temporary git worktree and deploy it, with its own `make venv` and
#      its own scripts/stack.sh, to a throwaway stack (PREVIEW_DIFF_STACK, default <STACK>-diff)
#      configured exactly like STACK is at BASE
#   3. `pulumi preview --json` of this checkout (uncommitted changes included) against that stack,
#      with this checkout's Pulumi.<STACK>.yaml, then turn it into Markdown (python -m previewdiff)
#   4. print the Markdown (also in $PREVIEW_DIFF_OUT/comment.md) and clean up
#
# usage: scripts/preview-diff.sh BASE [STACK] [extra pulumi preview args...]
# environment (all optional):
#   PREVIEW_DIFF_STACK     throwaway stack the base is deployed to (default <STACK>-diff)
#   PREVIEW_DIFF_OUT       preview.json, comment.md and the logs (default build/preview-diff)
#   PREVIEW_DIFF_CLEANUP   destroy (default): pulumi destroy + stack rm afterwards;
#                          forget: stack rm --force only (the cluster is thrown away anyway);
#                          keep: leave the base deployed (a later run updates it in place)
#   PREVIEW_DIFF_BEFORE_UP command run in the base checkout before it is deployed
#   PREVIEW_DIFF_BASE_LABEL / PREVIEW_DIFF_HEAD_LABEL  names for the comment's title
#   PULUMI_BACKEND_URL     default: the Makefile's local file backend (.pulumi-state/), unless
#                          PULUMI_ACCESS_TOKEN selects Pulumi Cloud
set -uo pipefail
cd "$(dirname "$0")/.."
root="$PWD"

die() { echo "selfheal-lb: $*" >&2; exit 1; }
note() { echo "selfheal-lb: $*" >&2; }

base_ref="${1:-}"
stack="${2:-dev}"
shift 2 2>/dev/null || shift $#
[ -n "$base_ref" ] || die "usage: make preview-diff BASE=<git ref> (e.g. BASE=main), or scripts/preview-diff.sh BASE [STACK]"

command -v pulumi >/dev/null 2>&1 \
  || die "preview-diff needs the pulumi CLI, which is not installed: see https://www.pulumi.com/docs/iac/download-install/, then run 'make preview-diff BASE=$base_ref' again"

diff_stack="${PREVIEW_DIFF_STACK:-$stack-diff}"
[[ "$diff_stack" =~ ^[A-Za-z0-9][A-Za-z0-9_.-]*$ ]] \
  || die "PREVIEW_DIFF_STACK '$diff_stack' is not a stack name (letters, digits, - _ .)"
[ "$diff_stack" != "$stack" ] \
  || die "PREVIEW_DIFF_STACK must differ from '$stack': the base is deployed to a throwaway stack"
cleanup_mode="${PREVIEW_DIFF_CLEANUP:-destroy}"
case "$cleanup_mode" in
  destroy|forget|keep) ;;
  *) die "PREVIEW_DIFF_CLEANUP is '$cleanup_mode': use destroy, forget or keep" ;;
esac
out="${PREVIEW_DIFF_OUT:-build/preview-diff}"
py="${PYTHON:-venv/bin/python}"
[ -x "$py" ] || die "the project virtualenv is missing: run 'make venv' (needs Python 3.11+)"

base_sha="$(git rev-parse --verify --quiet "$base_ref^{commit}")" \
  || die "BASE '$base_ref' is not a commit in this repository (fetch it first, e.g. 'git fetch origin $base_ref')"
base_short="$(git rev-parse --short "$base_sha")"
[ -f "Pulumi.$stack.yaml" ] || die "no stack config Pulumi.$stack.yaml in this checkout"
git cat-file -e "$base_sha:Pulumi.$stack.yaml" 2>/dev/null \
  || die "BASE '$base_ref' has no Pulumi.$stack.yaml: there is no base deployment of '$stack' to compare with"
git cat-file -e "$base_sha:scripts/stack.sh" 2>/dev/null \
  || die "BASE '$base_ref' predates scripts/stack.sh: it cannot be deployed by this flow"

# Backend: the Makefile's local file backend unless one is configured (Pulumi Cloud by token).
if [ -z "${PULUMI_BACKEND_URL:-}" ] && [ -z "${PULUMI_ACCESS_TOKEN:-}" ]; then
  export PULUMI_BACKEND_URL="file://$root/.pulumi-state"
  # The published dev passphrase only for the local clusters' dev stacks (as the Makefile).
  case "$stack" in
    dev|kind|local) export PULUMI_CONFIG_PASSPHRASE="${PULUMI_CONFIG_PASSPHRASE-selfheal-lb-dev}" ;;
  esac
fi
if [ -n "${PULUMI_BACKEND_URL:-}" ] && [ -z "${PULUMI_CONFIG_PASSPHRASE+set}${PULUMI_CONFIG_PASSPHRASE_FILE:-}" ]; then
  die "PULUMI_CONFIG_PASSPHRASE is not set: the stack's secrets on $PULUMI_BACKEND_URL need it (make sets a dev one for the local backend)"
fi
case "${PULUMI_BACKEND_URL:-}" in
  file://*) mkdir -p "${PULUMI_BACKEND_URL#file://}" ;;
esac

# The cluster, kubectl and Docker (the base may build its image): this checkout's own preflight.
scripts/stack.sh check "$stack" || exit 1

if git diff --quiet HEAD -- 2>/dev/null; then dirty=""; else dirty=" with uncommitted changes"; fi
head_label="${PREVIEW_DIFF_HEAD_LABEL:-$(git rev-parse --short HEAD)$dirty}"
base_label="${PREVIEW_DIFF_BASE_LABEL:-$base_ref ($base_short)}"

mkdir -p "$out"
out="$(cd "$out" && pwd)"
rm -f "$out"/preview.json "$out"/comment.md "$out"/cleanup.log
tmp="$(mktemp -d "${TMPDIR:-/tmp}/preview-diff.XXXXXX")"
base_dir="$tmp/base"
stack_ready=""
# The secrets settings `pulumi stack init` writes into the throwaway stack's config file.
secrets_keys='^(secretsprovider|encryptedkey|encryptionsalt):'
kept_secrets="$out/stack-$diff_stack.secrets"

cleanup() {
  local rc=$?
  # Only a stack that exists is cleaned up (the deployment may have failed before creating it).
  if [ -n "$stack_ready" ] \
    && (cd "$base_dir" && pulumi stack select "$diff_stack" --non-interactive) >/dev/null 2>&1; then
    case "$cleanup_mode" in
      destroy)
        note "removing the base deployment (stack $diff_stack)"
        { (cd "$base_dir" && pulumi destroy --stack "$diff_stack" --yes --skip-preview --non-interactive \
            && pulumi stack rm "$diff_stack" --yes --non-interactive); } >> "$out/cleanup.log" 2>&1 \
          && rm -f "$kept_secrets" \
          || note "could not remove stack $diff_stack (see $out/cleanup.log): run 'pulumi destroy --stack $diff_stack --yes && pulumi stack rm $diff_stack --yes'"
        ;;
      forget)
        (cd "$base_dir" && pulumi stack rm "$diff_stack" --force --yes --non-interactive) >> "$out/cleanup.log" 2>&1 \
          && rm -f "$kept_secrets" \
          || note "could not remove stack $diff_stack (see $out/cleanup.log)"
        ;;
      keep)
        note "kept stack $diff_stack ($base_label deployed); remove it with 'pulumi destroy --stack $diff_stack --yes && pulumi stack rm $diff_stack --yes'"
        ;;
    esac
  fi
  git worktree remove --force "$base_dir" >/dev/null 2>&1 || true
  rm -rf "$tmp"
  git worktree prune >/dev/null 2>&1 || true
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

note "checking out $base_label into $base_dir"
git worktree add --detach --quiet "$base_dir" "$base_sha" \
  || die "could not check out $base_label into a temporary worktree"

note "the base's virtualenv (make venv; log: $out/base-venv.log)"
make -C "$base_dir" venv > "$out/base-venv.log" 2>&1 \
  || die "'make venv' failed in the checkout of $base_label: see $out/base-venv.log"

# The throwaway stack is configured exactly like STACK at BASE; a stack kept from an earlier
# run gets back the secrets settings `pulumi stack init` wrote for it then.
cp "$base_dir/Pulumi.$stack.yaml" "$base_dir/Pulumi.$diff_stack.yaml"
if [ -f "$kept_secrets" ] && ! grep -qE "$secrets_keys" "$base_dir/Pulumi.$diff_stack.yaml"; then
  cat "$kept_secrets" >> "$base_dir/Pulumi.$diff_stack.yaml"
fi

if [ -n "${PREVIEW_DIFF_BEFORE_UP:-}" ]; then
  (cd "$base_dir" && STACK="$stack" DIFF_STACK="$diff_stack" bash -c "$PREVIEW_DIFF_BEFORE_UP") \
    || die "PREVIEW_DIFF_BEFORE_UP failed in the checkout of $base_label"
fi

note "deploying $base_label to stack $diff_stack (log: $out/base-up.log)"
stack_ready=yes  # from here on, whatever got deployed is cleaned up
# --refresh: a kept stack, or one whose cluster is gone, is compared with what really exists.
YES=1 PYTHON=venv/bin/python "$base_dir/scripts/stack.sh" up "$diff_stack" --refresh --skip-preview --non-interactive \
  > "$out/base-up.log" 2>&1 \
  || die "deploying $base_label to stack $diff_stack failed: see $out/base-up.log ($(grep -m1 '^error: ' "$out/base-up.log" || { grep '^selfheal-lb: ' "$out/base-up.log" | grep -m1 -v '^selfheal-lb: warning'; } || tail -n1 "$out/base-up.log"))"

# This checkout's config under the throwaway stack's name, with the secrets settings
# `pulumi stack init` wrote for that stack (so both sides decrypt the same way).
grep -E "$secrets_keys" "$base_dir/Pulumi.$diff_stack.yaml" > "$kept_secrets" || true
head_config="$tmp/Pulumi.$diff_stack.yaml"
cp "Pulumi.$stack.yaml" "$head_config"
grep -qE "$secrets_keys" "$head_config" || cat "$kept_secrets" >> "$head_config"

note "previewing $head_label against it (log: $out/preview.log)"
preview_rc=0
pulumi preview --stack "$diff_stack" --config-file "$head_config" --json --non-interactive "$@" \
  > "$out/preview.json" 2> "$out/preview.log" || preview_rc=$?

failed=()
[ "$preview_rc" -eq 0 ] || failed=(--failed)
"$py" -m previewdiff --preview "$out/preview.json" --log "$out/preview.log" --stack "$stack" \
  --base "$base_label" --head "$head_label" "${failed[@]}" > "$out/comment.md" \
  || die "could not turn the preview into a comment: see $out/preview.json and $out/preview.log"
cat "$out/comment.md"
[ "$preview_rc" -eq 0 ] || note "pulumi preview failed (exit $preview_rc): see $out/preview.log"
exit "$preview_rc"
