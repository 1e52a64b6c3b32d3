"""kubeconfig TLS handling against the fake API served over HTTPS: CA as data and as a file,
client certificates (mutual TLS), a wrong CA, insecure-skip-tls-verify."""

from __future__ import annotations

import base64
import json
import shutil
import ssl
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from fake_kube import FakeKube, running, write_kubeconfig
from lg_procs import run_cli

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which("openssl") is None, reason="needs openssl"),
]
NS = "demo"
SEL = "app=articles"
CANNED = 'articles_http_requests_total{pod="x",route="/article1"} 7.0\n'


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("pki")
    _openssl(
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "ca.key",
        "-out",
        "ca.crt",
        "-days",
        "2",
        "-subj",
        "/CN=fake-kube-ca",
        cwd=d,
    )
    _openssl(
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "other-ca.key",
        "-out",
        "other-ca.crt",
        "-days",
        "2",
        "-subj",
        "/CN=other-ca",
        cwd=d,
    )
    for name, ext in (
        ("server", "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n"),
        ("client", "extendedKeyUsage=clientAuth\n"),
    ):
        (d / f"{name}.ext").write_text(ext)
        _openssl(
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            f"{name}.key",
            "-out",
            f"{name}.csr",
            "-subj",
            f"/CN=loadgen-{name}",
            cwd=d,
        )
        _openssl(
            "x509",
            "-req",
            "-in",
            f"{name}.csr",
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            f"{name}.crt",
            "-days",
            "2",
            "-extfile",
            f"{name}.ext",
            cwd=d,
        )
    return d


@pytest.fixture
def fake(pki: Path) -> Iterator[FakeKube]:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(pki / "server.crt", pki / "server.key")
    ctx.load_verify_locations(pki / "ca.crt")
    ctx.verify_mode = ssl.CERT_OPTIONAL  # token clients send none; cert clients are checked
    f = FakeKube(namespace=NS)
    f.add_deployment("articles", {"app": "articles"}, metrics_texts=[CANNED])
    with running(f, tls=ctx):
        yield f


def b64(path: Path) -> str:
    return base64.b64encode(path.read_bytes()).decode()


def snapshot(cfg: str, tmpdir: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {"KUBECONFIG": cfg}
    if tmpdir is not None:
        env["TMPDIR"] = str(tmpdir)
    return run_cli(["snapshot", "-n", NS, "-l", SEL, "--timeout", "10"], env=env, timeout=60)


def test_ca_data_and_token(fake: FakeKube, pki: Path, tmp_path: Path) -> None:
    cfg = write_kubeconfig(
        str(tmp_path / "c"),
        fake.url,
        fake.token,
        extra_cluster={"certificate-authority-data": b64(pki / "ca.crt")},
    )
    proc = snapshot(cfg)
    assert proc.returncode == 0, proc.stderr
    assert sum(p["served"] for p in json.loads(proc.stdout)["pods"].values()) == 7


def test_ca_file_relative_and_client_cert_data(fake: FakeKube, pki: Path, tmp_path: Path) -> None:
    fake.client_cert_cn = "loadgen-client"
    shutil.copy(pki / "ca.crt", tmp_path / "ca.crt")
    cfg = write_kubeconfig(
        str(tmp_path / "c"),
        fake.url,
        None,
        extra_cluster={"certificate-authority": "ca.crt"},  # relative to the kubeconfig
        user={
            "client-certificate-data": b64(pki / "client.crt"),
            "client-key-data": b64(pki / "client.key"),
        },
    )
    private = tmp_path / "private"
    private.mkdir()
    proc = snapshot(cfg, tmpdir=private)
    assert proc.returncode == 0, proc.stderr
    assert fake.requests and fake.requests[0][2] == ""  # no token: the cert authenticated
    assert not list(private.iterdir()), "the key written for ssl must be removed afterwards"


def test_wrong_ca_exit_2_one_line(fake: FakeKube, pki: Path, tmp_path: Path) -> None:
    cfg = write_kubeconfig(
        str(tmp_path / "c"),
        fake.url,
        fake.token,
        extra_cluster={"certificate-authority-data": b64(pki / "other-ca.crt")},
    )
    proc = snapshot(cfg)
    assert proc.returncode == 2
    assert "TLS verification" in proc.stderr and proc.stderr.count("\n") == 1


def test_insecure_skip_tls_verify(fake: FakeKube, tmp_path: Path) -> None:
    cfg = write_kubeconfig(
        str(tmp_path / "c"), fake.url, fake.token, extra_cluster={"insecure-skip-tls-verify": True}
    )
    assert snapshot(cfg).returncode == 0
