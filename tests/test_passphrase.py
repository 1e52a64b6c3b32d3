"""The published dev passphrase encrypts only the local backend's dev stacks: the Makefile gives it
to dev, kind and local on the checkout's file backend, and refuses any other passphrase-backed
stack without a passphrase of its own, in one line, before pulumi runs."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHOW = "show-passphrase: ; @echo \"[$$PULUMI_CONFIG_PASSPHRASE]\""


def make(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("PULUMI_", "MAKE")) and k != "STACK"
    }
    return subprocess.run(
        ["make", "--no-print-directory", "-C", str(ROOT), f"--eval={SHOW}", *args],
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize("stack", ["dev", "kind", "local"])
def test_dev_stacks_on_the_checkouts_backend_get_the_dev_passphrase(stack: str) -> None:
    proc = make("show-passphrase", f"STACK={stack}")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[selfheal-lb-dev]"


@pytest.mark.parametrize(
    ("stack", "backend"),
    [("prod", ""), ("dev", "s3://state-bucket"), ("staging", "file:///srv/pulumi-state")],
)
def test_any_other_stack_without_a_passphrase_is_refused_in_one_line(
    stack: str, backend: str
) -> None:
    env = {"PULUMI_BACKEND_URL": backend} if backend else {}
    shown = make("show-passphrase", f"STACK={stack}", **env)
    assert shown.stdout.strip() == "[]", "the dev passphrase is not handed out"
    for goal in ("up", "preview", "destroy"):
        proc = make("-n", goal, f"STACK={stack}", **env)
        assert proc.returncode != 0
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1, lines
        assert f"stack '{stack}'" in lines[0] and "PULUMI_CONFIG_PASSPHRASE" in lines[0]


def test_a_passphrase_of_ones_own_or_pulumi_cloud_is_not_refused() -> None:
    own = make("-n", "up", "STACK=prod", PULUMI_CONFIG_PASSPHRASE="correct horse")
    assert own.returncode == 0, own.stderr
    from_file = make("-n", "up", "STACK=prod", PULUMI_CONFIG_PASSPHRASE_FILE="/run/pp")
    assert from_file.returncode == 0, from_file.stderr
    cloud = make("-n", "up", "STACK=prod", PULUMI_BACKEND_URL="https://api.pulumi.com")
    assert cloud.returncode == 0, cloud.stderr
    shown = make("show-passphrase", "STACK=prod", PULUMI_BACKEND_URL="https://x")
    assert shown.stdout.strip() == "[]"
