"""The verdict's rules, and a seeded simulation of its error rates.

The simulation is the statistical test of the test: assignments are drawn the way kube-proxy
draws them (each connection to a uniformly random pod), then fed through the same `decide`
the CLI uses, in the same shape the CLI feeds it (request counts + total connections for the
in-cluster path, exact per-pod connection counts for the URL path).
"""

from __future__ import annotations

import random

import pytest

from loadgen.verdict import DEFAULT_ALPHA, decide, power_against_skew

TRIALS = 2000
PODS = ("pod-a", "pod-b", "pod-c")


def _simulate(
    rng: random.Random, connections: int, per_conn: int, weights: tuple[float, ...]
) -> tuple[dict[str, int], dict[str, int]]:
    """Assign connections to pods with the given weights; each carries per_conn requests."""
    conns = dict.fromkeys(PODS, 0)
    for pod in rng.choices(PODS, weights=weights, k=connections):
        conns[pod] += 1
    return {p: c * per_conn for p, c in conns.items()}, conns


def _flag_rate(
    seed: int, connections: int, per_conn: int, weights: tuple[float, ...], path: str
) -> float:
    rng = random.Random(seed)
    flagged = 0
    for _ in range(TRIALS):
        requests, conns = _simulate(rng, connections, per_conn, weights)
        if path == "in-cluster":
            v = decide(requests, keepalive=True, connections=connections, expected_pods=3)
        elif path == "url":
            v = decide(requests, keepalive=True, connection_counts=conns, expected_pods=3)
        else:  # no keep-alive: every request is its own connection
            v = decide(requests, keepalive=False, expected_pods=3)
        flagged += v.outcome != "balanced"
    return flagged / TRIALS


@pytest.mark.parametrize("path", ["in-cluster", "url"])
def test_false_alarm_rate_keepalive_100_connections(path: str) -> None:
    # fortio -c 100 -n 1000: 100 connections of 10 requests, assigned uniformly at random.
    rate = _flag_rate(seed=11, connections=100, per_conn=10, weights=(1, 1, 1), path=path)
    assert rate <= 0.01, rate


def test_false_alarm_rate_without_keepalive() -> None:
    rate = _flag_rate(seed=12, connections=1000, per_conn=1, weights=(1, 1, 1), path="none")
    assert rate <= 0.01, rate


def test_naive_request_level_test_would_false_alarm() -> None:
    """Why the unit matters: treating keep-alive requests as independent flags normal splits."""
    rate = _flag_rate(seed=13, connections=100, per_conn=10, weights=(1, 1, 1), path="none")
    assert rate > 0.3, rate


def test_detects_2_1_1_skew_keepalive_400_connections() -> None:
    rate = _flag_rate(seed=21, connections=400, per_conn=10, weights=(2, 1, 1), path="in-cluster")
    assert rate >= 0.99, rate


def test_detects_2_1_1_skew_without_keepalive_1000_requests() -> None:
    rate = _flag_rate(seed=22, connections=1000, per_conn=1, weights=(2, 1, 1), path="none")
    assert rate >= 0.99, rate


def test_reported_power_matches_simulation() -> None:
    # The power figure in the report is analytic; check it against simulation at 300 units.
    analytic = power_against_skew(300, 3, DEFAULT_ALPHA)
    simulated = _flag_rate(seed=23, connections=300, per_conn=5, weights=(2, 1, 1), path="url")
    assert analytic == pytest.approx(simulated, abs=0.02)


def test_normal_keepalive_split_40_33_27_is_not_flagged() -> None:
    v = decide({"a": 400, "b": 330, "c": 270}, keepalive=True, connections=100, expected_pods=3)
    assert v.outcome == "balanced"
    assert v.exit_code == 0


def test_same_split_without_keepalive_is_flagged() -> None:
    v = decide({"a": 400, "b": 330, "c": 270}, keepalive=False, expected_pods=3)
    assert v.outcome == "imbalanced"
    assert v.exit_code == 1


def test_missing_expected_pod_is_imbalanced() -> None:
    v = decide({"a": 500, "b": 500}, keepalive=False, expected_pods=3)
    assert v.outcome == "imbalanced"
    assert "got no traffic" in v.reason


def test_listed_pod_with_zero_is_imbalanced() -> None:
    v = decide({"a": 500, "b": 500, "c": 0}, keepalive=False)
    assert v.outcome == "imbalanced"
    assert "c" in v.reason


def test_nothing_served_is_unverifiable() -> None:
    v = decide({"a": 0, "b": 0}, keepalive=False, expected_pods=2)
    assert v.outcome == "unverifiable"
    assert v.exit_code == 2


def test_small_samples_use_the_exact_test() -> None:
    v = decide({"a": 9, "b": 3, "c": 3}, keepalive=False)
    assert v.method.startswith("exact")


def test_alpha_must_be_sane() -> None:
    with pytest.raises(ValueError):
        decide({"a": 1}, keepalive=False, alpha=0.7)
