"""make e2e's assertions, on reports a real run of it produced on the local cluster
(tests/cluster/fixtures/real-e2e-*.json) and on those reports made wrong one way at a time."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from cluster.e2e import checks

FIXTURES = Path(__file__).parent / "fixtures"


def load(name: str) -> dict[str, Any]:
    return json.loads((FIXTURES / f"real-e2e-{name}.json").read_text())


def test_the_real_balanced_report_passes():
    line = checks.report_is_balanced(load("balanced"), 3)
    assert line.startswith("balanced over 3 pods")
    checks.fortio_without_errors(load("balanced"), 3000)


@pytest.mark.parametrize(
    ("spoil", "message"),
    [
        (lambda r: r.update(verdict="imbalanced"), "verdict 'imbalanced'"),
        (lambda r: r["pods"].pop(), "2 pods in the report, 3 expected"),
        (lambda r: r["pods"][0].update(requests=0), "served no request"),
        (lambda r: r["resources"].update(available=False), "no CPU/memory"),
        (lambda r: r["resources"].update(note="sampled after the load"), "not sampled under load"),
        (lambda r: r["pods"][1].update(resources_idle=None), "under load and idle"),
        (
            lambda r: r["pods"][2]["resources_idle"].update(cpu_mean_m=99.0),
            "is not above idle",
        ),
    ],
)
def test_each_spoiled_report_fails_with_its_reason(spoil, message):
    report = copy.deepcopy(load("balanced"))
    spoil(report)
    with pytest.raises(checks.CheckFailed, match=message):
        checks.report_is_balanced(report, 3)


def test_an_unpaced_step_needs_balance_and_figures_but_not_cpu_under_load():
    """The Redis and sticky steps run the load unpaced: usage read after it still passes there,
    an imbalance or a silent pod still fails, and the first deploy's check still refuses it."""
    after = copy.deepcopy(load("balanced"))
    after["resources"]["note"] = "the load had finished before verify ran: usage just after it"
    assert checks.report_is_balanced(after, 3, under_load=False).startswith("balanced over 3")
    with pytest.raises(checks.CheckFailed, match="not sampled under load"):
        checks.report_is_balanced(after, 3)
    for spoil, message in [
        (lambda r: r.update(verdict="imbalanced"), "verdict 'imbalanced'"),
        (lambda r: r["pods"][0].update(requests=0), "served no request"),
        (lambda r: r["resources"].update(available=False), "no CPU/memory"),
    ]:
        report = copy.deepcopy(after)
        spoil(report)
        with pytest.raises(checks.CheckFailed, match=message):
            checks.report_is_balanced(report, 3, under_load=False)


def test_fortio_errors_or_a_short_run_fail():
    report = copy.deepcopy(load("balanced"))
    with pytest.raises(checks.CheckFailed, match="3001 expected"):
        checks.fortio_without_errors(report, 3001)
    report["fortio"]["errors"] = 19
    report["fortio"]["ret_codes"] = {"-1": 19, "200": 2981}
    with pytest.raises(checks.CheckFailed, match="19 errors"):
        checks.fortio_without_errors(report, 3000)


def test_sticky_sessions_need_the_sticky_verdict():
    assert "each of 3 clients was served by one pod" in checks.report_is_sticky(load("sticky"))
    with pytest.raises(checks.CheckFailed, match="not-sticky"):
        checks.report_is_sticky({**load("sticky"), "verdict": "not-sticky"})
    # A uniformity verdict is not what sticky sessions promise.
    with pytest.raises(checks.CheckFailed, match="'balanced'"):
        checks.report_is_sticky(load("balanced"))


def test_views_must_be_consistent_with_the_shared_store():
    report = load("redis")
    assert checks.views_consistent(report).startswith("3000 successful requests, 3000 views")
    checks.report_is_balanced(report, 3)
    lost = copy.deepcopy(report)
    lost["consistency"].update(verdict="inconsistent", reason="2990 views for 3000 requests")
    with pytest.raises(checks.CheckFailed, match="'inconsistent': 2990 views"):
        checks.views_consistent(lost)
    # The stateless stack's report has no such check to pass.
    with pytest.raises(checks.CheckFailed, match="views"):
        checks.views_consistent({**load("balanced"), "consistency": {"verdict": "skipped"}})


class _Deployer:
    context = "selfheal-lb"

    def env(self) -> dict[str, str]:
        return {}


def _node_drill(monkeypatch, stdout: str, *, drain: bool) -> dict[str, Any]:
    seen: list[list[str]] = []

    def run(cmd, **_kw):
        seen.append(cmd)
        return checks.subprocess.CompletedProcess(cmd, 0, stdout, "")

    monkeypatch.setattr(checks.subprocess, "run", run)
    url = "http://10.199.1.1:8080/article1"
    out = checks.node_drill(_Deployer(), "ns", "app=x", "articles", url, drain=drain)
    assert ("--drain" in seen[0]) is drain and seen[0][seen[0].index("--node") + 1] == "auto"
    return out


@pytest.mark.parametrize("name", ["node-loss", "node-drain"])
def test_the_real_node_drills_pass(monkeypatch, name):
    report = load(name)
    assert _node_drill(monkeypatch, json.dumps(report), drain=name == "node-drain") == report


@pytest.mark.parametrize("name", ["node-loss", "node-drain"])
def test_a_node_drill_with_a_missed_goal_fails_with_its_reason(monkeypatch, name):
    report = load(name)
    report["goals"][0]["met"] = False
    report["reason"] = "a missed goal"
    with pytest.raises(checks.CheckFailed, match="node drill: a missed goal"):
        _node_drill(monkeypatch, json.dumps(report), drain=name == "node-drain")
    report = load(name)
    report["exit_code"] = 1
    with pytest.raises(checks.CheckFailed):
        _node_drill(monkeypatch, json.dumps(report), drain=name == "node-drain")


def test_a_node_drill_that_printed_no_json_fails_in_one_line(monkeypatch):
    with pytest.raises(checks.DeployError, match="node drill printed no JSON"):
        _node_drill(monkeypatch, "", drain=False)


def test_the_real_three_node_report_is_balanced_and_spread():
    report = load("three-nodes")
    assert checks.report_is_balanced(report, 3).startswith("balanced over 3 pods")
    assert checks.spread_over_nodes(report, 3, 3).startswith("3 nodes served traffic")


def test_the_first_report_must_come_from_as_many_nodes_as_the_spread_allows():
    report = {
        "nodes_served": 3,
        "nodes": [{"name": f"n{i}", "pods": [f"p{i}"], "requests": 100} for i in (1, 2, 3)],
    }
    assert checks.spread_over_nodes(report, 3, 3).startswith("3 nodes served")
    assert checks.spread_over_nodes(report, 3, 1).startswith("3 nodes")  # more is fine
    one_node = {"nodes_served": 1, "nodes": [{"name": "n1", "pods": ["a", "b", "c"]}]}
    assert checks.spread_over_nodes(one_node, 3, 1).startswith("1 node served")
    with pytest.raises(checks.CheckFailed, match="1 of 3 nodes served traffic, not 3"):
        checks.spread_over_nodes(one_node, 3, 3)
    two = {"nodes_served": 2, "nodes": [{"name": "n1", "pods": ["a", "b"]}, {"name": "n2"}]}
    assert checks.spread_over_nodes(two, 2, 3).startswith("2 nodes")
    with pytest.raises(checks.CheckFailed):
        checks.spread_over_nodes(two, 3, 3)
