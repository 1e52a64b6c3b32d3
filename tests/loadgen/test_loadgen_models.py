"""The verdict's error rates when the traffic follows models other than the one it assumes
(each connection, with the same number of requests, independently and uniformly to a pod).

Seeded simulations through the same decide()/decide_sticky() the CLI uses, at the stack's
default load (3 fortio pods x 100 connections x 10 requests, 3 app pods) and alpha 0.005.
Each test states the rates it measured (seeded, so they are reproducible) and holds them to a
bound: false alarms at most 1% (twice alpha, the simulation's noise at 2,000 runs is about
0.16 points), detection at least what is stated.

Measured (seeded; 2,000 runs each unless noted):
- reconnects (one per connection, at a random point): units = min(sockets, threads) 0.0%
  false alarms; counting every socket as a unit 1.35% (the issue's "1.3%")
- uneven connection lengths (duration-based runs, per-thread counts +-20%): 0.4%
- sticky sessions (6 clients, 500 runs): healthy ClientIP never called anything but sticky;
  per-connection balancing instead of sticky called not-sticky in every run
- a coarse random balancer (HAProxy random(1) ring, measured 35/29/37%; 400 runs): 300
  keep-alive connections catch it in 7% of runs, 3,000 requests without keep-alive in 99%,
  6,000 in 100%
- a dead pod among 3 (200 runs): caught in 100%
- 50 app pods, 300 keep-alive connections (the issue's case; some pod is empty by chance 11%
  of the time, and "every pod must get traffic" false-alarmed 10.6%): 0.15% false alarms
"""

from __future__ import annotations

import random

import pytest

from loadgen.affinity import decide_sticky
from loadgen.verdict import DEFAULT_ALPHA, decide

pytestmark = pytest.mark.slow
PODS = ["articles-a", "articles-b", "articles-c"]
THREADS = 300  # 3 fortio pods x -c 100
PER_THREAD = 10  # -n 1000 / -c 100
TRIALS = 2000


def flagged(runs: list[dict[str, float]], units: float, keepalive: bool = True) -> float:
    bad = 0
    for served in runs:
        v = decide(served, keepalive=keepalive, alpha=DEFAULT_ALPHA, expected_pods=3,
                   connections=units if keepalive else None)  # fmt: skip
        bad += v.outcome != "balanced"
    return bad / len(runs)


def reconnect_runs(seed: int) -> list[dict[str, float]]:
    rng = random.Random(seed)
    runs = []
    for _ in range(TRIALS):
        served = dict.fromkeys(PODS, 0.0)
        for _ in range(THREADS):
            cut = rng.randint(1, PER_THREAD - 1)  # one reconnect: two sockets, two pods
            served[rng.choice(PODS)] += cut
            served[rng.choice(PODS)] += PER_THREAD - cut
        runs.append(served)
    return runs


def test_reconnects_min_sockets_threads_keeps_false_alarms_down():
    runs = reconnect_runs(seed=21)
    with_threads = flagged(runs, units=min(2 * THREADS, THREADS))
    with_sockets = flagged(runs, units=2 * THREADS)
    assert with_threads <= 0.01, f"min(sockets, threads): {with_threads:.2%}"
    assert with_threads <= with_sockets, (with_threads, with_sockets)


def test_uneven_connection_lengths():
    rng = random.Random(22)
    runs = []
    for _ in range(TRIALS):
        served = dict.fromkeys(PODS, 0.0)
        for _ in range(THREADS):
            served[rng.choice(PODS)] += max(1, round(rng.uniform(0.8, 1.2) * PER_THREAD))
        runs.append(served)
    rate = flagged(runs, units=THREADS)
    assert rate <= 0.01, f"uneven lengths: {rate:.2%} false alarms"


def test_sticky_sessions_healthy_and_broken():
    rng = random.Random(23)
    clients = [(f"fortio-{i}", 1000.0) for i in range(6)]
    healthy_alarms = broken_caught = 0
    for _ in range(500):
        served = dict.fromkeys(PODS, 0.0)
        for _name, total in clients:
            served[rng.choice(PODS)] += total  # ClientIP: the whole client on one pod
        v = decide_sticky(served, clients, alpha=DEFAULT_ALPHA, expected_pods=3)
        healthy_alarms += v.outcome != "sticky"
        served = dict.fromkeys(PODS, 0.0)
        for _name, total in clients:
            for _ in range(100):  # no affinity: each of 100 connections of 10 to any pod
                served[rng.choice(PODS)] += total / 100
        broken_caught += decide_sticky(served, clients, alpha=DEFAULT_ALPHA,
                                       expected_pods=3).outcome == "not-sticky"  # fmt: skip
    assert healthy_alarms == 0
    assert broken_caught / 500 >= 0.99, broken_caught


@pytest.mark.parametrize(
    ("units", "keepalive", "at_least"),
    [(300, True, 0.03), (3000, False, 0.95), (6000, False, 0.99)],
)
def test_coarse_random_balancer(units, keepalive, at_least):
    """HAProxy `balance random(1)` with weight 1 hashes onto a coarse ring: 35/29/37% measured
    (loadgen/README.md). A real unevenness; small runs cannot see it, large ones do."""
    rng = random.Random(24 + units)
    runs = []
    per_unit = PER_THREAD if keepalive else 1
    for _ in range(400):
        served = dict.fromkeys(PODS, 0.0)
        for pod in rng.choices(PODS, weights=(35, 29, 37), k=units):
            served[pod] += per_unit
        runs.append(served)
    rate = flagged(runs, units=units, keepalive=keepalive)
    assert rate >= at_least, f"{units} units: caught {rate:.1%}"


def test_dead_pod_is_caught():
    rng = random.Random(25)
    runs = []
    for _ in range(200):
        served = dict.fromkeys(PODS, 0.0)
        for pod in rng.choices(PODS[:2], k=THREADS):
            served[pod] += PER_THREAD
        runs.append(served)
    assert flagged(runs, units=THREADS) == 1.0


def test_fifty_pods_with_few_connections_empty_pods_by_chance_are_not_alarms():
    rng = random.Random(26)
    pods = [f"articles-{i:02d}" for i in range(50)]
    alarms = 0
    for _ in range(TRIALS):
        served = dict.fromkeys(pods, 0.0)
        for pod in rng.choices(pods, k=300):
            served[pod] += PER_THREAD
        v = decide(served, keepalive=True, alpha=DEFAULT_ALPHA, expected_pods=50,
                   connections=300)  # fmt: skip
        alarms += v.outcome != "balanced"
    assert alarms / TRIALS <= 0.01, f"{alarms / TRIALS:.2%}"
