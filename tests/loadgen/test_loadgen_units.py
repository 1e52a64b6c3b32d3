"""Fast unit tests: which kubeconfig, context or service account is used; quantities;
Prometheus text."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest
import yaml

from loadgen import kube, kubeconfig, prom


def _write(path: Path, doc: dict) -> Path:
    path.write_text(yaml.safe_dump(doc))
    return path


def test_kubeconfig_list_first_current_context_and_relative_paths(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """KUBECONFIG=a:b as kubectl reads it: the first file's current-context and the first
    definition of a name win; relative paths are relative to the file that names them."""
    a = tmp_path / "a"
    b = tmp_path / "sub" / "b"
    a.mkdir()
    b.parent.mkdir()
    (a / "tok").write_text("from-a\n")
    (b.parent / "ca.crt").write_text("CA")
    first = _write(
        a / "config",
        {
            "current-context": "dev",
            "contexts": [
                {"name": "dev", "context": {"cluster": "c1", "user": "u1", "namespace": "ns1"}}
            ],
            "users": [{"name": "u1", "user": {"tokenFile": "tok"}}],
        },
    )
    second = _write(
        b,
        {
            "current-context": "other",
            "clusters": [
                {
                    "name": "c1",
                    "cluster": {
                        "server": "https://127.0.0.1:6443/",
                        "certificate-authority": "ca.crt",
                    },
                }
            ],
            "contexts": [
                {"name": "dev", "context": {"cluster": "nope", "user": "nope"}},
                {"name": "other", "context": {"cluster": "c1", "user": "u2"}},
            ],
            "users": [
                {"name": "u1", "user": {"token": "ignored"}},
                {"name": "u2", "user": {"username": "me", "password": "pw"}},
            ],
        },
    )
    monkeypatch.setenv("KUBECONFIG", f"{first}:{second}")
    loaded = kubeconfig.load_configuration()
    cfg = loaded.configuration
    assert loaded.source == "context dev" and loaded.refreshable
    assert cfg.host == "https://127.0.0.1:6443"
    assert cfg.ssl_ca_cert == str(b.parent / "ca.crt")  # relative to the file naming the cluster
    assert cfg.api_key["BearerToken"] == "Bearer from-a"  # tokenFile's newline trimmed
    other = kubeconfig.load_configuration(context="other").configuration
    assert other.api_key["BearerToken"] == "Basic " + base64.b64encode(b"me:pw").decode()


def test_no_current_context(tmp_path: Path) -> None:
    path = _write(tmp_path / "c", {"clusters": []})
    with pytest.raises(kube.KubeError, match="no current-context"):
        kubeconfig.load_configuration(str(path))


def test_in_cluster_config_when_there_is_no_kubeconfig(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """In a pod (no kubeconfig, KUBERNETES_SERVICE_HOST set) the service account is used."""
    from kubernetes.config import incluster_config

    (tmp_path / "token").write_text("sa-token")
    (tmp_path / "ca.crt").write_text("not used before a request")
    monkeypatch.setattr(incluster_config, "SERVICE_TOKEN_FILENAME", str(tmp_path / "token"))
    monkeypatch.setattr(incluster_config, "SERVICE_CERT_FILENAME", str(tmp_path / "ca.crt"))
    monkeypatch.delenv("KUBECONFIG", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "10.96.0.1")
    monkeypatch.setenv("KUBERNETES_SERVICE_PORT", "443")
    loaded = kubeconfig.load_configuration()
    assert loaded.source == "in-cluster service account"
    assert loaded.configuration.host == "https://10.96.0.1:443"
    assert loaded.configuration.api_key["BearerToken"].lower() == "bearer sa-token"
    with pytest.raises(kube.KubeError, match="--context needs a kubeconfig"):
        kubeconfig.load_configuration(context="x")
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST")
    with pytest.raises(kube.KubeError, match="no kubeconfig found"):
        kubeconfig.load_configuration()


@pytest.mark.parametrize(
    ("q", "m"), [("250m", 250.0), ("1", 1000.0), ("1500000n", 1.5), ("2500u", 2.5), ("0.5", 500.0)]
)
def test_cpu_quantities(q: str, m: float) -> None:
    assert kube.parse_cpu(q) == pytest.approx(m)


@pytest.mark.parametrize(
    ("q", "mib"),
    [("64Mi", 64.0), ("65536Ki", 64.0), ("1Gi", 1024.0), ("1048576", 1.0), ("1M", 1e6 / 2**20)],
)
def test_memory_quantities(q: str, mib: float) -> None:
    assert kube.parse_memory(q) == pytest.approx(mib)


def test_prometheus_served_counts_exclude_probes_and_handle_escapes() -> None:
    text = "\n".join(
        [
            "# HELP articles_http_requests_total Requests.",
            "# TYPE articles_http_requests_total counter",
            'articles_http_requests_total{method="GET",pod="p",route="/article1",status="200"} 5',
            'articles_http_requests_total{method="GET",pod="p",route="/healthz",status="200"} 9',
            'articles_http_requests_total{method="GET",pod="p",route="/readyz",status="200"} 9',
            'articles_http_requests_total{method="GET",pod="p",route="/metrics",status="200"} 9',
            r'articles_http_requests_total{method="GET",pod="p",route="/a\"b,c",status="404"} 2.0',
            'articles_http_requests_created{method="GET",pod="p",route="/x",status="200"} 1.7e9',
            'articles_http_requests_total_other{pod="p"} 100',
        ]
    )
    assert prom.served_by_pod(text) == {"p": 7.0}
    assert prom.served_total(text) == 7.0


def test_prometheus_without_the_counter_is_an_error() -> None:
    with pytest.raises(prom.MetricsFormatError):
        prom.served_total("up 1\n")
