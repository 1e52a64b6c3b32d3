"""Stack config → Settings: the dev stack's values, Pulumi.yaml in step with the parser, and a
table of bad values that each fail with one line naming the key, the value and what is allowed."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pulumi
import pytest
import yaml
from stack_fixtures import PROJECT, ROOT, dev_config, qualified

from components import offline
from components.settings import (
    CONFIG_SPEC,
    SECRET_KEYS,
    ConfigError,
    Settings,
    load_settings,
)


def settings_from(config: dict[str, Any], *, stack: str = "dev", secret: dict | None = None):
    values = offline._as_config_strings({**config, **qualified(secret or {})})
    pulumi.runtime.set_all_config(values, secret_keys=list(qualified(secret or {})))
    return load_settings(
        pulumi.Config(PROJECT),
        project=PROJECT,
        stack=stack,
        app_dir=Path("app"),
        present_keys=list(values),
    )


def dev(**overrides: Any) -> Settings:
    return settings_from(dev_config(**overrides))


def test_dev_stack_is_the_minikube_walkthrough():
    s = dev()
    assert s.app.replicas == 3
    assert (s.app.service_type, s.app.service_port) == ("LoadBalancer", 8080)
    assert s.metrics_server.mode == "auto" and s.metrics_server.kubelet_insecure_tls
    load = s.load
    assert (load.mode, load.pods, load.connections, load.requests) == ("job", 3, 100, 1000)
    assert load.path == "/article1"
    assert s.cluster.namespace == "selfheal-lb-dev"
    assert s.image.context_dir == "app" and not s.image.push
    assert s.verify.enabled and s.verify.significance == 0.005


def test_pulumi_yaml_declares_every_key_with_the_parsers_type_and_default():
    project = yaml.safe_load((ROOT / "Pulumi.yaml").read_text())
    assert project["name"] == PROJECT
    assert project["runtime"] == {
        "name": "python",
        "options": {"toolchain": "pip", "virtualenv": "venv"},
    }
    declared = project["config"]
    assert set(declared) == set(CONFIG_SPEC)
    for key, (kind, default) in CONFIG_SPEC.items():
        spec = declared[key]
        assert spec["type"] == kind, key
        assert spec["description"].strip(), key
        want = list(default) if isinstance(default, tuple) else default
        assert spec["default"] == want, key
        if kind == "array":
            assert spec["items"] == {"type": "string"}
    # A declared secret could not have a default and would be required of every stack.
    assert not set(SECRET_KEYS) & set(declared)


def test_defaults_alone_make_valid_settings():
    s = settings_from({})
    assert s.app.replicas == 3 and s.autoscaling.min_replicas == 3
    assert s.app.ingress_cidrs == ("0.0.0.0/0",)


def test_pods_leave_a_lost_node_after_5_s_unless_the_stack_says_otherwise():
    """Kubernetes' own 300 s would keep a lost node's pods unreplaced for five minutes."""
    assert settings_from({}).app.node_loss_toleration_seconds == 5
    assert dev(nodeLossTolerationSeconds=0).app.node_loss_toleration_seconds == 0
    assert dev(nodeLossTolerationSeconds="120").app.node_loss_toleration_seconds == 120


def test_hpa_min_zero_means_app_replicas_and_namespace_comes_from_the_stack():
    s = settings_from(dev_config(appReplicas=5), stack="Feature_Branch.2")
    assert s.autoscaling.min_replicas == 5
    assert s.cluster.namespace == "selfheal-lb-feature-branch-2"


def test_push_with_registry_credentials():
    s = settings_from(
        dev_config(
            imagePush=True,
            imagePullPolicy="Always",
            imageRepository="ghcr.io/me/articles",
            imageRegistryServer="ghcr.io",
            imageRegistryUsername="me",
        ),
        secret={"imageRegistryPassword": "token"},
    )
    assert s.image.push and s.image.registry_password_set and s.image.registry_username == "me"


def test_prebuilt_reference_by_digest():
    ref = "ghcr.io/me/articles@sha256:" + "a" * 64
    assert dev(imageRef=ref).image.prebuilt_ref == ref


# (overrides, fragment of what is allowed)
BAD_VALUES: list[tuple[dict[str, Any], str]] = [
    ({"appReplicas": 0}, "an integer from 1 to 50"),
    ({"appReplicas": 51}, "an integer from 1 to 50"),
    ({"appReplicas": "three"}, "an integer from 1 to 50"),
    ({"appReplicas": 2.5}, "an integer from 1 to 50"),
    ({"appWorkers": 0}, "an integer from 1 to 16"),
    ({"imageRepository": ""}, "must name a repository"),
    ({"imageRepository": "Selfheal/Articles"}, "lower-case repository name"),
    ({"imageRepository": "selfheal-lb/articles:v1"}, "without a tag"),
    ({"imageRef": "ghcr.io/me/articles:latest"}, "tag not 'latest'"),
    ({"imageRef": "ghcr.io/me/articles"}, "tag not 'latest'"),
    ({"imageRef": "ghcr.io/me/articles@sha256:123"}, "@sha256:<digest>"),
    ({"imagePullPolicy": "Sometimes"}, "one of IfNotPresent, Never, Always"),
    ({"imagePullPolicy": "Always"}, "IfNotPresent or Never when imagePush is false"),
    ({"imagePush": "yes"}, "true or false"),
    ({"imageRegistryServer": "", "imagePush": True}, "must name the registry host"),
    (
        {"imageRegistryUsername": "me", "imagePush": True, "imageRegistryServer": "ghcr.io"},
        "together with the secret imageRegistryPassword",
    ),
    ({"imagePush": True, "imageRef": "ghcr.io/me/articles:v1"}, "false when imageRef is set"),
    ({"imageBase": "python:latest"}, "tag not 'latest'"),
    ({"imageBase": "python:3.11", "imageRef": "ghcr.io/me/articles:v1"}, "empty when imageRef"),
    ({"imageLoadCommand": "kind load", "imageRef": "ghcr.io/me/a:v1"}, "empty when imageRef"),
    ({"loadgenImage": "fortio/fortio"}, "tag not 'latest'"),
    ({"loadgenImage": "fortio/fortio:latest"}, "tag not 'latest'"),
    ({"namespace": "Bad_Namespace"}, "DNS-1123 label"),
    ({"appCpuRequest": "100x"}, "positive Kubernetes quantity"),
    ({"appCpuLimit": "-1"}, "positive Kubernetes quantity"),
    ({"appMemoryLimit": "256MB"}, "positive Kubernetes quantity"),
    ({"appCpuRequest": "1", "appCpuLimit": "500m"}, "must not exceed appCpuLimit (500m)"),
    ({"appMemoryRequest": "1Gi", "appMemoryLimit": "256Mi"}, "must not exceed appMemoryLimit"),
    ({"drainSeconds": -1}, "an integer from 0 to 60"),
    (
        {"terminationGracePeriodSeconds": 35, "drainSeconds": 15},
        "must exceed 2*drainSeconds+5 = 35",
    ),
    ({"terminationGracePeriodSeconds": -5}, "an integer from 1 to 3600"),
    ({"serviceType": "Ingress"}, "one of LoadBalancer, NodePort, ClusterIP"),
    ({"servicePort": 0}, "an integer from 1 to 65535"),
    ({"servicePort": 70000}, "an integer from 1 to 65535"),
    ({"sessionAffinity": "Cookie"}, "one of None, ClientIP"),
    ({"pdbMaxUnavailable": 0}, "an integer from 1 to 2"),
    ({"pdbMaxUnavailable": 3}, "below appReplicas=3"),
    ({"nodeLossTolerationSeconds": -1}, "an integer from 0 to 3600"),
    ({"nodeLossTolerationSeconds": 3601}, "an integer from 0 to 3600"),
    ({"nodeLossTolerationSeconds": "5s"}, "an integer from 0 to 3600"),
    ({"ingressAllowedCidrs": ["10.0.0.0/33"]}, "is not a CIDR"),
    ({"ingressAllowedCidrs": "0.0.0.0/0"}, "a list of strings"),
    ({"clusterPodCidrs": ["10.244.0.0/33"]}, "is not a CIDR"),
    ({"clusterPodCidrs": ["10.244.0.1/16"]}, "is not a CIDR"),
    ({"hpaMaxReplicas": 2}, "at least hpaMinReplicas=3"),
    ({"hpaMaxReplicas": 51}, "from 3 to 50"),
    ({"hpaCpuUtilization": 0}, "an integer from 1 to 100"),
    ({"metricsServerEnabled": "yes"}, "must be auto, true or false"),
    ({"loadgenMode": "burst"}, "one of job, continuous, off"),
    ({"loadgenPods": 0}, "an integer from 1 to 50"),
    ({"loadgenConnections": 0}, "an integer from 1 to 10000"),
    ({"loadgenRequests": 99}, "at least loadgenConnections"),
    ({"loadgenQps": -1}, "an integer from 0 to 100000"),
    (
        {"loadgenQps": 0, "loadgenMode": "continuous", "verifyEnabled": False},
        "at least 1 when loadgenMode is continuous",
    ),
    ({"loadgenPath": "article1"}, "must start with '/'"),
    ({"loadgenPath": "/article 1"}, "must start with '/'"),
    ({"loadgenTimeoutSeconds": 0}, "an integer from 1 to 120"),
    (
        {"verifyEnabled": True, "loadgenMode": "continuous", "loadgenQps": 10},
        "needs loadgenMode job",
    ),
    ({"verifySignificance": "0.5"}, "between 0 and 0.5"),
    ({"verifySignificance": "zero"}, "between 0 and 0.5"),
    ({"verifyTimeoutSeconds": -1}, "an integer from 10 to 3600"),
    ({"verifyFailOnImbalance": "maybe"}, "true or false"),
]


@pytest.mark.parametrize(("overrides", "allowed"), BAD_VALUES, ids=lambda v: str(v)[:60])
def test_bad_value_fails_with_one_line_naming_key_value_and_what_is_allowed(overrides, allowed):
    """The first key of `overrides` is the one at fault; its value is shown as it was given."""
    with pytest.raises(ConfigError) as caught:
        dev(**overrides)
    message = str(caught.value)
    assert "\n" not in message
    key, value = next(iter(overrides.items()))
    given = offline._as_config_strings({key: value})[key]
    assert message.startswith(f"config '{PROJECT}:{key}' is '{given}': "), message
    assert allowed in message


def test_misspelt_key_is_named_with_a_suggestion():
    with pytest.raises(ConfigError, match=r"'selfheal-lb:appReplica' is not a key.*'appReplicas'"):
        dev(appReplica=3)


@pytest.mark.parametrize(
    ("given", "mode"), [(True, "true"), (False, "false"), ("auto", "auto"), ("TRUE", "true")]
)
def test_metrics_server_enabled_takes_auto_and_the_old_booleans(given, mode):
    """Stack files written when the key was a boolean keep working."""
    assert dev(metricsServerEnabled=given).metrics_server.mode == mode


def test_the_retired_metrics_server_present_key_says_what_replaced_it():
    with pytest.raises(ConfigError) as caught:
        dev(metricsServerPresent=True)
    assert str(caught.value) == (
        "config 'selfheal-lb:metricsServerPresent' is no longer used: the stack now detects the "
        "cluster's metrics-server itself: remove this key (metricsServerEnabled auto uses the "
        "one that is there)"
    )


def test_config_error_is_a_run_error_so_the_language_host_prints_no_traceback():
    assert issubclass(ConfigError, pulumi.RunError)


def test_kubelet_tls_is_checked_unless_a_local_clusters_stack_says_otherwise():
    """metricsServerInsecureTls defaults to false (a managed cluster's kubelets have signed
    certificates); only the local clusters' stacks, whose kubelets' are self-signed, set it."""
    assert CONFIG_SPEC["metricsServerInsecureTls"] == ("boolean", False)
    assert settings_from(offline.stack_config("dev", ROOT)).metrics_server.kubelet_insecure_tls
    for stack in ("dev", "kind", "local"):
        declared = yaml.safe_load((ROOT / f"Pulumi.{stack}.yaml").read_text())["config"]
        assert declared[f"{PROJECT}:metricsServerInsecureTls"] is True, stack
    bare = {k: v for k, v in dev_config().items() if not k.endswith(":metricsServerInsecureTls")}
    assert settings_from(bare).metrics_server.kubelet_insecure_tls is False


def test_cluster_pod_cidrs_are_read_for_the_policies():
    s = dev(clusterPodCidrs=["10.244.0.0/16", "fd00:10:244::/56"])
    assert s.app.pod_cidrs == ("10.244.0.0/16", "fd00:10:244::/56")
    assert settings_from(offline.stack_config("local", ROOT)).app.pod_cidrs == ("10.244.0.0/16",)
