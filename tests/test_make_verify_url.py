"""`make verify-url` sends its requests to the stack's `url` output (not a hard-coded port), and
says in one line why not when the stack has no address yet. Stand-in pulumi/python record it."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from components.outputs import external_ip_note
from components.settings import ClusterSettings

ROOT = Path(__file__).resolve().parent.parent


def _make_verify_url(
    tmp_path: Path, url: str, target: str = "verify-url"
) -> tuple[subprocess.CompletedProcess[str], str]:
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    (venv / ".installed").touch()  # the venv target is up to date
    calls = tmp_path / "calls.log"
    outputs = {"url": url, "appReplicas": "4", "externalIpNote": "pending: run minikube tunnel",
               "namespace": "selfheal-lb-dev"}  # fmt: skip
    cases = "".join(
        f'  "stack output --stack dev {k}") echo "{v}" ;;\n' for k, v in outputs.items()
    )
    tools = {
        "pulumi": f'case "$*" in\n{cases}esac\n',
        "python": f'echo "python $*" >> "{calls}"\n',
    }
    for name, body in tools.items():
        path = (venv / "bin" / name) if name == "python" else (tmp_path / name)
        path.write_text(f"#!/bin/bash\n{body}")
        path.chmod(0o755)
    make = shutil.which("make")
    if make is None:
        pytest.skip("make is not installed")
    proc = subprocess.run(
        [make, "-s", "--no-print-directory", target, f"VENV={venv}"],
        env={"PATH": f"{tmp_path}:/usr/bin:/bin", "HOME": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )
    return proc, calls.read_text() if calls.exists() else ""


def test_verify_url_uses_the_url_output(tmp_path):
    proc, calls = _make_verify_url(tmp_path, "http://198.51.100.7:9090/")
    assert proc.returncode == 0, proc.stderr
    assert "--url http://198.51.100.7:9090/article1" in calls
    assert "--expect-pods 4" in calls


def test_rollout_check_uses_the_url_output(tmp_path):
    proc, calls = _make_verify_url(tmp_path, "http://198.51.100.7:9090/", "rollout-check")
    assert proc.returncode == 0, proc.stderr
    assert "rollout-check --url http://198.51.100.7:9090/article1" in calls
    assert "--namespace selfheal-lb-dev" in calls


@pytest.mark.parametrize("target", ["verify-url", "rollout-check"])
def test_verify_url_without_an_address_says_why_in_one_line(tmp_path, target):
    proc, calls = _make_verify_url(tmp_path, "", target)
    assert proc.returncode != 0
    lines = proc.stderr.strip().splitlines()
    assert lines[0] == (
        "selfheal-lb: the stack's url output is empty: pending: run minikube tunnel"
    ), proc.stderr
    assert calls == "", "no request is sent"


def test_the_pending_note_says_pulumi_up_refresh():
    """`pulumi refresh` does not re-run the program, so it would leave the outputs empty."""
    from components import offline

    s = offline.settings_for("dev")
    note = external_ip_note("", s.app, ClusterSettings("", "selfheal-lb-dev"))
    assert "`pulumi up --refresh`" in note and "`pulumi refresh` alone does not" in note
