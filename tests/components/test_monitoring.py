"""Scraping under the real program (mocks): annotations by default offline, a PodMonitor when the
operator's CRDs are there, a ServiceMonitor on request, nothing when off; the Prometheus
NetworkPolicy rule; the dashboard ConfigMap with the sidecar's label and the SDK-built JSON."""

from __future__ import annotations

import json
from typing import Any

import pytest

from components import dashboard, offline
from components.operator_probe import ENV_OVERRIDE

PROJECT = "selfheal-lb"
OPERATOR = "kubernetes:monitoring.coreos.com/v1:"
CONFIGMAP = "kubernetes:core/v1:ConfigMap"
POLICY = "kubernetes:networking.k8s.io/v1:NetworkPolicy"
SERVICE = "kubernetes:core/v1:Service"
SELECTOR = {"app.kubernetes.io/name": "articles", "app.kubernetes.io/instance": "dev"}


def run(**overrides: Any) -> offline.ProgramRun:
    config = {**offline.stack_config("dev"), **{f"{PROJECT}:{k}": v for k, v in overrides.items()}}
    return offline.run_program(config, stack="dev")


def monitors(r: offline.ProgramRun) -> list[offline.RecordedResource]:
    return [res for res in r.resources if res.type.startswith(OPERATOR)]


def pod_annotations(r: offline.ProgramRun) -> dict[str, str]:
    template = r.one("kubernetes:apps/v1:Deployment").inputs["spec"]["template"]
    return template["metadata"].get("annotations", {})


def test_offline_auto_means_annotations_and_no_cluster_is_asked(monkeypatch):
    monkeypatch.delenv(ENV_OVERRIDE, raising=False)
    r = run()
    assert pod_annotations(r) == {
        "prometheus.io/scrape": "true",
        "prometheus.io/port": "9090",
        "prometheus.io/path": "/metrics",
    }
    assert monitors(r) == []
    assert r.outputs["monitoring"] == "annotations"


def test_operator_present_means_a_pod_monitor_on_the_app_pods(monkeypatch):
    monkeypatch.setenv(ENV_OVERRIDE, "present")
    r = run(monitoringLabels=["release=kube-prometheus-stack"])
    (monitor,) = monitors(r)
    assert (monitor.inputs["apiVersion"], monitor.inputs["kind"]) == (
        "monitoring.coreos.com/v1",
        "PodMonitor",
    )
    assert monitor.inputs["metadata"]["namespace"] == "selfheal-lb-dev"
    assert monitor.inputs["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    assert monitor.inputs["spec"]["selector"] == {"matchLabels": SELECTOR}
    (endpoint,) = monitor.inputs["spec"]["podMetricsEndpoints"]
    assert endpoint["port"] == "metrics" and endpoint["path"] == "/metrics"
    # The named port exists on the app container, and is not the one behind the Service.
    container = r.one("kubernetes:apps/v1:Deployment").inputs["spec"]["template"]["spec"][
        "containers"
    ][0]
    assert {"name": "metrics", "containerPort": 9090, "protocol": "TCP"} in container["ports"]
    service = r.one("kubernetes:core/v1:Service").inputs
    assert [p["targetPort"] for p in service["spec"]["ports"]] == ["http"]
    assert pod_annotations(r) == {}
    assert r.outputs["monitoring"] == "podMonitor"


def test_service_monitor_selects_a_headless_metrics_service_not_the_load_balancer():
    r = run(monitoring="serviceMonitor")
    (monitor,) = monitors(r)
    assert monitor.inputs["kind"] == "ServiceMonitor"
    services = {s.inputs["metadata"]["name"]: s.inputs for s in r.of_type(SERVICE)}
    lb, metrics = services["articles"], services["articles-metrics"]
    selector = monitor.inputs["spec"]["selector"]["matchLabels"]
    assert selector.items() <= metrics["metadata"]["labels"].items()
    assert not selector.items() <= lb["metadata"]["labels"].items()
    assert metrics["spec"]["clusterIP"] == "None" and metrics["spec"]["type"] == "ClusterIP"
    assert metrics["spec"]["selector"] == SELECTOR
    (port,) = metrics["spec"]["ports"]
    assert (port["name"], port["port"], port["targetPort"]) == ("metrics", 9090, "metrics")
    assert monitor.inputs["spec"]["endpoints"][0]["port"] == "metrics"
    assert [p["targetPort"] for p in lb["spec"]["ports"]] == ["http"]


def test_off_adds_nothing():
    r = run(monitoring="off")
    assert pod_annotations(r) == {}
    assert monitors(r) == [] and r.of_type(CONFIGMAP) == []
    assert all("prometheus" not in p.inputs["metadata"]["name"] for p in r.of_type(POLICY))


def test_prometheus_namespace_may_reach_the_metrics_port_only():
    r = run()
    (policy,) = [
        p for p in r.of_type(POLICY) if p.inputs["metadata"]["name"] == "articles-prometheus"
    ]
    spec = policy.inputs["spec"]
    assert spec["podSelector"] == {"matchLabels": SELECTOR}
    assert spec["policyTypes"] == ["Ingress"]
    (rule,) = spec["ingress"]
    assert rule["from"] == [
        {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}
    ]
    assert rule["ports"] == [{"protocol": "TCP", "port": 9090}]
    for overrides in ({"prometheusNamespace": ""}, {"networkPolicy": False}):
        names = [p.inputs["metadata"]["name"] for p in run(**overrides).of_type(POLICY)]
        assert "articles-prometheus" not in names


def test_dashboard_configmap_carries_the_sidecar_label_and_the_sdk_json():
    cm = run().one(CONFIGMAP).inputs
    assert cm["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert cm["metadata"]["namespace"] == "selfheal-lb-dev"
    document = cm["data"][dashboard.FILE_NAME]
    assert document == dashboard.dashboard_json("selfheal-lb-dev")
    parsed = json.loads(document)
    assert parsed["uid"] == dashboard.UID
    namespace_var = next(v for v in parsed["templating"]["list"] if v["name"] == "namespace")
    assert namespace_var["current"]["value"] == "selfheal-lb-dev"
    # Every query names the namespace variable and uses the dashboard's data source.
    for panel in parsed["panels"]:
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
        for target in panel["targets"]:
            assert 'namespace="$namespace"' in target["expr"]


def test_dashboard_elsewhere_or_not_at_all():
    elsewhere = run(grafanaDashboardNamespace="monitoring").one(CONFIGMAP).inputs
    assert elsewhere["metadata"]["namespace"] == "monitoring"
    # The preset namespace stays the stack's, whose pods the dashboard shows.
    assert '"value": "selfheal-lb-dev"' in elsewhere["data"][dashboard.FILE_NAME]
    assert run(grafanaDashboard=False).of_type(CONFIGMAP) == []


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        (
            "monitoring",
            "prometheus",
            "must be one of auto, podMonitor, serviceMonitor, annotations, off",
        ),
        ("monitoringLabels", ["release"], "'release' is not key=value with a valid label"),
        ("prometheusNamespace", "Monitoring", "must be a namespace name"),
        ("grafanaDashboardNamespace", "-x", "must be a namespace name"),
    ],
)
def test_bad_monitoring_config_is_one_line(key, value, message):
    with pytest.raises(offline.ProgramFailed) as failed:
        run(**{key: value})
    (line,) = failed.value.errors
    assert line.startswith(f"config 'selfheal-lb:{key}' is ") and message in line
