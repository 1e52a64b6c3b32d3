"""`pulumi preview --json` → a short Markdown report of what a change does to a stack.

Used by `make preview-diff` and the pull-request workflow (scripts/preview-diff.sh): the same
text is printed locally and posted as the pull request's comment.

Hand-written because no kept library turns the engine's JSON into a review comment: the
Automation API returns only a change summary and the engine's text, and pulumi/actions formats
that text in TypeScript inside the action.
"""
