"""tests/unit_guard.py: a test not marked slow that starts a tool or leaves loopback fails, in
one line naming it and the fix; the same test marked slow passes. Run as real pytest sessions."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import unit_guard

TESTS = Path(__file__).resolve().parent

SESSION = '''
import subprocess
import pytest

def test_unit_starts_haproxy():
    subprocess.run(["haproxy", "-v"], check=True)

@pytest.mark.slow
def test_slow_starts_haproxy():
    subprocess.run(["haproxy", "-v"], check=True)

def test_unit_runs_python():
    subprocess.run(["true"], check=True)
'''


def test_a_unit_test_that_starts_a_tool_fails_and_a_slow_one_passes(tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    standin = bin_dir / "haproxy"  # a stand-in: the name is what the guard looks at
    standin.write_text("#!/bin/sh\nexit 0\n")
    standin.chmod(0o755)
    (tmp_path / "test_session.py").write_text(SESSION)
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "PYTHONPATH": str(TESTS)}
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "unit_guard", "-p", "no:cacheprovider",
         "-q", "-rf", "test_session.py"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120, check=False,
    )
    assert proc.returncode == 1, proc.stdout
    assert "1 failed, 2 passed" in proc.stdout
    assert (
        "test_session.py::test_unit_starts_haproxy starts haproxy: a unit test needs no tools, "
        "network or cluster; mark it @pytest.mark.slow"
    ) in proc.stdout


@pytest.mark.parametrize(
    ("event", "args", "refusal"),
    [
        ("socket.connect", (None, ("10.199.0.1", 6443)), "connects to 10.199.0.1"),
        ("socket.connect", (None, ("127.0.0.1", 8080)), None),
        ("socket.connect", (None, ("::1", 8080, 0, 0)), None),
        ("socket.connect", (None, "/run/docker.sock"), "connects to /run/docker.sock"),
        ("socket.connect", (None, "/tmp/x/app.sock"), None),
        ("socket.getaddrinfo", ("github.com", 443, 0, 0, 0), "looks up github.com"),
        ("socket.getaddrinfo", ("localhost", 80, 0, 0, 0), None),
        ("subprocess.Popen", ("/bin/sh", ["/bin/sh", "-c", "fortio load x"], None, None),
         "starts fortio"),
        ("subprocess.Popen", ("/usr/bin/git", ["git", "status"], None, None), None),
        ("os.system", (b"kubectl get pods",), "starts kubectl"),
    ],
)
def test_what_a_unit_test_may_not_do(event: str, args: tuple, refusal: str | None) -> None:
    assert unit_guard._refusal(event, args) == refusal
