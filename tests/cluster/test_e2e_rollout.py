"""make e2e's rollout step judges rollout-check's report: any failed request fails the step
with the first failures named, and new pods (at least as many as before) must have served."""

from __future__ import annotations

from typing import Any

import pytest

from cluster.e2e import rollout
from cluster.e2e.checks import CheckFailed


def report(failures: list[dict[str, Any]], served: dict[str, int]) -> dict[str, Any]:
    timeline = [
        {"t": 0.1, "event": "pod old-a ready", "pod": "old-a", "state": "ready"},
        {"t": 3.0, "event": "rollout triggered"},
        *[
            {"t": 4.0 + i, "event": f"pod {p} pending", "pod": p, "state": "pending"}
            for i, p in enumerate(p for p in served if p.startswith("new"))
        ],
    ]
    return {
        "exit_code": 1 if failures else 0,
        "reason": f"rollout of articles in 20.0s: {len(failures)} of 1000 requests failed",
        "clients": 8,
        "timeline": timeline,
        "traffic": {
            "total": 1000,
            "failures": failures,
            "pods": {p: {"served": n, "first_s": 0.0, "last_s": 9.0} for p, n in served.items()},
        },
    }


SERVED = {"old-a": 300, "new-1": 200, "new-2": 200, "new-3": 150, "new-4": 150}


def test_zero_failures_and_every_new_pod_serving_passes() -> None:
    assert rollout.new_pods_of(report([], SERVED)["timeline"]) == {
        "new-1",
        "new-2",
        "new-3",
        "new-4",
    }
    assert "0 of 1000 requests failed" in rollout.judge(report([], SERVED), replicas=3)


def test_one_refused_request_fails_the_step_naming_it() -> None:
    failure = {"t": 10.2, "reason": "refused", "previous_pod": "old-a"}
    with pytest.raises(
        CheckFailed, match=r"1 of 1000 requests failed.*10.2s refused \(after old-a"
    ):
        rollout.judge(report([failure], SERVED), replicas=3)


def test_new_pods_that_never_served_fail_the_step() -> None:
    served = {**SERVED, "new-3": 0, "new-4": 0}
    with pytest.raises(CheckFailed, match="2 new pods served the load"):
        rollout.judge(report([], served), replicas=3)
