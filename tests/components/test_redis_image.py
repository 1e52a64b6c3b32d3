"""components/redis/Dockerfile built on the Debian base and run the way the StateStore runs it:
UID 999, read-only root filesystem, the rendered redis.conf and the password include mounted,
only /data writable. Skips (with the reason) where no Docker engine can run here."""

from __future__ import annotations

import subprocess
import time
import uuid
from pathlib import Path

import pytest

from components.state_store import CONFIG_DIR, RUN_AS_ID, SECRET_DIR, redis_conf

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]
SKIP_CODE = 77
PASSWORD = "image-test-password"


def _docker(*args: str, timeout: float = 60, check: bool = True) -> subprocess.CompletedProcess:
    result = subprocess.run(
        ["docker", *args], capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL
    )
    if check and result.returncode != 0:
        raise AssertionError(f"docker {' '.join(args)} failed:\n{result.stderr[-3000:]}")
    return result


@pytest.fixture(scope="module")
def image() -> str:
    result = subprocess.run(
        [str(ROOT / "scripts" / "redis-image.sh")],
        capture_output=True,
        text=True,
        timeout=900,
        stdin=subprocess.DEVNULL,
    )
    if result.returncode == SKIP_CODE:
        pytest.skip(result.stderr.strip().splitlines()[-1])
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout.strip().splitlines()[-1]


def _cli(name: str, *args: str, password: str = PASSWORD) -> str:
    result = _docker(
        "exec", "-e", f"REDISCLI_AUTH={password}", name, "redis-cli", *args, check=False
    )
    return (result.stdout + result.stderr).strip()


def test_the_image_runs_as_the_pod_runs_it(image: str, tmp_path: Path) -> None:
    config, secret = tmp_path / "config", tmp_path / "secret"
    config.mkdir()
    secret.mkdir()
    (config / "redis.conf").write_text(redis_conf("128Mi"))
    (secret / "auth.conf").write_text(f"requirepass {PASSWORD}\n")
    for path in (config, secret, *config.iterdir(), *secret.iterdir()):
        path.chmod(0o755 if path.is_dir() else 0o644)
    name = f"selfheal-lb-redis-test-{uuid.uuid4().hex[:8]}"
    _docker(
        "run", "-d", "--name", name, "--read-only", "--user", f"{RUN_AS_ID}:{RUN_AS_ID}",
        "--cap-drop", "ALL", "--security-opt", "no-new-privileges",
        "--tmpfs", f"/data:uid={RUN_AS_ID},gid={RUN_AS_ID}",
        "-v", f"{config}:{CONFIG_DIR}:ro", "-v", f"{secret}:{SECRET_DIR}:ro",
        image, "redis-server", f"{CONFIG_DIR}/redis.conf",
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        while _cli(name, "ping") != "PONG":
            assert time.monotonic() < deadline, _docker("logs", name, check=False).stderr[-2000:]
            time.sleep(0.3)
        assert "NOAUTH" in _cli(name, "ping", password="") or "AUTH" in _cli(
            name, "ping", password="wrong"
        )
        assert _cli(name, "incr", "articles:views:1") == "1"
        assert _cli(name, "config", "get", "appendonly").splitlines()[-1] == "yes"
        assert _cli(name, "config", "get", "maxmemory").splitlines()[-1] == str(
            128 * 2**20 * 3 // 4
        )
    finally:
        _docker("rm", "-f", name, check=False)
