#!/usr/bin/env bash
# The preview workflow's comment: edit the comment this workflow posted before on the pull
# request (its first line is the marker previewdiff writes) or add one. Uses the runner's `gh`
# with the job's token (GH_TOKEN) and GITHUB_REPOSITORY, as set by GitHub Actions.
#   usage: scripts/pr-comment.sh PR_NUMBER COMMENT_FILE
set -euo pipefail

die() { echo "selfheal-lb: $*" >&2; exit 1; }

pr="${1:-}"
body="${2:-}"
[[ "$pr" =~ ^[0-9]+$ ]] && [ -n "$body" ] || die "usage: scripts/pr-comment.sh PR_NUMBER COMMENT_FILE"
[ -s "$body" ] || die "no comment to post: $body is missing or empty"
[ -n "${GITHUB_REPOSITORY:-}" ] || die "GITHUB_REPOSITORY is not set (owner/name)"
command -v gh >/dev/null 2>&1 || die "the GitHub CLI (gh) is not installed"

marker="$(head -n1 "$body")"
[[ "$marker" == "<!--"*"-->" ]] || die "$body does not start with its marker comment"
# Only the bot's own comments: a person quoting the marker must not have their comment replaced.
id="$(gh api --paginate "repos/$GITHUB_REPOSITORY/issues/$pr/comments" \
  --jq ".[] | select(.user.login == \"github-actions[bot]\") | select(.body | startswith(\"$marker\")) | .id" \
  | tail -n1)"
if [ -n "$id" ]; then
  gh api --method PATCH "repos/$GITHUB_REPOSITORY/issues/comments/$id" -F "body=@$body" > /dev/null
  echo "selfheal-lb: updated comment $id on #$pr"
else
  gh api --method POST "repos/$GITHUB_REPOSITORY/issues/$pr/comments" -F "body=@$body" > /dev/null
  echo "selfheal-lb: commented on #$pr"
fi
