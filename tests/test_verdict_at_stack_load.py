"""The verdict's error rates at the load each committed stack really runs.

loadgen's own tests prove the test statistic; this one ties it to the config: with a stack's
fortio pods x connections x requests, keep-alive and verifySignificance, a perfectly random
kube-proxy split must be flagged at most 1% of the time and a 2:1:1 skew caught at least 99%
of the time. Change the load or the significance so that either fails, and this goes red.
Seeded simulation of per-connection assignment through the same decide() `verify` uses.
"""

from __future__ import annotations

import random
from pathlib import Path

import pulumi
import pytest

from components import offline
from components.settings import Settings, load_settings
from loadgen.verdict import decide

ROOT = Path(__file__).resolve().parent.parent
STACKS = sorted(p.name.split(".")[1] for p in ROOT.glob("Pulumi.*.yaml"))
TRIALS = 2000


def stack_settings(stack: str) -> Settings:
    values = offline._as_config_strings(offline.stack_config(stack))
    pulumi.runtime.set_all_config(values, secret_keys=[])
    return load_settings(
        pulumi.Config(offline.project_name()),
        project=offline.project_name(),
        stack=stack,
        app_dir=Path("app"),
        present_keys=list(values),
    )


def flagged_rate(s: Settings, weights: tuple[float, ...], seed: int) -> float:
    """Share of simulated runs that are not judged balanced."""
    rng = random.Random(seed)
    pods = [f"articles-{i}" for i in range(len(weights))]
    connections = s.load.pods * s.load.connections
    per_connection = s.load.requests // s.load.connections  # fortio -n N -c C
    units = connections if s.load.keepalive else connections * per_connection
    flagged = 0
    for _ in range(TRIALS):
        served = dict.fromkeys(pods, 0)
        for pod in rng.choices(pods, weights=weights, k=units):
            served[pod] += per_connection if s.load.keepalive else 1
        verdict = decide(
            served,
            keepalive=s.load.keepalive,
            alpha=s.verify.significance,
            expected_pods=len(pods),
            connections=connections if s.load.keepalive else None,
        )
        flagged += verdict.outcome != "balanced"
    return flagged / TRIALS


@pytest.mark.slow
@pytest.mark.parametrize("stack", STACKS)
def test_verification_at_the_stacks_load_meets_the_error_rates(stack: str) -> None:
    s = stack_settings(stack)
    if not s.verify.enabled or s.load.mode != "job":
        pytest.skip(f"stack {stack} runs no verification")
    replicas = s.app.replicas
    if replicas < 2:
        pytest.skip(f"stack {stack} has one pod: nothing to balance")
    false_alarms = flagged_rate(s, (1.0,) * replicas, seed=1)
    detected = flagged_rate(s, (2.0,) + (1.0,) * (replicas - 1), seed=2)
    assert false_alarms <= 0.01, f"{stack}: false alarms {false_alarms:.2%} > 1%"
    assert detected >= 0.99, f"{stack}: 2:1:1 detected only {detected:.2%} < 99%"
