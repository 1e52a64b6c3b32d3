"""Fast unit tests: kubeconfig merging and resolution, quantities, Prometheus text."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest
import yaml

from loadgen import kube, prom


def _write(path: Path, doc: dict) -> Path:
    path.write_text(yaml.safe_dump(doc))
    return path


def test_kubeconfig_merge_first_wins_and_paths_are_relative(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    a = tmp_path / "a"
    b = tmp_path / "sub" / "b"
    a.mkdir()
    b.parent.mkdir()
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
    cfg = kube.load_kubeconfig()
    assert cfg.context == "dev" and cfg.namespace == "ns1"
    assert cfg.server == "https://127.0.0.1:6443"
    assert cfg.ca_file == str(b.parent / "ca.crt")  # relative to the file naming the cluster
    assert cfg.token_file == str(a / "tok") and cfg.creds.token is None
    other = kube.load_kubeconfig(context="other")
    assert other.creds.basic == "me:pw"


def test_kubeconfig_data_fields_go_to_private_files(tmp_path: Path) -> None:
    path = _write(
        tmp_path / "c",
        {
            "current-context": "x",
            "contexts": [{"name": "x", "context": {"cluster": "c", "user": "u"}}],
            "clusters": [
                {
                    "name": "c",
                    "cluster": {
                        "server": "https://127.0.0.1:1",
                        "certificate-authority-data": base64.b64encode(b"CA").decode(),
                    },
                }
            ],
            "users": [
                {
                    "name": "u",
                    "user": {
                        "client-certificate-data": base64.b64encode(b"CERT").decode(),
                        "client-key-data": base64.b64encode(b"KEY").decode(),
                    },
                }
            ],
        },
    )
    cfg = kube.load_kubeconfig(str(path))
    try:
        assert Path(cfg.creds.key_file or "").read_bytes() == b"KEY"
        assert Path(cfg.creds.key_file or "").stat().st_mode & 0o077 == 0
        assert Path(cfg.ca_file or "").read_bytes() == b"CA"
    finally:
        files = list(cfg.temp_files)
        cfg.cleanup()
    assert files and not any(Path(f).exists() for f in files)


def test_auth_provider_is_refused(tmp_path: Path) -> None:
    path = _write(
        tmp_path / "c",
        {
            "current-context": "x",
            "contexts": [{"name": "x", "context": {"cluster": "c", "user": "u"}}],
            "clusters": [{"name": "c", "cluster": {"server": "https://127.0.0.1:1"}}],
            "users": [{"name": "u", "user": {"auth-provider": {"name": "gcp"}}}],
        },
    )
    with pytest.raises(kube.KubeError, match="auth-provider"):
        kube.load_kubeconfig(str(path))


def test_no_current_context(tmp_path: Path) -> None:
    path = _write(tmp_path / "c", {"clusters": []})
    with pytest.raises(kube.KubeError, match="no current-context"):
        kube.load_kubeconfig(str(path))


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
