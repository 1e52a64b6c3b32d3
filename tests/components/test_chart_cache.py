"""The chart archive is downloaded once per pinned version, checked against the pinned sha256
before every use, and every failure is one line. A real HTTP server on loopback serves an
archive the test builds (tests/chart_fixtures.py), and counts the downloads."""

from __future__ import annotations

import http.server
import socket
import threading
from collections.abc import Iterator

import pytest
from chart_fixtures import chart_archive_bytes, sha256_hex

from components import chart_cache
from components.chart_cache import ChartPin, ChartUnavailable
from components.metrics_plan import CHART

ARCHIVE = chart_archive_bytes()


class _Server:
    def __init__(self) -> None:
        self.body = ARCHIVE
        self.hits = 0
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                outer.hits += 1
                self.send_response(200)
                self.send_header("Content-Length", str(len(outer.body)))
                self.end_headers()
                self.wfile.write(outer.body)

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/test-chart-0.0.1.tgz"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()


@pytest.fixture
def server() -> Iterator[_Server]:
    s = _Server()
    yield s
    s.httpd.shutdown()
    s.httpd.server_close()


def _pin(url: str, digest: str = sha256_hex(ARCHIVE)) -> ChartPin:
    return ChartPin(name="test-chart", version="0.0.1", url=url, sha256=digest)


def test_fetched_once_then_served_from_the_cache(server, tmp_path):
    pin = _pin(server.url)
    first = chart_cache.ensure(pin, tmp_path)
    second = chart_cache.ensure(pin, tmp_path)
    assert first == second == tmp_path / "test-chart-0.0.1.tgz"
    assert first.read_bytes() == ARCHIVE
    assert server.hits == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["test-chart-0.0.1.tgz"]  # no temp left


def test_a_download_with_another_digest_is_discarded_with_one_line(server, tmp_path):
    pin = _pin(server.url, digest="0" * 64)
    with pytest.raises(ChartUnavailable) as caught:
        chart_cache.ensure(pin, tmp_path)
    message = str(caught.value)
    assert "\n" not in message
    assert f"has sha256 {sha256_hex(ARCHIVE)}, not the pinned {'0' * 64}" in message
    assert list(tmp_path.iterdir()) == []  # nothing unverified is kept


def test_a_corrupted_cached_archive_is_never_used_but_fetched_again(server, tmp_path):
    pin = _pin(server.url)
    path = chart_cache.ensure(pin, tmp_path)
    path.write_bytes(b"not the chart")
    assert chart_cache.cached(pin, tmp_path) is None
    again = chart_cache.ensure(pin, tmp_path)
    assert again.read_bytes() == ARCHIVE and server.hits == 2


def test_a_swapped_upstream_archive_is_refused(server, tmp_path):
    """The server now sends other bytes under the same version: the pin catches it."""
    pin = _pin(server.url)
    server.body = ARCHIVE + b"tampered"
    with pytest.raises(ChartUnavailable, match="not the pinned"):
        chart_cache.ensure(pin, tmp_path)


def test_an_unreachable_repository_is_one_line_naming_cache_and_url(tmp_path):
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}/x.tgz"
    with pytest.raises(ChartUnavailable) as caught:
        chart_cache.ensure(_pin(url), tmp_path / "cache", timeout=5)
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith(
        f"test-chart chart 0.0.1 is not in the cache ({tmp_path / 'cache'}) and cannot be "
        f"downloaded from {url}: "
    )
    assert "refused" in message.lower()


def test_the_cache_lives_outside_the_checkout_and_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.delenv("SELFHEAL_LB_CACHE", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert chart_cache.default_cache_dir() == tmp_path / "selfheal-lb" / "charts"
    monkeypatch.setenv("SELFHEAL_LB_CACHE", str(tmp_path / "own"))
    assert chart_cache.default_cache_dir() == tmp_path / "own" / "charts"


def test_unpacked_is_the_chart_directory_of_the_verified_archive(server, tmp_path):
    pin = _pin(server.url)
    chart = chart_cache.unpacked(pin, tmp_path)
    assert (chart / "Chart.yaml").is_file() and (chart / "templates" / "objects.yaml").is_file()
    # An edited copy in the cache is not what gets used: each call unpacks the archive afresh.
    (chart / "templates" / "objects.yaml").write_text("tampered")
    again = chart_cache.unpacked(pin, tmp_path)
    assert again == chart and "tampered" not in (again / "templates" / "objects.yaml").read_text()
    assert server.hits == 1


def test_an_archive_that_escapes_its_directory_is_refused(tmp_path):
    import io
    import tarfile

    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        info = tarfile.TarInfo("../evil/Chart.yaml")
        info.size = 4
        tar.addfile(info, io.BytesIO(b"x: 1"))
    data = buffer.getvalue()
    cache = tmp_path / "cache"
    cache.mkdir()
    pin = ChartPin(name="evil", version="1", url="http://127.0.0.1:9/x", sha256=sha256_hex(data))
    (cache / pin.file_name).write_bytes(data)  # a cached archive with the pinned digest
    with pytest.raises(ChartUnavailable, match="cannot unpack"):
        chart_cache.unpacked(pin, cache)
    assert not (tmp_path / "evil").exists()


def test_the_metrics_server_pin_is_an_exact_version_with_a_sha256():
    assert CHART.version == "3.13.0"
    assert CHART.url.endswith(
        f"/metrics-server-helm-chart-{CHART.version}/metrics-server-3.13.0.tgz"
    )
    assert len(CHART.sha256) == 64 and int(CHART.sha256, 16) >= 0
