"""Did every successful request count exactly one view? The state-store consistency check.

Contract with app/ (articles/observability.py): each pod's /metrics carries
  articles_views_total{pod,article,outcome}  views the pod tried to count: outcome "recorded"
                                             (the store confirmed it) or "failed" (unreachable)
  articles_views_stored{pod,store,article}   the store's own count per article, read at scrape
                                             time (store "redis": one number shared by all pods)
  articles_state_store_up{pod,store}         1 when the store answered that scrape

Taken before and after a fortio run against an article page, the check is exact, not a
tolerance: the pods' recorded views went up by fortio's successful (HTTP 200) requests, none
failed, and with the shared store its own counter went up by the same number, so no
increment was lost or doubled between the pods (read-modify-write would lose some).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from loadgen import prom

VIEWS_TOTAL = "articles_views_total"
VIEWS_STORED = "articles_views_stored"
STORE_UP = "articles_state_store_up"
# The app's article routes (/article/1 and the walkthrough's /article1); others count no view.
ARTICLE_PATH = re.compile(r"^(?:[a-z]+://[^/]+)?/article/?\d+(?:[?#].*)?$")


def pod_views(text: str) -> dict[str, Any] | None:
    """One pod's view figures from its /metrics text; None if the app exposes none."""
    if VIEWS_TOTAL not in text and STORE_UP not in text:
        return None
    out: dict[str, Any] = {"recorded": 0.0, "failed": 0.0, "store": None, "up": None}
    for labels, value in prom.samples(text, VIEWS_TOTAL):
        outcome = labels.get("outcome")
        if outcome in ("recorded", "failed"):
            out[outcome] += value
    for labels, value in prom.samples(text, STORE_UP):
        out["store"], out["up"] = labels.get("store"), value == 1.0
    stored = prom.samples(text, VIEWS_STORED)
    out["stored"] = sum(v for _, v in stored) if stored else None
    return out


def summarize(texts: Mapping[str, str]) -> dict[str, Any]:
    """Per-pod view figures from each pod's /metrics text (the snapshot's `views`)."""
    pods = {}
    for name, text in sorted(texts.items()):
        try:
            figures = pod_views(text)
        except prom.MetricsFormatError:
            figures = None
        if figures is not None:
            pods[name] = figures
    return {"pods": pods}


def _stored(doc: Mapping[str, Any]) -> tuple[float | None, list[str]]:
    """The shared store's total, and notes when the pods disagree or could not reach it."""
    values = {
        n: p["stored"] for n, p in doc["pods"].items() if p.get("up") and p["stored"] is not None
    }
    down = sorted(n for n, p in doc["pods"].items() if p.get("up") is False)
    notes = [f"the store was unreachable from {', '.join(down)} when read"] if down else []
    if not values:
        return None, notes
    if len(set(values.values())) > 1:
        notes.append(f"the pods read different store totals: {values}")
    return max(values.values()), notes


def check(
    before: Mapping[str, Any] | None, after: Mapping[str, Any], fortio: Mapping[str, Any] | None
) -> dict[str, Any]:
    """The report's `consistency` section: verdict consistent / inconsistent / unverifiable /
    skipped, the figures it compared and why."""

    def result(verdict: str, reason: str, **figures: Any) -> dict[str, Any]:
        return {"verdict": verdict, "reason": reason, **figures}

    if not after.get("pods"):
        return result("unverifiable", "the app pods expose no view counters (articles_views_*)")
    if not fortio:
        return result("unverifiable", "no fortio result to compare the view counters with")
    url = str(fortio.get("url") or "")
    if not ARTICLE_PATH.match(url):
        return result("skipped", f"the load ({url or 'unknown URL'}) is not an article page")
    if not before or not before.get("pods"):
        return result("unverifiable", "no view counters from before the load (no baseline)")
    successes = int((fortio.get("ret_codes") or {}).get("200", 0))
    notes: list[str] = []
    per_pod: dict[str, int] = {}
    failed = 0.0
    for name, now in after["pods"].items():
        prev = before["pods"].get(name)
        if prev is None or now["recorded"] < prev["recorded"] or now["failed"] < prev["failed"]:
            notes.append(f"{name}: new or restarted since the baseline, counted from zero")
            prev = {"recorded": 0.0, "failed": 0.0}
        per_pod[name] = round(now["recorded"] - prev["recorded"])
        failed += now["failed"] - prev["failed"]
    gone = sorted(set(before["pods"]) - set(after["pods"]))
    if gone:
        return result(
            "unverifiable",
            f"pods gone since the baseline, their counters are lost: {', '.join(gone)}",
            notes=notes,
        )
    recorded = sum(per_pod.values())
    stores = {p.get("store") for p in after["pods"].values()}
    store = stores.pop() if len(stores) == 1 else "mixed"
    figures: dict[str, Any] = {
        "store": store,
        "fortio_successes": successes,
        "recorded": recorded,
        "failed": round(failed),
        "recorded_by_pod": per_pod,
    }
    problems: list[str] = []
    if store == "redis":
        stored_before, notes_before = _stored(before)
        stored_after, notes_after = _stored(after)
        notes += notes_after if stored_after is None else notes_before + notes_after
        if stored_before is None or stored_after is None:
            return result(
                "unverifiable",
                "the shared store's counter could not be read before and after the load",
                **figures,
                notes=notes,
            )
        figures["stored_increase"] = round(stored_after - stored_before)
        if figures["stored_increase"] != successes:
            problems.append(
                f"the shared counter rose by {figures['stored_increase']}, "
                f"fortio got {successes} pages"
            )
    if recorded != successes:
        problems.append(f"the pods recorded {recorded} views, fortio got {successes} pages")
    if failed:
        problems.append(
            f"{round(failed)} views could not be counted (store unreachable or too slow)"
        )
    if problems:
        return result("inconsistent", "; ".join(problems), **figures, notes=notes)
    where = "in the shared store and " if store == "redis" else ""
    return result(
        "consistent",
        f"{successes} successful requests, {successes} views counted {where}by the pods",
        **figures,
        notes=notes,
    )
