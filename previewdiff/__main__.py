"""python -m previewdiff --preview preview.json --stack dev --base "main (1a2b3c4)" --head …

Prints the Markdown comment. Exit 0 when it could be written (even for a failed preview: the
comment says so), 1 with one line on stderr when the file is missing or is not a preview."""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Sequence
from pathlib import Path

from previewdiff.markdown import Context, render, render_error
from previewdiff.plan import PreviewError, parse

ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
LOG_LINES = 20
LOG_LINE_CHARS = 300


def log_tail(path: str) -> tuple[str, ...]:
    try:
        text = Path(path).read_text(errors="replace")
    except OSError:
        return ()
    lines = [ANSI.sub("", line).rstrip() for line in text.splitlines()]
    lines = [line[:LOG_LINE_CHARS] for line in lines if line.strip()]
    return tuple(lines[-LOG_LINES:])


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m previewdiff", description=__doc__)
    parser.add_argument("--preview", default="-", help="pulumi preview --json output (- = stdin)")
    parser.add_argument("--stack", required=True, help="the stack the diff is about")
    parser.add_argument("--base", required=True, help="what the base deployment is, for the title")
    parser.add_argument("--head", required=True, help="what was previewed, for the title")
    parser.add_argument("--failed", action="store_true", help="pulumi preview exited non-zero")
    parser.add_argument("--log", help="pulumi's stderr: its last lines are shown on failure")
    args = parser.parse_args(argv)
    ctx = Context(stack=args.stack, base=args.base, head=args.head, failed=args.failed,
                  log_tail=log_tail(args.log) if args.log else ())
    try:
        text = sys.stdin.read() if args.preview == "-" else Path(args.preview).read_text()
    except OSError as err:
        print(f"previewdiff: cannot read {args.preview}: {err.strerror}", file=sys.stderr)
        return 1
    try:
        plan = parse(text)
    except PreviewError as err:
        if not args.failed:
            print(f"previewdiff: {err}", file=sys.stderr)
            return 1
        sys.stdout.write(render_error(str(err), ctx))
        return 0
    sys.stdout.write(render(plan, ctx))
    return 0


if __name__ == "__main__":
    sys.exit(main())
