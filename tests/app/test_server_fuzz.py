"""Property test against the real server: raw requests never get a 5xx.

The in-process client builds a tidy ASGI scope; the production server decodes paths,
query strings and headers itself, so this sends raw bytes over loopback.
"""

from __future__ import annotations

import socket
import string
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from serverproc import HOST, Server, run_server

pytestmark = pytest.mark.slow

TOKEN = string.ascii_letters + string.digits + "!#$%&'*+-.^_`|~"
# Bytes allowed raw in a request target (RFC 3986 unreserved, sub-delims, ':', '@', '/'),
# plus percent-escapes that decode to anything, invalid UTF-8 included.
PCHARS = string.ascii_letters + string.digits + "-._~!$&'()*+,;=:@/"
escape = st.integers(0, 255).map(lambda b: f"%{b:02X}")
target_piece = st.one_of(
    st.text(alphabet=PCHARS, min_size=1, max_size=8),
    escape,
    st.sampled_from(["article", "article/", "1", "01", "..", "//"]),
)
targets = st.lists(target_piece, max_size=8).map(lambda parts: "/" + "".join(parts))
queries = st.lists(st.one_of(st.text(alphabet=PCHARS + "?", max_size=10), escape), max_size=4)
methods = st.one_of(
    st.sampled_from(["GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS"]),
    st.text(alphabet=TOKEN, min_size=1, max_size=10),
)
headers = st.dictionaries(
    st.text(alphabet=TOKEN, min_size=1, max_size=16).filter(
        lambda h: (
            h.lower()
            not in {
                "host",
                "content-length",
                "transfer-encoding",
                "connection",
                "expect",
                "upgrade",
            }
        )
    ),
    st.text(alphabet=string.ascii_letters + string.digits + " ;,=/-_.:", max_size=30),
    max_size=4,
)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with run_server(tmp_path_factory.mktemp("fuzz"), WEB_CONCURRENCY="1") as s:
        yield s


def _status(port: int, raw: bytes) -> int:
    with socket.create_connection((HOST, port), timeout=5) as sock:
        sock.sendall(raw)
        data = b""
        while b"\r\n" not in data and len(data) < 65536:
            chunk = sock.recv(4096)
            if not chunk:
                break
            data += chunk
    assert data.startswith(b"HTTP/1.1 "), data[:200]
    return int(data[9:12])


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(method=methods, target=targets, query=queries, hdrs=headers)
def test_raw_requests_never_get_a_server_error(
    server: Server, method: str, target: str, query: list[str], hdrs: dict[str, str]
) -> None:
    if query:
        target += "?" + "".join(query)
    lines = [f"{method} {target} HTTP/1.1", f"Host: {HOST}", "Connection: close"]
    lines += [f"{k}: {v}" for k, v in hdrs.items()]
    raw = ("\r\n".join(lines) + "\r\n\r\n").encode("ascii")
    status = _status(server.port, raw)
    assert status < 500, (method, target, hdrs, status)
    assert server.proc.poll() is None
