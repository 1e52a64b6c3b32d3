"""`monitoring: auto`: the probe asks a real HTTP server with the official kubernetes client
(discovery of monitoring.coreos.com/v1), and every way of not being able to ask ends in one
line and the annotations, never an exception."""

from __future__ import annotations

import contextlib
import http.server
import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from cluster.paths import KUBECONFIG
from components import operator_probe
from components.operator_probe import ENV_OVERRIDE, ProbeResult, ask_cluster, resolve_mode

TOKEN = "probe-test-token"


class _Api(http.server.BaseHTTPRequestHandler):
    """Answers GET /apis/monitoring.coreos.com/v1 as the API server would, per `mode`."""

    mode = "present"

    def do_GET(self) -> None:
        if self.headers.get("Authorization") != f"Bearer {TOKEN}":
            return self._send(401, {"kind": "Status", "code": 401, "reason": "Unauthorized"})
        if self.mode == "hang":
            time.sleep(3)
        if self.mode == "forbidden":
            return self._send(403, {"kind": "Status", "code": 403, "reason": "Forbidden"})
        if self.path != "/apis/monitoring.coreos.com/v1" or self.mode == "absent":
            return self._send(404, {"kind": "Status", "code": 404, "reason": "NotFound"})
        names = ["servicemonitors", "prometheusrules"]
        if self.mode == "present":
            names.append("podmonitors")
        resources = [
            {"name": n, "singularName": "", "namespaced": True, "kind": n, "verbs": ["get"]}
            for n in names
        ]
        self._send(
            200,
            {"kind": "APIResourceList", "groupVersion": "monitoring.coreos.com/v1",
             "resources": resources},
        )  # fmt: skip

    def _send(self, code: int, body: dict) -> None:
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):  # the client gave up
            self.wfile.write(data)

    def log_message(self, *args) -> None:
        pass


@contextlib.contextmanager
def api(mode: str) -> Iterator[str]:
    handler = type("Api", (_Api,), {"mode": mode})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def kubeconfig(tmp_path: Path, server: str, context: str = "probe") -> str:
    path = tmp_path / "kubeconfig"
    path.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "c", "cluster": {"server": server}}],
                "users": [{"name": "u", "user": {"token": TOKEN}}],
                "contexts": [{"name": context, "context": {"cluster": "c", "user": "u"}}],
                "current-context": context,
            }
        )
    )
    return str(path)


@pytest.mark.parametrize(
    ("mode", "present", "detail"),
    [
        ("present", True, "serves monitoring.coreos.com/v1 podmonitors"),
        ("absent", False, "serves no monitoring.coreos.com/v1 API"),
        ("servicemonitors-only", False, "has no podmonitors"),
        ("forbidden", None, "answered 403 Forbidden"),
    ],
)
def test_the_probe_reads_discovery(tmp_path, mode, present, detail):
    with api(mode) as url:
        result = ask_cluster("probe", kubeconfig=kubeconfig(tmp_path, url))
    assert result.present is present
    assert detail in result.detail


def test_the_probe_uses_the_named_context(tmp_path):
    with api("present") as url:
        path = kubeconfig(tmp_path, url, context="other")
        assert ask_cluster("other", kubeconfig=path).present is True
        missing = ask_cluster("nope", kubeconfig=path)
    assert missing.present is None and "no usable kubeconfig" in missing.detail


def test_an_unreachable_cluster_is_one_attempt_within_the_timeout(tmp_path):
    with api("present") as url:
        pass  # the port is closed again
    start = time.monotonic()
    result = ask_cluster("probe", kubeconfig=kubeconfig(tmp_path, url), timeout=2)
    assert result.present is None and result.detail.startswith("cluster unreachable at http")
    assert time.monotonic() - start < 2


def test_a_hanging_api_server_times_out(tmp_path):
    with api("hang") as url:
        start = time.monotonic()
        result = ask_cluster("probe", kubeconfig=kubeconfig(tmp_path, url), timeout=1)
        assert time.monotonic() - start < 2.5
    assert result.present is None and "unreachable" in result.detail


def test_no_kubeconfig_at_all(tmp_path):
    result = ask_cluster("", kubeconfig=str(tmp_path / "missing"))
    assert result.present is None and result.detail.startswith("no usable kubeconfig")
    assert "\n" not in result.detail


def test_resolution_of_auto(monkeypatch):
    monkeypatch.delenv(ENV_OVERRIDE, raising=False)
    monkeypatch.setattr(operator_probe, "under_mocks", lambda: False)

    def answer(result: ProbeResult):
        return lambda context: result

    found = resolve_mode("auto", "ctx", answer(ProbeResult(True, "found")))
    assert (found.mode, found.warn) == ("podMonitor", False)
    absent = resolve_mode("auto", "ctx", answer(ProbeResult(False, "absent")))
    assert (absent.mode, absent.warn) == ("annotations", False)
    unknown = resolve_mode("auto", "ctx", answer(ProbeResult(None, "cluster unreachable")))
    assert (unknown.mode, unknown.warn) == ("annotations", True)
    assert unknown.note == (
        "monitoring auto: could not ask the cluster for the Prometheus Operator's CRDs "
        "(cluster unreachable); using scrape annotations (set monitoring to choose)"
    )
    # A chosen mode never asks.
    assert resolve_mode("serviceMonitor", "ctx", pytest.fail).mode == "serviceMonitor"
    monkeypatch.setenv(ENV_OVERRIDE, "present")
    assert resolve_mode("auto", "ctx", pytest.fail).mode == "podMonitor"
    monkeypatch.setenv(ENV_OVERRIDE, "maybe")
    assert resolve_mode("auto", "ctx", pytest.fail).warn


@pytest.mark.slow  # asks the real cluster
@pytest.mark.skipif(not KUBECONFIG.exists(), reason="the real cluster is not up")
def test_the_real_cluster_gives_a_definite_answer():
    result = ask_cluster("", kubeconfig=str(KUBECONFIG))
    assert result.present is not None, result.detail
