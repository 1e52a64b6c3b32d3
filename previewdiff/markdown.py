"""A Plan as a short Markdown comment: the counts first, one line per changed resource with
its changed fields, then the full field-by-field diff and the engine's warnings folded away.

Everything that comes from the program or the stack (names, paths, values) is put in code spans
or fenced blocks, so a pull request cannot inject Markdown or HTML into the comment."""

from __future__ import annotations

import json
import re
from collections import Counter
from dataclasses import dataclass
from typing import Any

from previewdiff.plan import MISSING, FieldChange, Plan, ResourceChange

# The marker by which the workflow finds (and edits) its earlier comment on the pull request.
MARKER = "<!-- selfheal-lb:preview-diff -->"
GITHUB_COMMENT_LIMIT = 65536  # characters GitHub accepts in one comment body
SUMMARY_RESOURCES = 40  # resources listed unfolded; the rest only in the details
INLINE_VALUE = 40  # longer old/new values are shown only in the folded details
DETAIL_VALUE = 300
INPUT_LINES = 30  # per created/deleted resource in the details
SUMMARY_FIELDS = 4  # changed fields named per resource in the summary

VERB = {
    "create": ("+", "create"),
    "update": ("~", "update"),
    "replace": ("+-", "replace"),
    "delete": ("-", "delete"),
    "import": ("=", "import"),
    "read": (">", "read"),
    "refresh": ("~", "refresh"),
}
PLURAL = {"create": "to create", "update": "to update", "replace": "to replace",
          "delete": "to delete", "import": "to import", "read": "to read",
          "refresh": "to refresh"}
KIND_MARK = {"add": "+", "delete": "-"}


@dataclass(frozen=True)
class Context:
    stack: str
    base: str  # e.g. "main (1a2b3c4)"
    head: str
    failed: bool = False  # pulumi preview exited non-zero
    log_tail: tuple[str, ...] = ()  # the last lines pulumi wrote to stderr, shown on failure


def code(text: str) -> str:
    """An inline code span that no backtick inside can close."""
    text = text.replace("\n", " ")
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    fence = "`" * (longest + 1)
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def fenced(lines: list[str], lang: str = "") -> str:
    body = "\n".join(lines)
    longest = max((len(run) for run in re.findall(r"`{3,}", body)), default=2)
    fence = "`" * (longest + 1)
    return f"{fence}{lang}\n{body}\n{fence}"


def as_text(value: Any) -> str:
    if value is MISSING:
        return "(none)"
    if isinstance(value, str) and value in ("[secret]", "(known after apply)"):
        return value
    return json.dumps(value, sort_keys=True, separators=(", ", ": "), ensure_ascii=False)


def cut(text: str, limit: int, start: int = 0) -> str:
    """At most `limit` characters of text from `start`, with … where something was left out."""
    head = "…" if start > 0 else ""
    rest = text[start:]
    return head + (rest if len(rest) <= limit else rest[: limit - 1] + "…")


def show(value: Any, limit: int) -> str:
    return cut(as_text(value), limit)


def show_pair(old: Any, new: Any, limit: int) -> tuple[str, str]:
    """Old and new value; when they are long, both start shortly before where they differ,
    so a one-word change inside a long command line is visible."""
    a, b = as_text(old), as_text(new)
    if len(a) <= limit and len(b) <= limit:
        return a, b
    pairs = enumerate(zip(a, b, strict=False))
    same = next((i for i, (x, y) in pairs if x != y), min(len(a), len(b)))
    start = max(0, same - limit // 4)
    return cut(a, limit, start), cut(b, limit, start)


def _resource_label(change: ResourceChange) -> str:
    kind = change.type.rsplit(":", 1)[-1] or change.type
    return f"{code(change.name)} ({kind})"


def _field_inline(f: FieldChange) -> str:
    old, new = as_text(f.old), as_text(f.new)
    if f.kind.startswith("add"):
        text = f"{f.path} added"
    elif f.kind.startswith("delete"):
        text = f"{f.path} removed"
    elif len(old) <= INLINE_VALUE and len(new) <= INLINE_VALUE:
        text = f"{f.path}: {old} → {new}"
    else:
        text = f"{f.path} changed"
    return code(text)


def summary_line(plan: Plan) -> str:
    parts = [f"{plan.counts[b]} {PLURAL[b]}" for b in VERB if plan.counts.get(b)]
    others = sorted(b for b in plan.counts if b not in VERB and b != "same" and plan.counts[b])
    parts += [f"{plan.counts[b]} {b}" for b in others]
    unchanged = f"{plan.unchanged} resource{'s' if plan.unchanged != 1 else ''} unchanged"
    if not parts:
        return f"**No changes.** {unchanged}."
    return f"**{', '.join(parts)}**; {unchanged}."


def _summary_item(change: ResourceChange) -> str:
    # The verb in bold, not the diff sign: "- + x" or "- - x" would render as a nested list.
    _, verb = VERB.get(change.bucket, ("?", change.op))
    line = f"- **{verb}** {_resource_label(change)}"
    if change.fields:
        named = [_field_inline(f) for f in change.fields[:SUMMARY_FIELDS]]
        more = len(change.fields) - SUMMARY_FIELDS
        line += ": " + ", ".join(named) + (f" and {more} more" if more > 0 else "")
    return line


def _detail_block(change: ResourceChange) -> list[str]:
    mark, verb = VERB.get(change.bucket, ("?", change.op))
    where = f" in {change.parent_type}" if change.parent_type else ""
    lines = [f"{mark} {verb} {change.name} ({change.type}){where}"]
    for f in change.fields:
        sign = KIND_MARK.get(f.kind.split("-")[0], "~")
        why = "  (forces replacement)" if f.forces_replacement else ""
        old, new = show_pair(f.old, f.new, DETAIL_VALUE)
        lines.append(f"    {sign} {f.path}: {old} => {new}{why}")
    if change.replace_reasons and not any(f.forces_replacement for f in change.fields):
        lines.append(f"    replaced because of: {', '.join(change.replace_reasons)}")
    sign = "+" if change.bucket == "create" else "-"
    for path, value in change.inputs[:INPUT_LINES]:
        lines.append(f"    {sign} {path}: {show(value, DETAIL_VALUE)}")
    if len(change.inputs) > INPUT_LINES:
        lines.append(f"    … {len(change.inputs) - INPUT_LINES} more fields")
    return lines


def details(plan: Plan, budget: int) -> str:
    lines: list[str] = []
    used = 0
    for n, change in enumerate(plan.changes):
        block = _detail_block(change)
        size = sum(len(line) + 1 for line in block)
        if used + size > budget:
            lines.append(f"… {len(plan.changes) - n} more resources: see the job log")
            break
        lines += block
        used += size
    return fenced(lines, "diff")


def _with_severity(severity: str, message: str) -> str:
    # The engine's messages usually start with their severity already.
    return message if message.startswith(f"{severity}:") else f"{severity}: {message}"


def _errors_block(plan: Plan) -> list[str]:
    if not plan.errors:
        return []
    lines = [(f"{d.resource}: " if d.resource else "") + d.message for d in plan.errors]
    return ["", f"**{len(plan.errors)} error(s):**", "", fenced(lines)]


def _log_block(ctx: Context) -> list[str]:
    # `pulumi preview --json` leaves policy violations out of the JSON (the engine skips them
    # there), so on failure the reviewer gets the end of what pulumi printed besides.
    if not (ctx.failed and ctx.log_tail):
        return []
    return ["", "**pulumi's last messages:**", "", fenced(list(ctx.log_tail))]


def _messages_block(plan: Plan) -> list[str]:
    others = Counter((d.severity, d.message) for d in plan.diagnostics if d.severity != "error")
    if not others:
        return []
    lines = [
        _with_severity(sev, msg) + (f"  ({n} times)" if n > 1 else "")
        for (sev, msg), n in others.items()
    ]
    return ["", f"<details><summary>Engine messages ({sum(others.values())})</summary>", "",
            fenced(lines), "", "</details>"]


def render(plan: Plan, ctx: Context) -> str:
    title = f"### Preview of stack {code(ctx.stack)}: {ctx.head} against {ctx.base}"
    out = [MARKER, title, ""]
    if ctx.failed:
        out += ["**The preview failed**: the head cannot be deployed as it is.", ""]
    out.append(summary_line(plan))
    if plan.changes:
        out.append("")
        out += [_summary_item(c) for c in plan.changes[:SUMMARY_RESOURCES]]
        if len(plan.changes) > SUMMARY_RESOURCES:
            out.append(f"- … and {len(plan.changes) - SUMMARY_RESOURCES} more (in the diff below)")
    out += _errors_block(plan)
    out += _log_block(ctx)
    tail = _messages_block(plan)
    if plan.changes:
        # The details get whatever room the rest of the comment leaves under GitHub's limit.
        room = GITHUB_COMMENT_LIMIT - len("\n".join(out + tail)) - 1000
        out += ["", f"<details><summary>Field-by-field diff ({len(plan.changes)} resources)"
                "</summary>", "", details(plan, room), "", "</details>"]
    text = "\n".join(out + tail) + "\n"
    if len(text) > GITHUB_COMMENT_LIMIT:  # only a pathological plan gets here: drop details
        text = "\n".join([*out[:3], summary_line(plan), "", "(too long: see the job log)"]) + "\n"
    return text


def render_error(message: str, ctx: Context) -> str:
    """The comment when there is no plan to show (pulumi stopped before printing one)."""
    return "\n".join([
        MARKER,
        f"### Preview of stack {code(ctx.stack)}: {ctx.head} against {ctx.base}",
        "",
        f"**The preview failed**: {code(message)}.",
        *_log_block(ctx),
        "",
    ])
