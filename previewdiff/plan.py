"""Read `pulumi preview --json` into what a reviewer needs: counts, changed resources, the
changed fields with their old and new values, and the engine's diagnostics."""

from __future__ import annotations

import json
import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from pulumi.runtime.rpc import UNKNOWN

# How the engine marks a secret inside serialized state (the SDK's own signature values).
SECRET_SIG_KEY = "4dabf18193072939515e22adb298388d"
SECRET_SIG = "1b47061264138c4ac30d75fd1eb44270"
SECRET = "[secret]"
UNKNOWN_TEXT = "(known after apply)"
MISSING = object()

# Engine step ops, mapped to the bucket a reviewer counts them in. A replacement is reported
# as one "replace" step; its create-/delete-replacement halves only when shown on their own.
OP_BUCKET = {
    "create": "create",
    "update": "update",
    "delete": "delete",
    "replace": "replace",
    "create-replacement": "replace",
    "delete-replaced": "replace",
    "read": "read",
    "import": "import",
    "import-replacement": "replace",
    # "discard"/"read-discard" forget a read resource and delete nothing: counted under their
    # own names rather than as deletes.
    "refresh": "refresh",
    "remove-pending-replace": "delete",
}
BUCKET_ORDER = ("create", "update", "replace", "delete", "import", "read", "refresh")


class PreviewError(ValueError):
    """The input is not `pulumi preview --json` output; str() is the one line to show."""


@dataclass(frozen=True)
class FieldChange:
    path: str
    kind: str  # add, update, delete, add-replace, update-replace, delete-replace
    old: Any
    new: Any

    @property
    def forces_replacement(self) -> bool:
        return self.kind.endswith("-replace")


@dataclass(frozen=True)
class ResourceChange:
    op: str
    bucket: str
    name: str
    type: str
    parent_type: str
    fields: tuple[FieldChange, ...]
    replace_reasons: tuple[str, ...]
    # For a create or delete: the whole object's inputs (new or old), flattened to paths.
    inputs: tuple[tuple[str, Any], ...] = ()


@dataclass(frozen=True)
class Diagnostic:
    severity: str
    message: str
    resource: str = ""


@dataclass
class Plan:
    counts: Counter[str]
    changes: list[ResourceChange] = field(default_factory=list)
    diagnostics: list[Diagnostic] = field(default_factory=list)

    @property
    def unchanged(self) -> int:
        return self.counts.get("same", 0)

    @property
    def has_changes(self) -> bool:
        return any(n for bucket, n in self.counts.items() if bucket != "same")

    @property
    def errors(self) -> list[Diagnostic]:
        return [d for d in self.diagnostics if d.severity == "error"]


# A property path as the engine writes it in detailedDiff: a.b[0]["key.with.dots"].c
# Parsed by hand: the SDK has no public parser for it.
_PATH_TOKEN = re.compile(r'\["((?:[^"\\]|\\.)*)"\]|\[(\d+)\]|\.?([^.\[\]]+)')


def parse_path(path: str) -> list[str | int]:
    parts: list[str | int] = []
    pos = 0
    while pos < len(path):
        m = _PATH_TOKEN.match(path, pos)
        if not m or m.end() == pos:
            return [path]  # not a path we understand: look it up as one key
        quoted, index, plain = m.groups()
        if quoted is not None:
            parts.append(json.loads(f'"{quoted}"'))
        elif index is not None:
            parts.append(int(index))
        else:
            parts.append(plain)
        pos = m.end()
    return parts


def lookup(obj: Any, path: str) -> Any:
    for part in parse_path(path):
        if isinstance(part, int) and isinstance(obj, list) and part < len(obj):
            obj = obj[part]
        elif isinstance(obj, dict) and str(part) in obj:
            obj = obj[str(part)]
        else:
            return MISSING
    return obj


def clean(value: Any) -> Any:
    """Secrets replaced by "[secret]" (never their value), unknowns by "(known after apply)"."""
    if isinstance(value, dict):
        if value.get(SECRET_SIG_KEY) == SECRET_SIG:
            return SECRET
        return {k: clean(v) for k, v in value.items()}
    if isinstance(value, list):
        return [clean(v) for v in value]
    if value == UNKNOWN:
        return UNKNOWN_TEXT
    return value


def flatten(value: Any, prefix: str = "") -> list[tuple[str, Any]]:
    """Leaves of a nested value as (path, value), in the engine's path syntax."""
    if isinstance(value, dict) and value:
        out: list[tuple[str, Any]] = []
        for key, sub in value.items():
            if re.fullmatch(r"[A-Za-z_][\w/-]*", key):
                step = f"{prefix}.{key}" if prefix else key
            else:
                step = f"{prefix}[{json.dumps(key)}]"
            out += flatten(sub, step)
        return out
    if isinstance(value, list) and value:
        return [leaf for i, sub in enumerate(value) for leaf in flatten(sub, f"{prefix}[{i}]")]
    return [(prefix, value)]


def _split_urn(urn: str) -> tuple[str, str, str]:
    """(name, type, parent component type) from urn:pulumi:stack::project::parent$type::name."""
    try:
        _, _, rest = urn.split("::", 2)
        type_chain, name = rest.rsplit("::", 1)
    except ValueError:
        return urn, "", ""
    chain = type_chain.split("$")
    return name, chain[-1], chain[-2] if len(chain) > 1 else ""


def _state_value(state: dict[str, Any] | None, path: str) -> Any:
    if not state:
        return MISSING
    for section in ("inputs", "outputs"):
        found = lookup(state.get(section) or {}, path)
        if found is not MISSING:
            return clean(found)
    return MISSING


def _fields(step: dict[str, Any]) -> tuple[FieldChange, ...]:
    old, new = step.get("oldState"), step.get("newState")
    detailed = step.get("detailedDiff")
    if detailed:
        items = [(path, d.get("kind", "update")) for path, d in detailed.items()]
    else:
        # Providers without a detailed diff name only the changed top-level properties.
        items = [(path, "update") for path in step.get("diffReasons") or []]
    return tuple(
        FieldChange(path, kind, _state_value(old, path), _state_value(new, path))
        for path, kind in items
    )


def _change(step: dict[str, Any]) -> ResourceChange:
    op = step.get("op", "")
    name, type_, parent_type = _split_urn(step.get("urn", ""))
    bucket = OP_BUCKET.get(op, op)
    whole: dict[str, Any] = {}
    if bucket == "create":
        whole = (step.get("newState") or {}).get("inputs") or {}
    elif bucket == "delete":
        whole = (step.get("oldState") or {}).get("inputs") or {}
    return ResourceChange(
        op=op,
        bucket=bucket,
        name=name,
        type=type_,
        parent_type=parent_type,
        fields=_fields(step) if bucket in ("update", "replace") else (),
        replace_reasons=tuple(step.get("replaceReasons") or ()),
        inputs=tuple(flatten(clean(whole))) if whole else (),
    )


def _diagnostic(raw: dict[str, Any]) -> Diagnostic:
    message = str(raw.get("message", "")).strip()
    urn = raw.get("urn") or ""
    return Diagnostic(
        severity=str(raw.get("severity", "info")),
        message=message,
        resource=_split_urn(urn)[0] if urn else "",
    )


def parse(text: str) -> Plan:
    """The plan in `pulumi preview --json` output; PreviewError if it is not one."""
    if not text.strip():
        raise PreviewError("the preview produced no JSON (pulumi stopped before it; see its log)")
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as err:
        raise PreviewError(
            f"the preview output is not JSON ({err.msg} at line {err.lineno})"
        ) from None
    if not isinstance(doc, dict) or not isinstance(doc.get("steps", []), list):
        raise PreviewError("the preview output is not `pulumi preview --json` (no steps list)")
    steps = [s for s in doc.get("steps") or [] if isinstance(s, dict)]
    summary = doc.get("changeSummary")
    if isinstance(summary, dict):
        counts: Counter[str] = Counter()
        for op, n in summary.items():
            counts[op if op == "same" else OP_BUCKET.get(op, op)] += int(n)
    else:  # a failed preview may carry no summary: count the steps it did report
        counts = Counter(
            "same" if s.get("op") == "same" else OP_BUCKET.get(s.get("op", ""), s.get("op", "?"))
            for s in steps
        )
    # A replacement's create-/delete- halves are noise when the "replace" step is there.
    replaced = {s.get("urn") for s in steps if s.get("op") == "replace"}
    halves = ("create-replacement", "delete-replaced")
    changes = [
        _change(s)
        for s in steps
        if s.get("op") != "same" and not (s.get("op") in halves and s.get("urn") in replaced)
    ]
    changes.sort(key=lambda c: BUCKET_ORDER.index(c.bucket) if c.bucket in BUCKET_ORDER else 99)
    diagnostics = [_diagnostic(d) for d in doc.get("diagnostics") or [] if isinstance(d, dict)]
    return Plan(counts=counts, changes=changes, diagnostics=diagnostics)
