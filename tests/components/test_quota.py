"""The namespace quota: the arithmetic at its boundaries (HPA maximum, rollout surge, drill,
terminating pods, fortio), the objects the stack declares, and the one-line refusal of a config
that cannot fit, before any resource exists."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

import pulumi
import pytest

from components import offline
from components.quota import PodShape, cpu_text, memory_text, quota_hard
from components.settings import ConfigError, Resources, Settings, load_settings
from components.sizing import check_fits, namespace_need, single_pod_shape

PROJECT = "selfheal-lb"
MI = 2**20


def config(**overrides: Any) -> dict[str, Any]:
    return {**offline.stack_config("dev"), **{f"{PROJECT}:{k}": v for k, v in overrides.items()}}


def settings(**overrides: Any) -> Settings:
    values = offline._as_config_strings(config(**overrides))
    pulumi.runtime.set_all_config(values, secret_keys=[])
    return load_settings(pulumi.Config(PROJECT), project=PROJECT, stack="dev", app_dir=Path("app"))


def test_dev_stack_quota_is_the_worst_moment_written_out():
    need = namespace_need(settings())
    # app: HPA max 10, every pod replaced once (10 terminating), 1 surge, 1 drill = 22 pods of
    # 100m/500m CPU and 128Mi/256Mi; fortio: 3 pods of a run plus 3 of a run being replaced,
    # each 100m/1 CPU and 32Mi/256Mi.
    assert quota_hard(need) == {
        "pods": "28",
        "requests.cpu": "2800m",  # 22 x 100m + 6 x 100m
        "requests.memory": "3008Mi",  # 22 x 128Mi + 6 x 32Mi
        "limits.cpu": "17",  # 22 x 500m + 6 x 1
        "limits.memory": "7Gi",  # 28 x 256Mi
    }


def test_each_boundary_adds_exactly_its_pods():
    base = namespace_need(settings()).pods
    assert namespace_need(settings(hpaMaxReplicas=11)).pods == base + 2  # serving + terminating
    assert namespace_need(settings(quotaDrillPods=3)).pods == base + 2
    assert namespace_need(settings(quotaDrillPods=0)).pods == base - 1
    assert namespace_need(settings(loadgenPods=4)).pods == base + 2
    assert namespace_need(settings(loadgenMode="off", verifyEnabled=False)).pods == base - 6


def test_without_an_hpa_the_replica_count_is_the_maximum():
    no_hpa = namespace_need(settings(hpaEnabled=False, appReplicas=4))
    assert no_hpa.shapes[0].count == 2 * 4 + 1 + 1
    # No metrics server: no HPA either, whatever hpaEnabled says.
    no_metrics = namespace_need(settings(appReplicas=4), metrics_available=False)
    assert no_metrics.shapes[0].count == 10
    # More replicas than the HPA maximum (a lower hpaMinReplicas): the first rollout runs them.
    many = namespace_need(settings(appReplicas=12, hpaMinReplicas=2, hpaMaxReplicas=10))
    assert many.shapes[0].count == 2 * 12 + 1 + 1


def test_a_drill_cannot_delete_more_pods_than_run():
    need = namespace_need(settings(hpaEnabled=False, appReplicas=2, quotaDrillPods=5))
    assert need.shapes[0].count == 2 * 2 + 1 + 2


def test_continuous_fortio_counts_its_rolling_update_surge():
    need = namespace_need(
        settings(loadgenMode="continuous", loadgenQps=10, loadgenPods=5, verifyEnabled=False)
    )
    fortio = need.shapes[1]
    assert fortio.count == 2 * 5 + 2  # 25 % of 5 rounds up to 2


def test_extra_pods_such_as_redis_are_held_too():
    redis = single_pod_shape("redis", "200m", "128Mi")
    plain, with_redis = namespace_need(settings()), namespace_need(settings(), [redis])
    assert with_redis.pods == plain.pods + 2  # the pod and its replacement while it terminates
    assert with_redis.limits_cpu - plain.limits_cpu == Decimal("0.4")
    assert with_redis.requests_memory - plain.requests_memory == 256 * MI
    sidecar = PodShape("x", 1, (Resources("10m", "20m", "1Mi", "2Mi"),) * 2)  # two containers
    assert namespace_need(settings(), [sidecar]).limits_cpu - plain.limits_cpu == Decimal("0.04")


def test_a_ceiling_exactly_at_the_need_is_accepted_and_one_millicore_less_refused():
    s = settings(quotaMaxCpu="17", quotaMaxMemory="7Gi")
    check_fits(s, namespace_need(s))
    tight = settings(quotaMaxCpu="16999m")
    with pytest.raises(ConfigError) as refused:
        check_fits(tight, namespace_need(tight))
    message = str(refused.value)
    assert "\n" not in message
    assert message.startswith("config 'selfheal-lb:quotaMaxCpu' is '16999m': the stack needs 17")
    assert "1m more" in message
    assert "app 22 pods (2 x 10 + 1 surge + 1 drill) x 500m" in message


def test_memory_ceiling_says_by_how_much():
    s = settings(quotaMaxMemory="6Gi")
    with pytest.raises(ConfigError, match=r"needs 7Gi of limits .*, 1Gi more; raise"):
        check_fits(s, namespace_need(s))


def test_bad_ceilings_are_config_errors():
    with pytest.raises(ConfigError, match="quotaMaxCpu' is 'lots'"):
        settings(quotaMaxCpu="lots")
    with pytest.raises(ConfigError, match="quotaDrillPods' is '51'"):
        settings(quotaDrillPods=51)


def test_quantities_print_exactly():
    assert cpu_text(Decimal("2.8")) == "2800m" and cpu_text(Decimal(17)) == "17"
    assert memory_text(Decimal(3008 * MI)) == "3008Mi" and memory_text(Decimal(7 * 2**30)) == "7Gi"
    assert memory_text(Decimal(1000)) == "1000"


# --- under the program (mocks) -------------------------------------------------------------


def test_the_stack_declares_the_quota_and_limit_range_before_the_app_pods():
    run = offline.run_program(config(), stack="dev")
    quota = run.one("kubernetes:core/v1:ResourceQuota")
    limits = run.one("kubernetes:core/v1:LimitRange")
    assert quota.inputs["metadata"]["namespace"] == "selfheal-lb-dev"
    assert quota.inputs["spec"]["hard"]["pods"] == "28"
    (container,) = limits.inputs["spec"]["limits"]
    assert container["type"] == "Container"
    assert container["default"] == {"cpu": "500m", "memory": "256Mi"}
    assert container["defaultRequest"] == {"cpu": "100m", "memory": "128Mi"}
    # The cap is the largest limits any of the stack's containers has (fortio's 1 CPU).
    assert container["max"] == {"cpu": "1", "memory": "256Mi"}
    deployment = run.one("kubernetes:apps/v1:Deployment")
    # The Deployment waits for both (depending on the component means on its children).
    assert {quota.urn, limits.urn} <= set(deployment.dependencies)


def test_limit_range_cap_follows_the_largest_container():
    run = offline.run_program(config(appCpuLimit="2", appMemoryLimit="1Gi"), stack="dev")
    (container,) = run.one("kubernetes:core/v1:LimitRange").inputs["spec"]["limits"]
    assert container["max"] == {"cpu": "2", "memory": "1Gi"}


def test_the_quota_is_an_output():
    run = offline.run_program(config(), stack="dev")
    assert (
        run.outputs["namespaceQuota"]
        == run.one("kubernetes:core/v1:ResourceQuota").inputs["spec"]["hard"]
    )


def test_quota_off_declares_neither():
    run = offline.run_program(config(quotaEnabled=False), stack="dev")
    assert run.outputs["namespaceQuota"] == {}
    assert run.of_type("kubernetes:core/v1:ResourceQuota") == []
    assert run.of_type("kubernetes:core/v1:LimitRange") == []


def test_a_config_that_cannot_fit_stops_the_program_with_one_line_and_registers_nothing():
    recorded: list[str] = []

    def spy(rec: offline.RecordedResource) -> dict[str, Any]:
        recorded.append(rec.type)
        return {}

    with pytest.raises(offline.ProgramFailed) as failed:
        offline.run_program(config(quotaMaxCpu="10"), stack="dev", fake_outputs=spy)
    (line,) = failed.value.errors
    assert line.startswith("config 'selfheal-lb:quotaMaxCpu' is '10': the stack needs 17 of")
    assert ", 7 more; raise quotaMaxCpu or lower hpaMaxReplicas" in line
    assert recorded == []


def test_the_program_holds_its_redis_in_the_quota():
    """stateStore redis adds the store's pod (and its replacement) to what the quota holds."""
    config = offline.stack_config("dev")
    without = offline.run_program(config, stack="dev").outputs["namespaceQuota"]
    config["selfheal-lb:stateStore"] = "redis"
    config["selfheal-lb:stateStoreCpu"] = "250m"
    config["selfheal-lb:stateStoreMemory"] = "128Mi"
    with_redis = offline.run_program(config, stack="dev").outputs["namespaceQuota"]
    assert int(with_redis["pods"]) == int(without["pods"]) + 2
    from kubernetes.utils import parse_quantity

    added = parse_quantity(with_redis["limits.cpu"]) - parse_quantity(without["limits.cpu"])
    assert added == Decimal("0.5")  # two Redis pods of 250m while one replaces the other
