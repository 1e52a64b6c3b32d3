"""Build app/Dockerfile on a locally made Debian base and run it the way the pod does.

Read-only root filesystem, /tmp as the only writable path, numeric non-root user. Skips
(with the reason) where no Docker engine can run: scripts/docker-base.sh decides.
"""

from __future__ import annotations

import http.client
import json
import os
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from serverproc import HOST, free_port

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
SKIP_CODE = 77


def _docker(*args: str, timeout: float = 60, check: bool = True) -> str:
    result = subprocess.run(
        ["docker", *args], capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL
    )
    if check and result.returncode != 0:
        raise AssertionError(f"docker {' '.join(args)} failed:\n{result.stderr[-3000:]}")
    return result.stdout


@pytest.fixture(scope="module")
def offline_base() -> str:
    """The Debian base plus a wheelhouse of app/requirements.txt: the build needs no network.

    scripts/docker-base.sh --wheels makes it (the same base `make e2e` builds the app on).
    """
    if shutil.which("bash") is None:
        pytest.skip("bash is needed for scripts/docker-base.sh")
    result = subprocess.run(
        [
            str(ROOT / "scripts" / "docker-base.sh"),
            "--wheels",
            str(ROOT / "app" / "requirements.txt"),
        ],
        capture_output=True,
        text=True,
        timeout=600,
        stdin=subprocess.DEVNULL,
        env={**os.environ, "PYTHON": sys.executable},
    )
    if result.returncode == SKIP_CODE:
        pytest.skip(result.stderr.strip().splitlines()[-1])
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout.strip().splitlines()[-1]


@pytest.fixture(scope="module")
def image(offline_base: str) -> Iterator[str]:
    tag = f"selfheal-lb-articles-test:{uuid.uuid4().hex[:12]}"
    _docker(
        "build",
        "--build-arg",
        f"BASE_IMAGE={offline_base}",
        "-t",
        tag,
        str(ROOT / "app"),
        timeout=360,
    )
    try:
        yield tag
    finally:
        _docker("rmi", "-f", tag, check=False)


def _wait_for(port: int, path: str, deadline_s: float) -> tuple[int, dict[str, str]]:
    deadline = time.monotonic() + deadline_s
    last: Exception | None = None
    while time.monotonic() < deadline:
        conn = http.client.HTTPConnection(HOST, port, timeout=2)
        try:
            conn.request("GET", path)
            resp = conn.getresponse()
            resp.read()
            return resp.status, dict(resp.getheaders())
        except OSError as e:
            last = e
            time.sleep(0.2)
        finally:
            conn.close()
    raise AssertionError(f"no answer on {path} within {deadline_s}s: {last!r}")


def test_image_runs_read_only_as_non_root(image: str) -> None:
    config = json.loads(_docker("image", "inspect", image))[0]["Config"]
    assert config["User"] == "10001:10001"
    assert config["WorkingDir"] == "/app"
    assert config["Cmd"] == ["python", "-m", "articles"]
    assert "8080/tcp" in config["ExposedPorts"]
    # No compiler came along into the final image.
    found = _docker(
        "run", "--rm", "--entrypoint", "sh", image, "-c", "command -v gcc cc c++ clang || true"
    )
    assert found.strip() == ""

    port = free_port()
    name = f"articles-test-{uuid.uuid4().hex[:8]}"
    # Host network, loopback only: the server binds 127.0.0.1 on a free port.
    _docker(
        "run",
        "-d",
        "--name",
        name,
        "--network",
        "host",
        "--read-only",
        "--tmpfs",
        "/tmp",
        "--user",
        "10001:10001",
        "--cap-drop",
        "ALL",
        "-e",
        f"PORT={port}",
        "-e",
        f"HOST={HOST}",
        "-e",
        "POD_NAME=image-test",
        "-e",
        "DRAIN_SECONDS=1",
        image,
    )
    try:
        try:
            status, headers = _wait_for(port, "/healthz", 60)
        except AssertionError as e:
            raise AssertionError(f"{e}\n{_docker('logs', name, check=False)}") from None
        assert status == 200
        assert headers.get("x-served-by") == "image-test"
        assert _wait_for(port, "/article/1", 10)[0] == 200
        assert _wait_for(port, "/readyz", 10)[0] == 200
        # docker stop sends SIGTERM to PID 1: drain, then a clean exit well inside 30 s.
        started = time.monotonic()
        _docker("stop", "-t", "30", name, timeout=60)
        assert time.monotonic() - started < 15
        state = json.loads(_docker("inspect", name))[0]["State"]
        assert state["ExitCode"] == 0, _docker("logs", name, check=False)
        logs = subprocess.run(
            ["docker", "logs", name], capture_output=True, text=True, timeout=30
        ).stdout
        assert any(json.loads(line).get("path") == "/article/1" for line in logs.splitlines())
    finally:
        _docker("rm", "-f", name, check=False)
