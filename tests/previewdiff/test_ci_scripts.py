"""The preview workflow's two helpers, run for real with stand-in `gh`, `docker` and `kind`
that record their calls: scripts/pr-comment.sh (edit the bot's earlier comment or add one; the
`--jq` filter is applied by the real jq) and scripts/kind-load-image.sh (build and load into
kind exactly the image the base's stack will ask for). GitHub and kind themselves are not
reached here."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from components.image import content_hash
from previewdiff.markdown import MARKER

ROOT = Path(__file__).resolve().parents[2]
TOOLS = ("bash", "head", "tail", "cat", "mktemp", "rm", "dirname", "jq")


@pytest.fixture
def bin_dir(tmp_path: Path) -> Path:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name in TOOLS:
        found = shutil.which(name)
        if found is None:
            pytest.skip(f"{name} is not installed (scripts/install-tools.sh installs jq)")
        (bin_dir / name).symlink_to(found)
    return bin_dir


def record(bin_dir: Path, name: str, body: str = "") -> None:
    path = bin_dir / name
    path.write_text(f'#!/bin/bash\necho "{name} $*" >> "$CALLS"\n{body}\n')
    path.chmod(0o755)


def calls(tmp_path: Path) -> list[str]:
    log = tmp_path / "calls.log"
    return log.read_text().splitlines() if log.exists() else []


# --- scripts/pr-comment.sh --------------------------------------------------------------------


def fake_gh(bin_dir: Path, comments: list[dict]) -> None:
    """`gh api --paginate URL --jq FILTER` answers with `comments` filtered by the real jq."""
    (bin_dir / "comments.json").write_text(json.dumps(comments))
    record(bin_dir, "gh", f"""
if [ "$1 $2" = "api --paginate" ]; then
  jq -r "$5" "{bin_dir / 'comments.json'}"
fi
""")


def post(tmp_path: Path, bin_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(ROOT / "scripts" / "pr-comment.sh"), *args],
        env={"PATH": str(bin_dir), "CALLS": str(tmp_path / "calls.log"),
             "GITHUB_REPOSITORY": "acme/selfheal-lb", "GH_TOKEN": "t"},
        capture_output=True, text=True, timeout=60,
    )


@pytest.fixture
def body(tmp_path: Path) -> Path:
    path = tmp_path / "comment.md"
    path.write_text(f"{MARKER}\n### Preview\n\n**No changes.** 16 resources unchanged.\n")
    return path


def test_the_first_preview_adds_a_comment(tmp_path, bin_dir, body):
    fake_gh(bin_dir, [{"id": 5, "user": {"login": "alice"}, "body": "looks good"}])
    proc = post(tmp_path, bin_dir, "12", str(body))
    assert proc.returncode == 0, proc.stderr
    assert calls(tmp_path)[-1] == (
        f"gh api --method POST repos/acme/selfheal-lb/issues/12/comments -F body=@{body}")


def test_a_later_push_edits_the_bots_last_preview_comment(tmp_path, bin_dir, body):
    fake_gh(bin_dir, [
        {"id": 7, "user": {"login": "github-actions[bot]"}, "body": f"{MARKER}\nold"},
        {"id": 8, "user": {"login": "alice"}, "body": f"{MARKER}\nquoted by a person"},
        {"id": 9, "user": {"login": "github-actions[bot]"}, "body": f"{MARKER}\nnewer"},
        {"id": 10, "user": {"login": "github-actions[bot]"}, "body": "another bot comment"},
    ])
    proc = post(tmp_path, bin_dir, "12", str(body))
    assert proc.returncode == 0, proc.stderr
    assert calls(tmp_path)[-1] == (
        f"gh api --method PATCH repos/acme/selfheal-lb/issues/comments/9 -F body=@{body}")
    assert "updated comment 9 on #12" in proc.stdout


@pytest.mark.parametrize(
    ("args", "needle"),
    [(("x", "c.md"), "usage:"), (("12", "/nonexistent.md"), "missing or empty")],
)
def test_bad_arguments_are_one_line(tmp_path, bin_dir, args, needle):
    fake_gh(bin_dir, [])
    proc = post(tmp_path, bin_dir, *args)
    assert proc.returncode == 1
    (line,) = proc.stderr.splitlines()
    assert line.startswith("selfheal-lb: ") and needle in line
    assert calls(tmp_path) == []


# --- scripts/kind-load-image.sh ---------------------------------------------------------------


def load(tmp_path: Path, bin_dir: Path, stack: str) -> subprocess.CompletedProcess[str]:
    record(bin_dir, "docker")
    record(bin_dir, "kind")
    return subprocess.run(
        [str(ROOT / "scripts" / "kind-load-image.sh"), "selfheal-lb-preview", stack],
        cwd=ROOT,  # it only reads the checkout; the render goes to a temp dir
        env={"PATH": str(bin_dir), "CALLS": str(tmp_path / "calls.log"),
             "PYTHON": sys.executable, "HOME": str(tmp_path), "TMPDIR": str(tmp_path)},
        capture_output=True, text=True, timeout=120,
    )


def test_the_image_the_stack_builds_is_built_and_loaded_under_the_tag_it_will_ask_for(
    tmp_path, bin_dir
):
    proc = load(tmp_path, bin_dir, "dev")
    assert proc.returncode == 0, proc.stderr
    ref = f"selfheal-lb/articles:{content_hash(ROOT / 'app')}"
    assert calls(tmp_path) == [
        f"docker build -t {ref} -f app/Dockerfile app",
        f"kind load docker-image {ref} --name selfheal-lb-preview",
    ]
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith("tmp")] == []


def test_a_stack_with_a_prebuilt_image_loads_nothing(tmp_path, bin_dir):
    proc = load(tmp_path, bin_dir, "kind")  # Pulumi.kind.yaml sets imageRef
    assert proc.returncode == 0, proc.stderr
    assert "builds no image" in proc.stdout
    assert calls(tmp_path) == []


def test_an_unknown_stack_fails_in_one_line(tmp_path, bin_dir):
    proc = load(tmp_path, bin_dir, "nosuch")
    assert proc.returncode == 1
    assert proc.stderr.splitlines()[-1].startswith("selfheal-lb: ")
    assert calls(tmp_path) == []


def test_scripts_are_executable():
    for name in ("preview-diff.sh", "pr-comment.sh", "kind-load-image.sh"):
        assert os.access(ROOT / "scripts" / name, os.X_OK), name
