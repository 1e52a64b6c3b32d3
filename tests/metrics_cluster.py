"""The real cluster of `make cluster` for the metrics-server tests: where its kubeconfig is, the
program's own metrics API probe against it (or a skip saying why not), bounded waits and
namespace clean-up."""

from __future__ import annotations

import time
from typing import Any

import pytest

from cluster.paths import CONTEXT, KUBECONFIG
from components.metrics_api import MetricsApiState, probe

DEADLINE_SECONDS = 180  # metrics-server scrapes every 15 s; a new pod shows within ~1 minute


def detect_or_skip() -> MetricsApiState:
    if not KUBECONFIG.exists():
        pytest.skip(f"no real cluster: {KUBECONFIG} does not exist (the lead's `make cluster`)")
    state = probe(CONTEXT, str(KUBECONFIG))
    if state.status == "unknown":
        pytest.skip(f"the real cluster does not answer: {state.detail}")
    return state


def wait(what: str, check, seconds: float = DEADLINE_SECONDS, every: float = 5.0):
    deadline = time.monotonic() + seconds
    last = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(every)
    pytest.fail(f"{what}: not within {seconds:.0f} s (last: {last!r})")


def absent(v1: Any, namespace: str) -> bool:
    from kubernetes import client

    try:
        v1.read_namespace(namespace)
    except client.ApiException as exc:
        if exc.status == 404:
            return True
        raise
    return False


def delete_namespace(v1: Any, namespace: str) -> bool:
    """Starts deleting the namespace; False when there was none."""
    from kubernetes import client

    try:
        v1.delete_namespace(namespace)
    except client.ApiException as exc:
        if exc.status != 404:
            raise
        return False
    return True
