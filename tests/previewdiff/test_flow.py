"""scripts/preview-diff.sh (`make preview-diff BASE=…`, and the preview workflow): the flow
AROUND the engine, run for real in a scratch git repository with real git worktrees.

`pulumi` here is a stand-in (fake_pulumi.py) that records its calls and plays back the real
`pulumi preview --json` recordings; `make`, `kubectl` and `docker` are stand-ins too. So these
tests prove the orchestration (which commit is deployed where, which config is previewed
against which stack, backend, naming, cleanup, one-line refusals) and the comment it prints,
not the engine: no Pulumi program runs and no cluster is touched."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
COPIED = (
    "scripts", "components", "loadgen", "previewdiff", "Pulumi.yaml", "Pulumi.dev.yaml", "README.md"
)  # fmt: skip
TOOLS = ("bash", "dirname", "git", "mktemp", "cp", "rm", "mkdir", "grep", "tail", "cat", "ls",
         "sed", "tr", "env", "chmod")
pytestmark = pytest.mark.slow  # real git, bash and the stand-ins as processes, ~2 s a test

GIT_ENV = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.invalid",
           "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.invalid"}


def git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=repo, check=True, capture_output=True, text=True,
        env={**os.environ, **GIT_ENV},
    ).stdout.strip()


def stand_in(bin_dir: Path, name: str, body: str) -> None:
    path = bin_dir / name
    path.write_text(
        "#!/bin/bash\n"
        f'printf \'{{"tool": "{name}", "cwd": "%s", "args": "%s"}}\\n\' "$PWD" "$*" >> "$CALLS"\n'
        f"{body}\n"
    )
    path.chmod(0o755)


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A scratch copy of the project with one commit, tagged `base`."""
    repo = tmp_path / "repo"
    repo.mkdir()
    for name in COPIED:
        src = ROOT / name
        if src.is_dir():
            shutil.copytree(src, repo / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy(src, repo / name)
    (repo / ".gitignore").write_text("venv/\nbuild/\n.pulumi-state/\n__pycache__/\n")
    # No cluster answers here, so `auto` could not tell whether one serves metrics (the
    # preflight would stop): "false" goes on with a warning.
    set_config(repo, "metricsServerEnabled", '"false"')
    # The checkout's own virtualenv: this test's Python (it has pulumi, PyYAML).
    (repo / "venv" / "bin").mkdir(parents=True)
    (repo / "venv" / "bin" / "python").symlink_to(sys.executable)
    git(repo, "init", "-q", "-b", "main")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "base")
    git(repo, "tag", "base")
    return repo


@pytest.fixture
def bin_dir(tmp_path: Path) -> Path:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name in TOOLS:
        found = shutil.which(name)
        assert found, name
        (bin_dir / name).symlink_to(found)
    # `make -C DIR venv`: the base checkout's virtualenv, a python that runs this test's Python.
    venv_python = '"$2/venv/bin/python"'
    stand_in(bin_dir, "make", f'mkdir -p "$2/venv/bin" && '
             f'printf \'#!/bin/bash\\nexec "%s" "$@"\\n\' "$PYTHON" > {venv_python} && '
             f"chmod +x {venv_python}")
    stand_in(bin_dir, "kubectl",
             '[ "$1 $2" = "config current-context" ] && echo kind-preview; exit 0')
    stand_in(bin_dir, "docker", "exit 0")
    return bin_dir


def with_pulumi(bin_dir: Path) -> None:
    (bin_dir / "pulumi").write_text(
        f'#!/bin/bash\nexec "{sys.executable}" "{HERE / "fake_pulumi.py"}" "$@"\n'
    )
    (bin_dir / "pulumi").chmod(0o755)


def run(repo: Path, bin_dir: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    tmp = bin_dir.parent
    (tmp / "scratch").mkdir(exist_ok=True)
    base_env = {
        "PATH": str(bin_dir),
        "HOME": str(tmp),
        "TMPDIR": str(tmp / "scratch"),
        "CALLS": str(tmp / "calls.log"),
        "FAKE_PULUMI_STATE": str(tmp / "fake-state"),
        "PYTHON": sys.executable,
    }
    return subprocess.run(
        [str(repo / "scripts" / "preview-diff.sh"), *args],
        cwd=repo, env={**base_env, **env}, capture_output=True, text=True, timeout=120,
    )


def calls(bin_dir: Path, tool: str = "pulumi") -> list[dict[str, Any]]:
    log = bin_dir.parent / "calls.log"
    lines = log.read_text().splitlines() if log.exists() else []
    return [c for c in map(json.loads, lines) if c["tool"] == tool]


def pulumi_args(bin_dir: Path) -> list[str]:
    return [" ".join(c["args"]) for c in calls(bin_dir)]


def one_line_error(proc: subprocess.CompletedProcess[str], needle: str) -> None:
    assert proc.returncode == 1, proc
    lines = proc.stderr.strip().splitlines()
    assert lines[-1].startswith("selfheal-lb: ") and needle in lines[-1], proc.stderr
    assert "Traceback" not in proc.stderr


def set_config(repo: Path, key: str, value: str) -> None:
    path = repo / "Pulumi.dev.yaml"
    lines = path.read_text().splitlines()
    prefix = f"  selfheal-lb:{key}:"
    assert any(line.startswith(prefix) for line in lines), key
    path.write_text("\n".join(f"{prefix} {value}" if line.startswith(prefix) else line
                              for line in lines) + "\n")


def no_leftovers(repo: Path, bin_dir: Path) -> None:
    assert git(repo, "worktree", "list").count("\n") == 0, "the base worktree is removed"
    assert list((bin_dir.parent / "scratch").iterdir()) == [], "the temp dir is removed"


# --- refusals ------------------------------------------------------------------------------


def test_without_a_pulumi_cli_it_refuses_in_one_line_and_touches_nothing(repo, bin_dir):
    proc = run(repo, bin_dir, "base")
    assert proc.returncode == 1
    assert proc.stdout == ""
    (line,) = proc.stderr.strip().splitlines()
    assert line.startswith("selfheal-lb: preview-diff needs the pulumi CLI, which is not installed")
    assert "make preview-diff BASE=base" in line
    assert not (bin_dir.parent / "calls.log").exists()
    no_leftovers(repo, bin_dir)


def test_the_make_target_refuses_the_same_way_without_pulumi(repo, bin_dir):
    shutil.copy(ROOT / "Makefile", repo / "Makefile")
    (repo / "venv" / ".installed").touch()
    (repo / "policy" / "venv").mkdir(parents=True)
    (repo / "policy" / "venv" / ".installed").touch()
    for req in ("requirements.txt", "requirements-dev.txt", "app/requirements.txt",
                "policy/requirements.txt"):
        (repo / req).parent.mkdir(parents=True, exist_ok=True)
        (repo / req).touch()
        os.utime(repo / req, (1e9, 1e9))  # older than the virtualenvs: make builds nothing
    make = shutil.which("make")
    if make is None:
        pytest.skip("GNU make is not installed")
    (bin_dir / "make").unlink()
    (bin_dir / "make").symlink_to(make)
    proc = subprocess.run(
        ["make", "-s", "preview-diff", "BASE=base"], cwd=repo, capture_output=True, text=True,
        env={"PATH": str(bin_dir), "HOME": str(bin_dir.parent), "PYTHON": sys.executable},
        timeout=60,
    )
    assert proc.returncode != 0
    assert proc.stderr.splitlines()[0].startswith(
        "selfheal-lb: preview-diff needs the pulumi CLI, which is not installed")


@pytest.mark.parametrize(
    ("args", "env", "needle"),
    [
        ((), {}, "usage: make preview-diff BASE=<git ref>"),
        (("no-such-ref",), {}, "BASE 'no-such-ref' is not a commit in this repository"),
        (("base", "nosuch"), {}, "no stack config Pulumi.nosuch.yaml in this checkout"),
        (("base",), {"PREVIEW_DIFF_STACK": "dev"}, "must differ from 'dev'"),
        (("base",), {"PREVIEW_DIFF_STACK": "a b"}, "is not a stack name"),
        (("base",), {"PREVIEW_DIFF_CLEANUP": "later"}, "use destroy, forget or keep"),
        (("base",), {"PULUMI_BACKEND_URL": "s3://bucket"}, "PULUMI_CONFIG_PASSPHRASE is not set"),
    ],
)
def test_what_cannot_work_is_refused_in_one_line(repo, bin_dir, args, env, needle):
    with_pulumi(bin_dir)
    proc = run(repo, bin_dir, *args, **env)
    one_line_error(proc, needle)
    assert pulumi_args(bin_dir) == []
    no_leftovers(repo, bin_dir)


def test_a_base_without_the_stack_is_refused(repo, bin_dir):
    with_pulumi(bin_dir)
    (repo / "Pulumi.other.yaml").write_text("config: {}\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "other stack")
    one_line_error(run(repo, bin_dir, "base", "other"), "BASE 'base' has no Pulumi.other.yaml")


def test_an_unreachable_cluster_stops_it_before_anything_is_deployed(repo, bin_dir):
    with_pulumi(bin_dir)
    stand_in(bin_dir, "kubectl", '[ "$1 $2" = "config current-context" ] && echo kind-x; exit 1')
    proc = run(repo, bin_dir, "base")
    one_line_error(proc, "the cluster of context 'kind-x' is unreachable")
    assert pulumi_args(bin_dir) == []
    no_leftovers(repo, bin_dir)


# --- the flow --------------------------------------------------------------------------------


def test_a_docs_only_change_shows_no_changes_and_everything_is_cleaned_up(repo, bin_dir):
    with_pulumi(bin_dir)
    (repo / "README.md").write_text("docs only\n")
    proc = run(repo, bin_dir, "base")
    assert proc.returncode == 0, proc.stderr
    assert "**No changes.** 16 resources unchanged." in proc.stdout
    sha = git(repo, "rev-parse", "--short", "base")
    assert f"against base ({sha})" in proc.stdout.splitlines()[1]
    assert "with uncommitted changes" in proc.stdout.splitlines()[1]
    assert (repo / "build" / "preview-diff" / "comment.md").read_text() == proc.stdout

    made = calls(bin_dir, "make")
    assert [c["args"].split()[::2] for c in made] == [["-C", "venv"]]
    base_dir = made[0]["args"].split()[1]
    assert base_dir.startswith(str(bin_dir.parent / "scratch"))
    flow = calls(bin_dir)
    assert [(c["cwd"] == base_dir, " ".join(c["args"])) for c in flow] == [
        (True, "stack select --create dev-diff"),
        # scripts/stack.sh reads what auto decided from the outputs, before and after up
        (True, "stack output --stack dev-diff --json"),
        (True, "up --stack dev-diff --yes --refresh --skip-preview --non-interactive"),
        (True, "stack output --stack dev-diff --json"),
        (False, f"preview --stack dev-diff --config-file {flow[4]['args'][4]} --json "
                "--non-interactive"),
        (True, "stack select dev-diff --non-interactive"),  # does it exist? then clean it up
        (True, "destroy --stack dev-diff --yes --skip-preview --non-interactive"),
        (True, "stack rm dev-diff --yes --non-interactive"),
    ]
    assert flow[4]["cwd"] == str(repo), "the head is previewed in this checkout"
    state = bin_dir.parent / "fake-state" / "stacks"
    assert list(state.iterdir()) == [], "the throwaway stack is gone"
    no_leftovers(repo, bin_dir)


def test_the_base_is_deployed_from_base_and_the_head_previewed_with_its_own_config(repo, bin_dir):
    with_pulumi(bin_dir)
    set_config(repo, "appReplicas", "4")  # uncommitted, as a user edits
    proc = run(repo, bin_dir, "base", "dev", "--policy-pack", "policy",
               PREVIEW_DIFF_CLEANUP="keep")
    assert proc.returncode == 0, proc.stderr
    assert "- **update** `app-deployment` (Deployment): `spec.replicas: 3 → 4`" in proc.stdout
    deployed = (bin_dir.parent / "fake-state" / "stacks" / "dev-diff" / "deployed.yaml").read_text()
    assert "selfheal-lb:appReplicas: 3" in deployed
    preview = next(c for c in calls(bin_dir) if c["args"][0] == "preview")
    assert preview["args"][-2:] == ["--policy-pack", "policy"]
    assert "kept stack dev-diff" in proc.stderr
    assert [a for a in pulumi_args(bin_dir) if a.startswith(("destroy", "stack rm"))] == []


def test_a_committed_change_against_its_parent_adds_a_resource(repo, bin_dir):
    with_pulumi(bin_dir)
    set_config(repo, "metricsServerEnabled", '"true"')
    git(repo, "commit", "-qam", "this stack installs metrics-server")
    proc = run(repo, bin_dir, "HEAD~1", PREVIEW_DIFF_STACK="dev-pr7",
               PREVIEW_DIFF_HEAD_LABEL="#7 (abc1234)")
    assert proc.returncode == 0, proc.stderr
    assert "### Preview of stack `dev`: #7 (abc1234) against HEAD~1" in proc.stdout
    assert "- **create** `app-hpa` (HorizontalPodAutoscaler)" in proc.stdout
    assert "stack select --create dev-pr7" in pulumi_args(bin_dir)


def test_a_rerun_on_a_kept_stack_updates_it_in_place(repo, bin_dir):
    with_pulumi(bin_dir)
    assert run(repo, bin_dir, "base", PREVIEW_DIFF_CLEANUP="keep").returncode == 0
    set_config(repo, "appReplicas", "4")
    git(repo, "commit", "-qam", "4 replicas")
    git(repo, "tag", "four")
    set_config(repo, "appReplicas", "3")  # head back at 3: against the new base, one change
    proc = run(repo, bin_dir, "four")
    assert proc.returncode == 0, proc.stderr
    assert "`spec.replicas: 3 → 4`" in proc.stdout  # the recording's values; the point is:
    deployed_from = [c for c in calls(bin_dir) if c["args"][0] == "up"]
    assert len(deployed_from) == 2  # the kept stack was brought to the new base, not reused


def test_the_default_backend_is_the_makefiles_local_file_backend(repo, bin_dir):
    with_pulumi(bin_dir)
    assert run(repo, bin_dir, "base").returncode == 0
    backends = {(c["backend"], c["passphrase"]) for c in calls(bin_dir)}
    assert backends == {(f"file://{repo}/.pulumi-state", "selfheal-lb-dev")}
    assert (repo / ".pulumi-state").is_dir()


def test_a_pulumi_cloud_token_is_not_shadowed_by_the_local_default(repo, bin_dir):
    with_pulumi(bin_dir)
    assert run(repo, bin_dir, "base", PULUMI_ACCESS_TOKEN="pul-x").returncode == 0
    assert {c["backend"] for c in calls(bin_dir)} == {None}


def test_a_configured_backend_and_passphrase_are_used_as_given(repo, bin_dir, tmp_path):
    with_pulumi(bin_dir)
    url = f"file://{tmp_path / 'shared-state'}"
    proc = run(repo, bin_dir, "base", PULUMI_BACKEND_URL=url, PULUMI_CONFIG_PASSPHRASE="pw",
               PREVIEW_DIFF_CLEANUP="forget")
    assert proc.returncode == 0, proc.stderr
    assert {(c["backend"], c["passphrase"]) for c in calls(bin_dir)} == {(url, "pw")}
    tail = pulumi_args(bin_dir)[-1]
    assert tail == "stack rm dev-diff --force --yes --non-interactive"
    assert not any(a.startswith("destroy") for a in pulumi_args(bin_dir))


def test_the_head_config_carries_the_salt_pulumi_wrote_for_the_throwaway_stack(repo, bin_dir):
    with_pulumi(bin_dir)
    proc = run(repo, bin_dir, "base")
    assert proc.returncode == 0, proc.stderr
    assert "encryptionsalt" not in (repo / "Pulumi.dev.yaml").read_text(), "checkout untouched"
    assert not list(repo.glob("Pulumi.dev-diff.yaml")), "no stack file left in the checkout"


def test_a_hook_runs_in_the_base_checkout_before_it_is_deployed(repo, bin_dir):
    with_pulumi(bin_dir)
    stand_in(bin_dir, "kind", "exit 0")
    proc = run(repo, bin_dir, "base",
               PREVIEW_DIFF_BEFORE_UP='kind load docker-image "x" --stack "$DIFF_STACK"')
    assert proc.returncode == 0, proc.stderr
    (hook,) = calls(bin_dir, "kind")
    assert hook["args"] == "load docker-image x --stack dev-diff"
    base_dir = calls(bin_dir, "make")[0]["args"].split()[1]
    assert hook["cwd"] == base_dir


def test_a_failing_base_deployment_is_one_line_and_still_cleaned_up(repo, bin_dir):
    with_pulumi(bin_dir)
    proc = run(repo, bin_dir, "base",
               FAKE_PULUMI_UP_FAIL="kubernetes:apps/v1:Deployment articles: timed out")
    assert proc.returncode == 1
    (line,) = [x for x in proc.stderr.splitlines() if "failed" in x]
    assert line.startswith("selfheal-lb: deploying base (")
    assert line.endswith("(error: kubernetes:apps/v1:Deployment articles: timed out)")
    assert not any(a.startswith("preview") for a in pulumi_args(bin_dir))
    assert pulumi_args(bin_dir)[-2].startswith("destroy --stack dev-diff")
    no_leftovers(repo, bin_dir)


def test_a_failing_preview_still_prints_a_comment_and_fails(repo, bin_dir):
    with_pulumi(bin_dir)
    set_config(repo, "servicePort", "9090")  # the stand-in has no recording for this change
    proc = run(repo, bin_dir, "base")
    assert proc.returncode == 1
    assert "**The preview failed**" in proc.stdout
    # What pulumi printed on stderr is in the comment (policy violations only appear there).
    assert "no recording for a change of ['selfheal-lb:servicePort']" in proc.stdout
    assert "pulumi preview failed (exit 1)" in proc.stderr
    no_leftovers(repo, bin_dir)
