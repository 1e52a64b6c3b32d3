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


def _logs(container: str) -> str:
    """A container's output, both streams (the app logs its warnings to stderr)."""
    result = subprocess.run(
        ["docker", "logs", "--tail", "60", container],
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )
    return result.stdout + result.stderr


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


def test_image_with_the_redis_image_wired_as_the_pods_are(image: str, tmp_path: Path) -> None:
    """The app image and the Redis image of scripts/redis-image.sh on one Docker network, each
    with the files the StateStore mounts (config, password include; address and password for
    the app), both read-only and non-root: views counted in Redis, the session cookie set."""
    from components.state_store import (
        APP_SECRET_DIR,
        CONFIG_DIR,
        PORT,
        RUN_AS_ID,
        SECRET_DIR,
        redis_conf,
    )

    built = subprocess.run(
        [str(ROOT / "scripts" / "redis-image.sh")],
        capture_output=True,
        text=True,
        timeout=900,
        stdin=subprocess.DEVNULL,
    )
    if built.returncode == SKIP_CODE:
        pytest.skip(built.stderr.strip().splitlines()[-1])
    assert built.returncode == 0, built.stderr[-3000:]
    redis_image = built.stdout.strip().splitlines()[-1]
    suffix = uuid.uuid4().hex[:8]
    network, redis_name, app_name = (f"selfheal-lb-{k}-{suffix}" for k in ("net", "redis", "app"))
    password = uuid.uuid4().hex
    files = {
        "config/redis.conf": redis_conf("128Mi"),
        "secret/auth.conf": f"requirepass {password}\n",
        "app/url": f"redis://{redis_name}:{PORT}/0\n",
        "app/password": password + "\n",
    }
    for rel, text in files.items():
        (tmp_path / rel).parent.mkdir(exist_ok=True)
        (tmp_path / rel).write_text(text)
    for path in tmp_path.rglob("*"):
        path.chmod(0o755 if path.is_dir() else 0o644)
    port, metrics_port = free_port(), free_port()
    _docker("network", "create", network)
    try:
        _docker(
            "run", "-d", "--name", redis_name, "--network", network, "--read-only",
            "--user", f"{RUN_AS_ID}:{RUN_AS_ID}", "--cap-drop", "ALL",
            "--tmpfs", f"/data:uid={RUN_AS_ID},gid={RUN_AS_ID}",
            "-v", f"{tmp_path / 'config'}:{CONFIG_DIR}:ro",
            "-v", f"{tmp_path / 'secret'}:{SECRET_DIR}:ro",
            redis_image, "redis-server", f"{CONFIG_DIR}/redis.conf",
        )  # fmt: skip
        _docker(
            "run", "-d", "--name", app_name, "--network", network, "--read-only",
            "--tmpfs", "/tmp", "--user", "10001:10001", "--cap-drop", "ALL",
            "-p", f"{HOST}:{port}:8080", "-p", f"{HOST}:{metrics_port}:9090",
            "-e", "POD_NAME=image-test",
            "-e", f"REDIS_URL_FILE={APP_SECRET_DIR}/url",
            "-e", f"REDIS_PASSWORD_FILE={APP_SECRET_DIR}/password",
            "-v", f"{tmp_path / 'app'}:{APP_SECRET_DIR}:ro",
            image,
        )  # fmt: skip
        try:
            _wait_for(port, "/healthz", 60)
        except AssertionError as e:
            raise AssertionError(f"{e}\n{_docker('logs', app_name, check=False)}") from None
        pages = []
        deadline = time.monotonic() + 30
        while len(pages) < 2 and time.monotonic() < deadline:
            conn = http.client.HTTPConnection(HOST, port, timeout=5)
            conn.request("GET", "/article/1")
            resp = conn.getresponse()
            body, cookie = resp.read().decode(), resp.getheader("Set-Cookie")
            conn.close()
            if "unavailable" in body:  # Redis still loading: the page is served all the same
                time.sleep(1.2)
                continue
            pages.append((body, cookie))
        assert len(pages) == 2, f"redis:\n{_logs(redis_name)}\napp:\n{_logs(app_name)}"
        assert "Views: <strong>1</strong>" in pages[0][0]
        assert "Views: <strong>2</strong>" in pages[1][0]
        assert pages[0][1] and pages[0][1].startswith("sid=")
        conn = http.client.HTTPConnection(HOST, port, timeout=5)
        conn.request("GET", "/metrics")
        assert conn.getresponse().status == 404, "the app port serves no metrics"
        conn.close()
        conn = http.client.HTTPConnection(HOST, metrics_port, timeout=5)
        conn.request("GET", "/metrics")
        metrics = conn.getresponse().read().decode()
        conn.close()
        assert 'articles_state_store_up{pod="image-test",store="redis"} 1.0' in metrics
    finally:
        _docker("rm", "-f", app_name, redis_name, check=False)
        _docker("network", "rm", network, check=False)
