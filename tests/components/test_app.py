"""ArticleApp under Pulumi mocks: every object it declares and the properties a user relies on."""

from __future__ import annotations

import sys
from typing import Any

import pytest

from components.app import (
    TYPE_TOKEN,
    app_drain_seconds,
    graceful_timeout_seconds,
    load_balancer_address,
)
from components.settings import AppSettings, Resources

APP_SELECTOR = {"app.kubernetes.io/name": "articles", "app.kubernetes.io/instance": "dev"}
FORTIO_SELECTOR = {"app.kubernetes.io/name": "fortio", "app.kubernetes.io/instance": "dev"}


def selects(selector: dict[str, str], pod_labels: dict[str, str]) -> bool:
    return bool(selector) and all(pod_labels.get(k) == v for k, v in selector.items())


def container(run) -> dict[str, Any]:
    containers = run.one("Deployment").inputs["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1
    return containers[0]


def env_of(c: dict[str, Any]) -> dict[str, Any]:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in c["env"]}


def app_settings(drain: int, grace: int) -> AppSettings:
    return AppSettings(
        replicas=3,
        workers=2,
        resources=Resources("100m", "500m", "128Mi", "256Mi"),
        drain_seconds=drain,
        termination_grace_seconds=grace,
        service_type="LoadBalancer",
        service_port=8080,
        session_affinity="None",
        pdb_max_unavailable=1,
        network_policy=True,
        ingress_cidrs=("0.0.0.0/0",),
        node_loss_toleration_seconds=5,
    )


# --- the component and its children -------------------------------------------------------


def test_declares_every_object_once_all_parented_to_the_component(run_app):
    run = run_app()
    component = [r for r in run.resources if r.type == TYPE_TOKEN]
    assert len(component) == 1 and component[0].name == "app"
    children = [r for r in run.resources if r.parent_type == TYPE_TOKEN]
    assert sorted(r.inputs["kind"] for r in children) == [
        "Deployment",
        "HorizontalPodAutoscaler",
        "NetworkPolicy",
        "PodDisruptionBudget",
        "Service",
    ]
    for r in children:
        assert r.parent_name == "app", r.name
        assert r.inputs["metadata"]["namespace"] == "selfheal-lb-dev", r.name


# --- Deployment --------------------------------------------------------------------------


def test_deployment_replicas_rollout_image_and_labels(run_app):
    run = run_app(settings={"replicas": 4}, image_ref="reg/articles:abc123", pull_policy="Never")
    spec = run.one("Deployment").inputs["spec"]
    assert spec["replicas"] == 4
    assert spec["strategy"] == {
        "type": "RollingUpdate",
        "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1},
    }
    assert spec["selector"]["matchLabels"] == APP_SELECTOR
    pod_labels = spec["template"]["metadata"]["labels"]
    assert pod_labels == {
        **APP_SELECTOR,
        "app.kubernetes.io/part-of": "selfheal-lb",
        "app.kubernetes.io/component": "web",
    }
    c = container(run)
    assert c["image"] == "reg/articles:abc123"
    assert c["imagePullPolicy"] == "Never"
    assert c["ports"] == [
        {"name": "http", "containerPort": 8080, "protocol": "TCP"},
        {"name": "metrics", "containerPort": 9090, "protocol": "TCP"},
    ]
    env = {e["name"]: e.get("value") for e in c["env"]}
    assert env["METRICS_PORT"] == "9090"


def test_the_service_never_carries_the_metrics_port(run_app):
    """The LoadBalancer exposes the pages only: /metrics is on a port no Service names."""
    for svc in run_app().kind("Service"):
        ports = svc.inputs["spec"]["ports"]
        assert [p["targetPort"] for p in ports] == ["http"]
        assert all(p["port"] != 9090 for p in ports)


def test_probes_hit_the_health_endpoints_on_the_named_port(run_app):
    c = container(run_app())
    assert c["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert c["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    assert c["startupProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    startup = c["startupProbe"]
    # The startup probe, not liveness, covers boot: at least 30 s before a restart.
    assert startup["periodSeconds"] * startup["failureThreshold"] >= 30
    for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
        assert c[probe]["timeoutSeconds"] <= c[probe]["periodSeconds"]


def test_requests_and_limits_come_from_settings(run_app):
    resources = {
        "cpu_request": "250m",
        "cpu_limit": "1",
        "memory_request": "64Mi",
        "memory_limit": "512Mi",
    }
    c = container(run_app(settings={"resources": resources}))
    assert c["resources"] == {
        "requests": {"cpu": "250m", "memory": "64Mi"},
        "limits": {"cpu": "1", "memory": "512Mi"},
    }


def test_pod_runs_restricted_non_root_read_only_with_tmp_writable(run_app):
    run = run_app()
    pod = run.one("Deployment").inputs["spec"]["template"]["spec"]
    assert pod["securityContext"] == {
        "runAsNonRoot": True,
        "runAsUser": 10001,
        "runAsGroup": 10001,
        "fsGroup": 10001,
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    assert pod["automountServiceAccountToken"] is False
    sc = container(run)["securityContext"]
    assert sc["runAsNonRoot"] is True and sc["runAsUser"] == 10001
    assert sc["allowPrivilegeEscalation"] is False
    assert sc["privileged"] is False
    assert sc["readOnlyRootFilesystem"] is True
    assert sc["capabilities"] == {"drop": ["ALL"]}
    assert sc["seccompProfile"] == {"type": "RuntimeDefault"}
    assert container(run)["volumeMounts"] == [{"name": "tmp", "mountPath": "/tmp"}]
    assert [v["name"] for v in pod["volumes"] if "emptyDir" in v] == ["tmp"]


def test_env_carries_downward_api_and_server_settings(run_app):
    env = env_of(container(run_app(settings={"workers": 4, "drain_seconds": 7})))
    assert env["POD_NAME"] == {"fieldRef": {"fieldPath": "metadata.name"}}
    assert env["POD_IP"] == {"fieldRef": {"fieldPath": "status.podIP"}}
    assert env["NODE_NAME"] == {"fieldRef": {"fieldPath": "spec.nodeName"}}
    assert env["PORT"] == "8080"
    assert env["WEB_CONCURRENCY"] == "4"
    assert env["DRAIN_SECONDS"] == "7"


def test_a_drain_longer_than_the_app_accepts_goes_to_the_prestop_sleep(run_app):
    c = container(run_app(settings={"drain_seconds": 45, "termination_grace_seconds": 120}))
    assert c["lifecycle"]["preStop"]["exec"]["command"] == ["sleep", "45"]
    assert env_of(c)["DRAIN_SECONDS"] == "20"


def test_prestop_sleeps_the_drain_and_the_grace_period_covers_the_whole_shutdown(run_app):
    run = run_app(settings={"drain_seconds": 8, "termination_grace_seconds": 40})
    c = container(run)
    assert c["lifecycle"]["preStop"]["exec"]["command"] == ["sleep", "8"]
    pod = run.one("Deployment").inputs["spec"]["template"]["spec"]
    assert pod["terminationGracePeriodSeconds"] == 40
    graceful = int(env_of(c)["GRACEFUL_TIMEOUT"])
    # preStop sleep + the app's own drain + in-flight grace must end before SIGKILL.
    assert 8 + 8 + graceful < 40


def test_no_prestop_hook_when_drain_is_zero(run_app):
    assert "lifecycle" not in container(run_app(settings={"drain_seconds": 0}))


@pytest.mark.parametrize("drain", range(0, 61))
def test_app_drain_and_graceful_timeout_fit_grace_and_the_apps_own_bounds(drain):
    for grace in (2 * drain + 6, 2 * drain + 10, 30, 60, 300):
        if grace <= 2 * drain + 5:  # the settings refuse these
            continue
        settings = app_settings(drain, grace)
        app_drain = app_drain_seconds(settings)
        graceful = graceful_timeout_seconds(settings)
        assert app_drain == min(drain, 20)
        assert 1 <= graceful <= 25 - app_drain
        # preStop sleep + the app's drain + in-flight grace end before SIGKILL.
        assert drain + app_drain + graceful < grace


def test_the_real_app_accepts_the_env_the_deployment_sets(run_app):
    app_dir = str(sys.modules["components.app"].__file__).rsplit("/components/", 1)[0] + "/app"
    sys.path.insert(0, app_dir)
    try:
        config = pytest.importorskip("articles.config")
    finally:
        sys.path.remove(app_dir)
    for drain, grace in ((0, 30), (5, 30), (10, 30), (20, 60), (30, 70), (60, 130)):
        settings = {"drain_seconds": drain, "termination_grace_seconds": grace, "workers": 3}
        env = {k: v for k, v in env_of(container(run_app(settings=settings))).items()}
        env = {k: v if isinstance(v, str) else "from-downward-api" for k, v in env.items()}
        parsed = config.Settings.from_env(env)
        assert parsed.port == 8080 and parsed.workers == 3
        assert parsed.drain_seconds == min(drain, 20)


def test_topology_spread_prefers_distinct_nodes_but_never_blocks_scheduling(run_app):
    pod = run_app().one("Deployment").inputs["spec"]["template"]["spec"]
    [spread] = pod["topologySpreadConstraints"]
    assert spread["topologyKey"] == "kubernetes.io/hostname"
    assert spread["whenUnsatisfiable"] == "ScheduleAnyway"
    assert spread["maxSkew"] == 1
    assert spread["labelSelector"]["matchLabels"] == APP_SELECTOR


@pytest.mark.parametrize("seconds", [0, 17, 3600])
def test_pods_leave_a_lost_node_after_the_configured_seconds(run_app, seconds):
    """Both taints of a lost node (NotReady, unreachable), NoExecute, with the configured time:
    otherwise the API server adds 300 s of each and the pods wait five minutes on a dead node."""
    settings = {"node_loss_toleration_seconds": seconds}
    pod = run_app(settings=settings).one("Deployment").inputs["spec"]["template"]["spec"]
    assert sorted(pod["tolerations"], key=lambda t: t["key"]) == [
        {"key": key, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": seconds}
        for key in ("node.kubernetes.io/not-ready", "node.kubernetes.io/unreachable")
    ]


# --- HPA and who owns spec.replicas --------------------------------------------------------


@pytest.mark.parametrize(
    ("enabled", "metrics", "expected"),
    [(True, True, True), (True, False, False), (False, True, False), (False, False, False)],
)
def test_hpa_only_when_enabled_and_metrics_are_available(run_app, enabled, metrics, expected):
    run = run_app(autoscaling={"enabled": enabled}, metrics_available=metrics)
    assert len(run.kind("HorizontalPodAutoscaler")) == (1 if expected else 0)
    # Only an HPA may own the replica count; without one, config changes must apply.
    ignored = run.options["app-deployment"]["ignore_changes"]
    assert ignored == (["spec.replicas"] if expected else [])
    # The first `up` starts at the configured count either way.
    assert run.one("Deployment").inputs["spec"]["replicas"] == 3
    # Without an HPA, `up` takes spec.replicas back even from a former HPA (forced apply).
    annotations = run.one("Deployment").inputs["metadata"].get("annotations") or {}
    assert ("pulumi.com/patchForce" in annotations) is not expected


def test_hpa_targets_the_deployment_on_cpu_with_min_defaulting_to_replicas(run_app):
    run = run_app(
        settings={"replicas": 5},
        autoscaling={"min_replicas": 0, "max_replicas": 12, "cpu_utilization": 65},
    )
    hpa = run.one("HorizontalPodAutoscaler").inputs
    deployment = run.one("Deployment").inputs
    assert hpa["apiVersion"] == "autoscaling/v2"
    assert hpa["spec"]["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": deployment["metadata"]["name"],
    }
    assert hpa["spec"]["minReplicas"] == 5
    assert hpa["spec"]["maxReplicas"] == 12
    assert hpa["spec"]["metrics"] == [
        {
            "type": "Resource",
            "resource": {
                "name": "cpu",
                "target": {"type": "Utilization", "averageUtilization": 65},
            },
        }
    ]
    explicit = run_app(autoscaling={"min_replicas": 2}).one("HorizontalPodAutoscaler")
    assert explicit.inputs["spec"]["minReplicas"] == 2


# --- Service -------------------------------------------------------------------------------


def test_service_port_targets_the_named_container_port_and_selects_the_pods(run_app):
    run = run_app(settings={"service_port": 80, "service_type": "NodePort"})
    svc = run.one("Service").inputs
    assert svc["spec"]["type"] == "NodePort"
    assert svc["spec"]["ports"] == [
        {"name": "http", "protocol": "TCP", "port": 80, "targetPort": "http"}
    ]
    pod_labels = run.one("Deployment").inputs["spec"]["template"]["metadata"]["labels"]
    assert svc["spec"]["selector"] == APP_SELECTOR
    assert selects(svc["spec"]["selector"], pod_labels)
    dns = f"{svc['metadata']['name']}.selfheal-lb-dev.svc.cluster.local"
    assert run.outputs["serviceDns"] == dns


@pytest.mark.parametrize(
    ("service_type", "await_lb", "skip"),
    [
        ("LoadBalancer", False, True),
        ("LoadBalancer", True, False),
        ("NodePort", False, False),
        ("ClusterIP", False, False),
    ],
)
def test_skip_await_only_for_a_load_balancer_nobody_waits_for(
    run_app, service_type, await_lb, skip
):
    svc = run_app(settings={"service_type": service_type, "await_load_balancer": await_lb})
    annotations = svc.one("Service").inputs["metadata"].get("annotations") or {}
    assert ("pulumi.com/skipAwait" in annotations) is skip
    if skip:
        assert annotations["pulumi.com/skipAwait"] == "true"


def test_session_affinity_client_ip_has_a_timeout_and_none_has_no_config(run_app):
    sticky = run_app(settings={"session_affinity": "ClientIP"}).one("Service").inputs["spec"]
    assert sticky["sessionAffinity"] == "ClientIP"
    timeout = sticky["sessionAffinityConfig"]["clientIP"]["timeoutSeconds"]
    assert 0 < timeout <= 86400
    plain = run_app().one("Service").inputs["spec"]
    assert plain["sessionAffinity"] == "None"
    assert "sessionAffinityConfig" not in plain


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        ({"loadBalancer": {"ingress": [{"ip": "192.0.2.10"}]}}, "192.0.2.10"),
        ({"loadBalancer": {"ingress": [{"hostname": "lb.example.test"}]}}, "lb.example.test"),
        ({"loadBalancer": {}}, ""),
        ({}, ""),
    ],
)
def test_external_address_from_load_balancer_status(run_app, status, expected):
    def fake(rec):
        return {"status": status} if rec.type == "kubernetes:core/v1:Service" else {}

    assert run_app(fake_outputs=fake).outputs["externalAddress"] == expected


def test_load_balancer_address_reads_objects_as_well_as_dicts():
    class Obj:
        def __init__(self, **kw):
            self.__dict__.update(kw)

    status = Obj(load_balancer=Obj(ingress=[Obj(ip=None, hostname="h.example.test")]))
    assert load_balancer_address(status) == "h.example.test"
    assert load_balancer_address(None) == ""


# --- PodDisruptionBudget -------------------------------------------------------------------


def test_pdb_limits_voluntary_disruptions_of_the_app_pods(run_app):
    run = run_app(settings={"pdb_max_unavailable": 2, "replicas": 5})
    pdb = run.one("PodDisruptionBudget").inputs
    assert pdb["apiVersion"] == "policy/v1"
    assert pdb["spec"]["maxUnavailable"] == 2
    pod_labels = run.one("Deployment").inputs["spec"]["template"]["metadata"]["labels"]
    assert selects(pdb["spec"]["selector"]["matchLabels"], pod_labels)


# --- NetworkPolicies ------------------------------------------------------------------------


def test_app_admits_only_fortio_and_the_allowed_cidrs_on_8080_and_sends_nothing(run_app):
    run = run_app(settings={"ingress_cidrs": ["10.0.0.0/8", "192.168.49.0/24"]})
    [allow] = [p for p in run.kind("NetworkPolicy") if p.inputs["spec"]["podSelector"]]
    spec = allow.inputs["spec"]
    pod_labels = run.one("Deployment").inputs["spec"]["template"]["metadata"]["labels"]
    assert selects(spec["podSelector"]["matchLabels"], pod_labels)
    assert spec["policyTypes"] == ["Ingress", "Egress"]
    assert not spec.get("egress")
    rule, metrics = spec["ingress"]
    assert rule["ports"] == [{"protocol": "TCP", "port": 8080}]
    assert rule["from"] == [
        {"podSelector": {"matchLabels": FORTIO_SELECTOR}},
        {"ipBlock": {"cidr": "10.0.0.0/8"}},
        {"ipBlock": {"cidr": "192.168.49.0/24"}},
    ]
    # The metrics port: the same addresses (the API server's pod proxy), never fortio.
    assert metrics["ports"] == [{"protocol": "TCP", "port": 9090}]
    assert metrics["from"] == rule["from"][1:]


def test_the_pod_range_is_carved_out_of_every_wider_cidr(run_app):
    """On Calico and kube-router 0.0.0.0/0 matches pods too: the pod range is excepted, while
    an address inside it that was listed on purpose (the node's bridge) stays admitted."""
    run = run_app(
        settings={
            "ingress_cidrs": ["0.0.0.0/0", "10.244.0.1/32", "10.244.0.0/16"],
            "pod_cidrs": ["10.244.0.0/16", "fd00:10:244::/56"],
        }
    )
    [allow] = [p for p in run.kind("NetworkPolicy") if p.inputs["spec"]["podSelector"]]
    for rule in allow.inputs["spec"]["ingress"]:
        blocks = [peer["ipBlock"] for peer in rule["from"] if "ipBlock" in peer]
        assert blocks == [
            {"cidr": "0.0.0.0/0", "except": ["10.244.0.0/16"]},
            {"cidr": "10.244.0.1/32"},
            {"cidr": "10.244.0.0/16"},
        ]


def test_a_wide_cidr_without_the_pod_range_is_warned_about_in_one_line(run_app):
    assert run_app(settings={"ingress_cidrs": ["10.199.0.1/32"]}).run.warnings == []
    [line] = run_app(settings={"ingress_cidrs": ["0.0.0.0/0"]}).run.warnings
    assert "clusterPodCidrs" in line and "\n" not in line
    wide = {"ingress_cidrs": ["0.0.0.0/0"], "pod_cidrs": ["10.244.0.0/16"]}
    assert run_app(settings=wide).run.warnings == []


def test_pods_start_only_after_their_network_policies_exist(run_app):
    deps = run_app().options["app-deployment"]["depends_on"]
    assert deps == ["app-allow-http", "default-deny"]


def test_network_policy_off_declares_none(run_app):
    run = run_app(settings={"network_policy": False})
    assert run.kind("NetworkPolicy") == []
    assert run.options["app-deployment"]["depends_on"] == []


def test_fixed_names_are_deleted_before_replacement(run_app):
    options = run_app().options
    for name in ("app-deployment", "app-service", "app-pdb"):
        assert options[name]["delete_before_replace"] is True, name


def test_preview_declares_the_same_objects(run_app):
    up = run_app()
    preview = run_app(preview=True)
    assert [(r.type, r.name) for r in preview.resources] == [(r.type, r.name) for r in up.resources]
