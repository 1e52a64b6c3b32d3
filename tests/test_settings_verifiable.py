"""The settings refuse a load too small to verify the configured replicas (one line naming the
smallest load that would do), and the stack and the CLI share one default significance."""

from __future__ import annotations

import random
import re
import subprocess
import sys

import pytest
from stack_fixtures import ROOT
from test_settings import dev

from components.settings import CONFIG_SPEC, ConfigError
from loadgen.verdict import DEFAULT_ALPHA, decide, smallest_verifiable_units


def refused(**overrides) -> str:
    with pytest.raises(ConfigError) as caught:
        dev(**overrides)
    message = str(caught.value)
    assert "\n" not in message
    return message


def test_fifty_replicas_with_the_default_load_are_refused_naming_the_smallest_load():
    message = refused(appReplicas=50, hpaMaxReplicas=50)
    assert message.startswith("config 'selfheal-lb:loadgenConnections' is '100': too small")
    need = smallest_verifiable_units(50, 0.005)
    assert f"the smallest load that would do is {need} in all" in message
    per_pod = int(re.search(r"e\.g\. loadgenConnections (\d+)", message).group(1))
    assert per_pod * 3 >= need > (per_pod - 1) * 3
    # What it suggests is accepted; one connection per pod less is not.
    dev(appReplicas=50, hpaMaxReplicas=50, loadgenConnections=per_pod)
    refused(appReplicas=50, hpaMaxReplicas=50, loadgenConnections=per_pod - 1)


def test_without_keepalive_the_requests_are_the_units():
    message = refused(appReplicas=50, hpaMaxReplicas=50, loadgenKeepalive=False,
                      loadgenRequests=100)  # fmt: skip
    assert message.startswith("config 'selfheal-lb:loadgenRequests' is '100': too small")
    dev(appReplicas=50, hpaMaxReplicas=50, loadgenKeepalive=False, loadgenRequests=1000)


def test_sticky_sessions_and_no_verification_are_not_refused():
    dev(appReplicas=50, hpaMaxReplicas=50, sessionAffinity="ClientIP")
    dev(appReplicas=50, hpaMaxReplicas=50, verifyEnabled=False)


def test_at_the_smallest_accepted_load_a_pod_that_got_nothing_is_always_caught():
    """The refusal and the verdict agree: at the smallest load the settings accept, a dead pod
    among 50 is flagged in every simulated run (per-connection assignment over 49 pods)."""
    need = smallest_verifiable_units(50, DEFAULT_ALPHA)
    rng = random.Random(11)
    pods = [f"articles-{i:02d}" for i in range(50)]
    for _ in range(200):
        served = dict.fromkeys(pods, 0)
        for pod in rng.choices(pods[1:], k=need):
            served[pod] += 10
        verdict = decide(served, keepalive=True, alpha=DEFAULT_ALPHA, expected_pods=50,
                         connections=need)  # fmt: skip
        assert verdict.outcome == "imbalanced" and pods[0] in verdict.reason


def test_one_default_significance_for_the_stack_and_the_cli():
    assert float(CONFIG_SPEC["verifySignificance"][1]) == DEFAULT_ALPHA
    helptext = subprocess.run(
        [sys.executable, "-m", "loadgen", "verify", "--help"], cwd=ROOT, capture_output=True,
        text=True, timeout=60, check=True,
    ).stdout  # fmt: skip
    assert f"(default {DEFAULT_ALPHA})" in " ".join(helptext.split())
