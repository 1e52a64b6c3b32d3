"""fortio's JSON result: find it in a pod log (or a file), summarize it, merge several.

`fortio load -json -` writes one pretty-printed JSON document to stdout, while its log lines
(plain text, or one-line JSON objects with "level"/"msg" in recent versions) go to stderr.
A pod log interleaves both streams line by line, so the document may be preceded, followed
or even split by log lines; `extract_result` strips those and decodes what is left.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from typing import Any

# Keys present in every fortio load result; used to tell the result from other JSON.
_RESULT_KEYS = ("RunType", "DurationHistogram", "RetCodes")
# One line of Go's json.MarshalIndent output: a closing bracket, or an optional "key": then
# a scalar or an opening bracket, with an optional trailing comma. fortio's stderr lines
# ("Sockets used: 4", "[0]   1 socket used", one-line JSON logs) never look like that.
_STRING = r'"(?:[^"\\]|\\.)*"'
_VALUE = rf"(?:-?\d[\d.eE+-]*|{_STRING}|true|false|null|\{{\}}|\[\]|\{{|\[)"
_JSON_LINE = re.compile(rf"^\s*(?:(?:{_STRING}\s*:\s*)?{_VALUE}|[\]}}]),?\s*$")


class FortioParseError(ValueError):
    """No fortio result could be found in the text."""


def _is_result(obj: Any) -> bool:
    return isinstance(obj, dict) and all(k in obj for k in _RESULT_KEYS)


def _decode_all(text: str) -> list[dict]:
    """Every JSON object that starts at a '{' beginning a line (raw_decode), in order."""
    decoder = json.JSONDecoder()
    found: list[dict] = []
    for m in re.finditer(r"(?m)^[ \t]*\{", text):
        try:
            obj, _ = decoder.raw_decode(text, m.end() - 1)
        except ValueError:
            continue
        if _is_result(obj):
            found.append(obj)
    return found


def extract_result(text: str) -> dict:
    """The fortio result document in `text` (the last one, if fortio ran several times)."""
    found = _decode_all(text)
    if not found:
        # Log lines may have landed inside the document: drop them and try again.
        kept = "\n".join(line for line in text.splitlines() if _JSON_LINE.match(line))
        found = _decode_all(kept)
    if not found:
        raise FortioParseError("no fortio JSON result found in the output")
    return found[-1]


def _errors(ret_codes: dict[str, int]) -> int:
    # fortio counts only 200 as success; -1 is its code for a socket-level failure.
    return sum(int(v) for k, v in ret_codes.items() if str(k) != "200")


def _units(result: dict) -> int:
    """Independent keep-alive units of one run: min(sockets, threads).

    Each of fortio's threads (-c) sends its share of -n over one connection, and opens a new
    one after a reconnect (server close, error). Reconnects add sockets that carry unequal,
    often small, shares; a thread's requests then land on up to `sockets/threads` pods, which
    makes them more, not less, spread than one unit of that size. Counting the thread once
    overstates the variance a little (conservative); counting every socket as a full unit
    understates it (false alarms). With fewer sockets than threads (threads that never
    connected) only the sockets carried load."""
    sockets = int(result.get("SocketCount", 0))
    threads = int(result.get("NumThreads", 0))
    return min(sockets, threads) if threads > 0 else sockets


def _bucket_percentile(data: list[dict], count: int, pct: float) -> float | None:
    """Percentile from fortio histogram buckets, interpolating inside a bucket as fortio does."""
    if not data or count <= 0:
        return None
    target = pct / 100.0 * count
    seen = 0.0
    for bucket in sorted(data, key=lambda b: b["Start"]):
        n = bucket["Count"]
        if seen + n >= target:
            frac = (target - seen) / n if n else 0.0
            return bucket["Start"] + (bucket["End"] - bucket["Start"]) * frac
        seen += n
    return data[-1]["End"]


def summarize(result: dict) -> dict:
    """The figures the report and the stack output `loadTest` show."""
    hist = result.get("DurationHistogram") or {}
    total = int(hist.get("Count", 0))
    percentiles = {p["Percentile"]: p["Value"] for p in hist.get("Percentiles") or []}
    latency: dict[str, float | None] = {}
    for name, pct in (("p50", 50), ("p90", 90), ("p99", 99)):
        value = percentiles.get(pct)
        if value is None:
            value = _bucket_percentile(hist.get("Data") or [], total, pct)
        latency[name] = round(value * 1000, 3) if value is not None else None
    ret_codes = {str(k): int(v) for k, v in (result.get("RetCodes") or {}).items()}
    return {
        "url": result.get("URL"),
        "version": result.get("Version"),
        "total": total,
        "errors": _errors(ret_codes),
        "ret_codes": ret_codes,
        "qps": round(float(result.get("ActualQPS", 0.0)), 1),
        "duration_s": round(int(result.get("ActualDuration", 0)) / 1e9, 3),
        "threads": int(result.get("NumThreads", 0)),
        "connections": int(result.get("SocketCount", 0)),
        "units": _units(result),
        "keepalive": not bool(result.get("DisableKeepAlive", False)),
        "latency_ms": latency,
        "avg_ms": round(float(hist.get("Avg", 0.0)) * 1000, 3),
    }


def merge(results: Iterable[dict]) -> dict:
    """One summary over several fortio runs (one per load-generator pod).

    Counts add up; qps adds up (the runs are concurrent); latency percentiles come from
    the merged histograms, not from averaging per-run percentiles."""
    results = list(results)
    if not results:
        raise FortioParseError("no fortio results to merge")
    if len(results) == 1:
        out = summarize(results[0])
        out["runs"] = 1
        return out
    parts = [summarize(r) for r in results]
    data: list[dict] = []
    total = 0
    weighted_avg = 0.0
    for r in results:
        hist = r.get("DurationHistogram") or {}
        data.extend(hist.get("Data") or [])
        total += int(hist.get("Count", 0))
        weighted_avg += float(hist.get("Avg", 0.0)) * int(hist.get("Count", 0))
    ret_codes: dict[str, int] = {}
    for p in parts:
        for k, v in p["ret_codes"].items():
            ret_codes[k] = ret_codes.get(k, 0) + v
    latency: dict[str, float | None] = {}
    for name, pct in (("p50", 50), ("p90", 90), ("p99", 99)):
        value = _bucket_percentile(data, total, pct)
        latency[name] = round(value * 1000, 3) if value is not None else None
    return {
        "url": parts[0]["url"],
        "version": parts[0]["version"],
        "total": total,
        "errors": _errors(ret_codes),
        "ret_codes": ret_codes,
        "qps": round(sum(p["qps"] for p in parts), 1),
        "duration_s": max(p["duration_s"] for p in parts),
        "threads": sum(p["threads"] for p in parts),
        "connections": sum(p["connections"] for p in parts),
        "units": sum(p["units"] for p in parts),
        "keepalive": all(p["keepalive"] for p in parts),
        "latency_ms": latency,
        "avg_ms": round(weighted_avg / total * 1000, 3) if total else 0.0,
        "runs": len(parts),
    }
