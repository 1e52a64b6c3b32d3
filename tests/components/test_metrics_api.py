"""The probe reads the cluster's APIService v1beta1.metrics.k8s.io through the official client
(a fake API server on loopback here; tests/test_real_cluster_metrics.py against the real one)
and says who serves the metrics API. It never raises: what it cannot tell is "unknown"."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from fake_apiservice import PATH, FakeApiServer, apiservice, write_kubeconfig

from components.metrics_api import (
    OWNER_NAMESPACE_ANNOTATION,
    OWNER_STACK_ANNOTATION,
    probe,
)


@pytest.fixture
def api() -> Iterator[FakeApiServer]:
    server = FakeApiServer()
    yield server
    server.stop()


@pytest.fixture
def kubeconfig(tmp_path: Path, api: FakeApiServer) -> str:
    return str(write_kubeconfig(tmp_path / "config", api.url, context="ctx"))


def test_no_apiservice_is_absent(api, kubeconfig):
    state = probe("ctx", kubeconfig)
    assert state.status == "absent"
    assert api.requests == [PATH]


def test_the_minikube_addon_is_named(api, kubeconfig):
    api.serve(
        apiservice(
            labels={
                "addonmanager.kubernetes.io/mode": "Reconcile",
                "kubernetes.io/minikube-addons": "metrics-server",
            }
        )
    )
    state = probe("ctx", kubeconfig)
    assert (state.status, state.provider) == (
        "available",
        "minikube addon (kube-system/metrics-server)",
    )
    assert state.owner_stack == ""


def test_a_selfheal_lb_install_names_its_owner(api, kubeconfig):
    api.serve(
        apiservice(
            annotations={
                OWNER_STACK_ANNOTATION: "selfheal-lb/dev",
                OWNER_NAMESPACE_ANNOTATION: "selfheal-lb-dev",
            },
            labels={"app.kubernetes.io/managed-by": "Helm"},
        )
    )
    state = probe("ctx", kubeconfig)
    assert state.status == "available"
    assert state.owned_by("selfheal-lb/dev", "selfheal-lb-dev")
    assert not state.owned_by("selfheal-lb/staging", "selfheal-lb-staging")
    assert state.provider == (
        "installed by selfheal-lb stack selfheal-lb/dev (kube-system/metrics-server)"
    )


def test_a_helm_release_the_upstream_manifest_and_an_unlabelled_one(api, kubeconfig):
    api.serve(
        apiservice(
            labels={"app.kubernetes.io/managed-by": "Helm"},
            annotations={"meta.helm.sh/release-name": "ms"},
        )
    )
    assert probe("ctx", kubeconfig).provider == "Helm release ms (kube-system/metrics-server)"
    api.serve(apiservice(labels={"k8s-app": "metrics-server"}))  # upstream components.yaml
    assert probe("ctx", kubeconfig).provider == "metrics-server add-on (kube-system/metrics-server)"
    api.serve(apiservice())
    assert probe("ctx", kubeconfig).provider == (
        "APIService without an owner label (kube-system/metrics-server)"
    )


def test_not_available_carries_the_condition(api, kubeconfig):
    api.serve(apiservice(available=False, reason="MissingEndpoints", message="no endpoints"))
    state = probe("ctx", kubeconfig)
    assert state.status == "unavailable"
    assert state.detail == "Available=False: MissingEndpoints no endpoints"


def test_forbidden_is_unknown_and_says_what_permission(api, kubeconfig):
    api.status = 403
    state = probe("ctx", kubeconfig)
    assert state.status == "unknown"
    assert "HTTP 403" in state.detail and "may not read apiservices" in state.detail


def test_unreachable_cluster_is_unknown_not_an_exception(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    config = write_kubeconfig(tmp_path / "config", f"http://127.0.0.1:{port}", context="ctx")
    state = probe("ctx", str(config), timeout=5)
    assert state.status == "unknown"
    assert state.detail.startswith("cluster unreachable: ")
    assert "\n" not in state.detail


def test_missing_kubeconfig_or_context_is_unknown(tmp_path, kubeconfig):
    assert probe("", str(tmp_path / "nope")).status == "unknown"
    state = probe("no-such-context", kubeconfig)
    assert state.status == "unknown" and "no-such-context" in state.detail
