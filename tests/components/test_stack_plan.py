"""The decisions the program takes before it declares anything (components/stack_plan.py):
which metrics-server, which monitoring, how big a quota; each mistake one line, before any
resource exists."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pulumi
import pytest

from components import metrics_plan, offline, stack_plan
from components.chart_cache import ChartUnavailable
from components.metrics_api import ABSENT, CLUSTER_ADDON, MetricsApiState
from components.operator_probe import Resolution
from components.settings import ConfigError, Settings, load_settings

PROJECT = "selfheal-lb"
ANNOTATIONS = Resolution("annotations", "", False)


def settings(**overrides: Any) -> Settings:
    config = {**offline.stack_config("dev"), **{f"{PROJECT}:{k}": v for k, v in overrides.items()}}
    pulumi.runtime.set_all_config(offline._as_config_strings(config), secret_keys=[])
    return load_settings(pulumi.Config(PROJECT), project=PROJECT, stack="dev", app_dir=Path("app"))


def plan(
    s: Settings,
    api: MetricsApiState = CLUSTER_ADDON,
    monitoring: Resolution = ANNOTATIONS,
) -> stack_plan.StackPlan:
    return stack_plan.plan_stack(
        s, detect=lambda _ctx: api, resolve_monitoring=lambda *_a, **_k: monitoring
    )


def test_a_cluster_with_its_own_metrics_server_gets_none_installed():
    p = plan(settings())
    assert p.metrics_chart is None and p.metrics.metrics_available
    assert p.monitoring == "annotations"


def test_a_cluster_without_metrics_gets_the_pinned_chart(monkeypatch, tmp_path: Path):
    monkeypatch.setattr(metrics_plan, "chart_path", lambda: tmp_path)
    p = plan(settings(metricsServerEnabled="auto"), api=ABSENT)
    assert p.metrics_chart == tmp_path and p.metrics.install


def test_a_chart_that_cannot_be_had_is_one_line(monkeypatch):
    def unavailable() -> Path:
        raise ChartUnavailable("metrics-server chart 3.13.0: no network")

    monkeypatch.setattr(metrics_plan, "chart_path", unavailable)
    with pytest.raises(ConfigError, match=r"^metrics-server chart 3\.13\.0: no network$"):
        plan(settings(metricsServerEnabled="true"), api=ABSENT)


def test_installing_beside_another_metrics_server_is_refused_in_one_line():
    with pytest.raises(ConfigError) as err:
        plan(settings(metricsServerEnabled="true"), api=CLUSTER_ADDON)
    assert "\n" not in str(err.value) and "metrics" in str(err.value)


def test_a_probe_that_could_not_tell_warns_and_a_plain_note_informs():
    warned = plan(settings(), monitoring=Resolution("annotations", "probe timed out", True))
    assert "probe timed out" in warned.warnings and warned.notes == ()
    noted = plan(settings(), monitoring=Resolution("podMonitor", "found the CRDs", False))
    assert noted.notes == ("found the CRDs",) and noted.monitoring == "podMonitor"


def test_the_quota_holds_the_store_pod_when_there_is_one():
    without = plan(settings(quotaEnabled=True))
    with_store = plan(settings(quotaEnabled=True, stateStore="redis"))
    assert with_store.quota is not None and without.quota is not None
    assert with_store.quota.need.pods == without.quota.need.pods + 2  # one, and its replacement
    assert "redis" in {shape.name for shape in with_store.quota.need.shapes}


def test_no_quota_when_it_is_off_and_a_ceiling_too_low_is_refused_before_anything_exists():
    assert plan(settings(quotaEnabled=False)).quota is None
    with pytest.raises(ConfigError, match=r"quotaMaxCpu.*more; raise quotaMaxCpu"):
        plan(settings(quotaEnabled=True, quotaMaxCpu="1"))
