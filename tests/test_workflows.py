"""The GitHub Actions workflows: valid against the workflow JSON schema (checked offline with
check-jsonschema's vendored copy), every action pinned to a commit, and the behaviour the
README promises (PR preview diff against the base branch's deployment with a comment, skip
notice without secrets, the kind e2e run). Step scripts run here with stand-in tools; the
workflows themselves run only on GitHub."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
WORKFLOWS = ROOT / ".github" / "workflows"
PREVIEW = WORKFLOWS / "preview.yml"
E2E = WORKFLOWS / "e2e.yml"
PINNED_USES = re.compile(
    r"^\s*(?:-\s+)?uses:\s+(?P<action>[\w.-]+/[\w./-]+)@(?P<sha>[0-9a-f]{40})\s+#\s+v\d+\.\d+\.\d+\s*$"
)

# check-jsonschema run with every socket refused: the vendored schema must be all it needs.
OFFLINE_CHECK = textwrap.dedent(
    """
    import runpy, socket, sys

    def refuse(*args, **kwargs):
        raise OSError("network access attempted during an offline schema check")

    socket.socket.connect = refuse
    socket.getaddrinfo = refuse
    sys.argv = ["check-jsonschema", "--builtin-schema", "vendor.github-workflows", *sys.argv[1:]]
    runpy.run_module("check_jsonschema", run_name="__main__")
    """
)


def load(path: Path) -> dict[str, Any]:
    # PyYAML (YAML 1.1) reads the key `on` as True; map it back.
    doc = yaml.safe_load(path.read_text())
    if True in doc:
        doc["on"] = doc.pop(True)
    return doc


def steps(doc: dict[str, Any]) -> list[dict[str, Any]]:
    (job,) = doc["jobs"].values()
    return job["steps"]


def step(doc: dict[str, Any], uses_prefix: str = "", name_part: str = "") -> dict[str, Any]:
    found = [
        s
        for s in steps(doc)
        if (uses_prefix and s.get("uses", "").startswith(uses_prefix))
        or (name_part and name_part in s.get("name", ""))
    ]
    assert len(found) == 1, (uses_prefix, name_part, found)
    return found[0]


def schema_check(*files: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", OFFLINE_CHECK, *map(str, files)],
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_both_workflows_validate_against_the_vendored_workflow_schema_offline():
    result = schema_check(PREVIEW, E2E)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "ok -- validation done" in result.stdout


def test_the_offline_schema_check_rejects_an_invalid_workflow(tmp_path):
    broken = tmp_path / "broken.yml"
    # A job without runs-on, and a step with an unknown key.
    broken.write_text(
        "on: push\njobs:\n  a:\n    steps:\n      - run: make test\n        shel: bash\n"
    )
    result = schema_check(broken)
    assert result.returncode == 1
    assert "runs-on" in result.stdout


@pytest.mark.parametrize("path", [PREVIEW, E2E], ids=lambda p: p.name)
def test_every_action_is_pinned_to_a_commit_sha_with_its_version(path):
    lines = [line for line in path.read_text().splitlines() if re.match(r"^\s*(-\s+)?uses:", line)]
    used = [s["uses"] for s in steps(load(path)) if "uses" in s]
    assert len(lines) == len(used) > 0
    unpinned = [line.strip() for line in lines if not PINNED_USES.match(line)]
    assert unpinned == [], "pin to a 40-hex commit SHA followed by '# vX.Y.Z'"


def test_one_action_has_one_pin_across_both_workflows():
    pins: dict[str, set[str]] = {}
    for path in (PREVIEW, E2E):
        for s in steps(load(path)):
            if "uses" in s:
                action, sha = s["uses"].split("@")
                pins.setdefault(action, set()).add(sha)
    assert {a: len(s) for a, s in pins.items() if len(s) > 1} == {}


@pytest.mark.parametrize("path", [PREVIEW, E2E], ids=lambda p: p.name)
def test_every_run_script_is_valid_bash_with_pipefail(path):
    doc = load(path)
    assert doc["defaults"]["run"]["shell"] == "bash"  # bash -eo pipefail on GitHub runners
    for s in steps(doc):
        if "run" in s:
            result = subprocess.run(["bash", "-n"], input=s["run"], capture_output=True, text=True)
            assert result.returncode == 0, (s.get("name"), result.stderr)


# --- preview.yml -------------------------------------------------------------------------


def test_preview_runs_on_pull_requests_with_minimal_permissions():
    doc = load(PREVIEW)
    assert set(doc["on"]) == {"pull_request"}
    assert doc["permissions"] == {"contents": "read", "pull-requests": "write"}


def test_preview_runs_the_tests_then_deploys_the_base_previews_the_head_and_comments():
    doc = load(PREVIEW)
    texts = [s.get("run", "") + s.get("uses", "") for s in steps(doc)]

    def at(fragment: str) -> int:
        (i,) = [n for n, text in enumerate(texts) if fragment in text]
        return i

    assert (
        at("make test")
        < at("configured=true")
        < at("helm/kind-action@")
        < at("pulumi/actions@")
        < at("make policy-venv")
        < at("scripts/preview-diff.sh")
        < at("actions/upload-artifact@")
        < at("scripts/pr-comment.sh")
        < at('exit "${PREVIEW_RC:-1}"')
    )


def test_preview_only_installs_the_cli_the_e2e_run_uses():
    pulumi = step(load(PREVIEW), uses_prefix="pulumi/actions@")
    # No `command`: the action installs the CLI; scripts/preview-diff.sh runs it.
    assert pulumi["with"] == {"pulumi-version": load(E2E)["env"]["PULUMI_VERSION"]}


def test_preview_deploys_the_merge_commits_first_parent_to_a_per_pull_request_stack():
    doc = load(PREVIEW)
    assert step(doc, uses_prefix="actions/checkout@")["with"]["fetch-depth"] == 2
    diff = step(doc, name_part="Deploy the base branch")
    assert "./scripts/preview-diff.sh HEAD^1 dev --policy-pack policy" in diff["run"]
    assert 'PREVIEW_DIFF_STACK="dev-pr$PR"' in diff["run"]
    assert diff["env"]["PR"] == "${{ github.event.pull_request.number }}"
    cluster = step(doc, uses_prefix="helm/kind-action@")["with"]["cluster_name"]
    assert f"scripts/kind-load-image.sh {cluster}" in diff["run"]


def fake_tool(bin_dir: Path, name: str, body: str) -> None:
    (bin_dir / name).write_text(f'#!/bin/bash\necho "{name} $*" >> "$CALLS"\n{body}\n')
    (bin_dir / name).chmod(0o755)


def run_step(
    tmp_path: Path, name_part: str, env: dict[str, str], files: dict[str, str] | None = None
) -> subprocess.CompletedProcess:
    """A preview.yml step's script, in a scratch checkout with stand-in scripts and pulumi."""
    work = tmp_path / "work"
    (work / "scripts").mkdir(parents=True)
    for name, text in (files or {}).items():
        (work / name).parent.mkdir(parents=True, exist_ok=True)
        (work / name).write_text(text)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake_tool(bin_dir, "pulumi", "exit 1")  # no stack to remove
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@example.invalid"]
    subprocess.run([*git, "init", "-q"], cwd=work, check=True)
    for message in ("base", "merge"):
        subprocess.run([*git, "commit", "-q", "--allow-empty", "-m", message], cwd=work, check=True)
    for script in ("preview-diff.sh", "pr-comment.sh"):
        fake_tool(work / "scripts", script, 'env | grep ^PREVIEW_DIFF_ | sort >> "$CALLS"\n'
                  'exit "${FAKE_RC:-0}"')
    return subprocess.run(
        ["bash", "-eo", "pipefail", "-c", step(load(PREVIEW), name_part=name_part)["run"]],
        cwd=work, capture_output=True, text=True, timeout=60,
        env={"PATH": f"{bin_dir}:{os.environ['PATH']}", "CALLS": str(tmp_path / "calls"),
             "GITHUB_ENV": str(tmp_path / "github_env"), "GITHUB_WORKSPACE": str(work),
             "GITHUB_STEP_SUMMARY": str(tmp_path / "summary"), **env},
    )


def test_the_diff_step_records_the_flows_exit_code_instead_of_stopping(tmp_path):
    env = {"PR": "12", "PR_HEAD_SHA": "abcdef0123456789", "BASE_BRANCH": "main", "FAKE_RC": "3"}
    proc = run_step(tmp_path, "Deploy the base branch", env)
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "github_env").read_text() == "PREVIEW_RC=3\n"
    log = (tmp_path / "calls").read_text().splitlines()
    assert log[0] == "pulumi stack rm dev-pr12 --force --yes --non-interactive"
    assert log[1] == "preview-diff.sh HEAD^1 dev --policy-pack policy"
    exported = dict(line.split("=", 1) for line in log[2:])
    assert exported["PREVIEW_DIFF_STACK"] == "dev-pr12"
    assert exported["PREVIEW_DIFF_CLEANUP"] == "forget"
    assert exported["PREVIEW_DIFF_HEAD_LABEL"] == "#12 (abcdef0)"
    assert re.fullmatch(r"main \([0-9a-f]{7,}\)", exported["PREVIEW_DIFF_BASE_LABEL"])
    assert exported["PREVIEW_DIFF_BEFORE_UP"].endswith(
        "/scripts/kind-load-image.sh selfheal-lb-preview")


def test_the_comment_step_posts_the_comment_and_warns_when_there_is_none(tmp_path):
    proc = run_step(tmp_path, "Comment on the pull request", {"PR": "12"})
    assert proc.returncode == 0
    assert proc.stdout.startswith("::warning title=no preview comment::")
    assert not (tmp_path / "calls").exists()

    comment = "<!-- selfheal-lb:preview-diff -->\n**No changes.**\n"
    other = tmp_path / "posted"
    proc = run_step(other, "Comment on the pull request", {"PR": "12"},
                    files={"build/preview-diff/comment.md": comment})
    assert proc.returncode == 0, proc.stderr
    assert (other / "calls").read_text().splitlines()[0] == (
        "pr-comment.sh 12 build/preview-diff/comment.md")
    assert (other / "summary").read_text() == comment


def test_the_last_step_fails_the_job_with_the_flows_exit_code():
    script = step(load(PREVIEW), name_part="Fail when")["run"]
    for env, code in (({"PREVIEW_RC": "0"}, 0), ({"PREVIEW_RC": "2"}, 2), ({}, 1)):
        proc = subprocess.run(["bash", "-eo", "pipefail", "-c", script], env=env, timeout=30)
        assert proc.returncode == code, env


def test_every_step_after_the_backend_gate_is_skipped_without_a_backend():
    doc = load(PREVIEW)
    all_steps = steps(doc)
    gate_at = next(i for i, s in enumerate(all_steps) if s.get("id") == "backend")
    after = all_steps[gate_at + 1 :]
    assert after and all(s.get("if") == "steps.backend.outputs.configured == 'true'" for s in after)


class GateFailed(Exception):
    pass


def run_gate(tmp_path: Path, **secrets: str) -> tuple[str, dict[str, str], str]:
    gate = step(load(PREVIEW), name_part="backend configured")
    out, env_file = tmp_path / "output", tmp_path / "env"
    env = {
        "PATH": os.environ["PATH"],
        "GITHUB_OUTPUT": str(out),
        "GITHUB_ENV": str(env_file),
        "BACKEND_URL": secrets.get("url", ""),
        "ACCESS_TOKEN": secrets.get("token", ""),
        "PASSPHRASE": secrets.get("passphrase", ""),
    }
    result = subprocess.run(
        ["bash", "-eo", "pipefail", "-c", gate["run"]], env=env, capture_output=True, text=True
    )
    if result.returncode != 0:
        raise GateFailed(result.stdout)
    exported = dict(
        line.split("=", 1) for line in (env_file.read_text() if env_file.exists() else "").split()
    )
    return out.read_text(), exported, result.stdout


def test_without_backend_secrets_the_preview_is_skipped_with_a_notice(tmp_path):
    output, exported, stdout = run_gate(tmp_path)
    assert output.strip() == "configured=false"
    assert exported == {}
    assert stdout.startswith("::notice title=pulumi preview skipped::")


def run_pulumi_step(tmp_path: Path, **secrets: str) -> dict[str, str]:
    """The step that runs pulumi, with stand-ins for pulumi, git and preview-diff.sh: the
    environment preview-diff.sh gets."""
    deploy = step(load(PREVIEW), name_part="Deploy the base branch")
    bin_dir, scripts = tmp_path / "bin", tmp_path / "scripts"
    bin_dir.mkdir()
    scripts.mkdir()
    for tool in ("pulumi", "git"):
        (bin_dir / tool).write_text("#!/bin/sh\necho 0000000\n")
        (bin_dir / tool).chmod(0o755)
    dump = tmp_path / "env-of-preview-diff"
    (scripts / "preview-diff.sh").write_text(f"#!/bin/sh\nenv > {dump}\n")
    (scripts / "preview-diff.sh").chmod(0o755)
    env = {
        "PATH": f"{bin_dir}:{os.environ['PATH']}",
        "GITHUB_ENV": str(tmp_path / "github-env"),
        "GITHUB_WORKSPACE": str(tmp_path),
        "PR": "12",
        "PR_HEAD_SHA": "abcdef0123",
        "BASE_BRANCH": "main",
    }
    for name, value in deploy["env"].items():
        if "secrets." in str(value):
            key = {"PULUMI_BACKEND_URL": "url", "PULUMI_ACCESS_TOKEN": "token"}.get(
                str(value).split("secrets.")[1].split()[0], "passphrase"
            )
            env[name] = secrets.get(key, "")
    proc = subprocess.run(
        ["bash", "-eo", "pipefail", "-c", deploy["run"]],
        env=env, cwd=tmp_path, capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    seen = dict(line.split("=", 1) for line in dump.read_text().splitlines() if "=" in line)
    return {k: v for k, v in seen.items() if k.startswith(("PULUMI_", "SECRET_"))}


def test_a_pulumi_cloud_token_alone_enables_the_preview_without_an_empty_backend_url(tmp_path):
    output, exported, _ = run_gate(tmp_path, token="pul-123")
    assert output.strip() == "configured=true"
    assert exported == {}, "no secret in the job's environment file"
    assert run_pulumi_step(tmp_path, token="pul-123") == {"PULUMI_ACCESS_TOKEN": "pul-123"}


def test_a_self_managed_backend_gets_its_url_and_passphrase_in_the_pulumi_step_only(tmp_path):
    _, exported, _ = run_gate(tmp_path, url="s3://state-bucket", passphrase="pw")
    assert exported == {}, "no secret in the job's environment file"
    seen = run_pulumi_step(tmp_path, url="s3://state-bucket", passphrase="pw")
    assert seen == {"PULUMI_BACKEND_URL": "s3://state-bucket", "PULUMI_CONFIG_PASSPHRASE": "pw"}


def test_only_the_gate_and_the_pulumi_step_see_the_backend_secrets():
    holders = [
        s["name"]
        for s in steps(load(PREVIEW))
        if any("secrets.PULUMI" in str(v) for v in (s.get("env") or {}).values())
    ]
    assert holders == [
        "Is a Pulumi backend configured?",
        "Deploy the base branch, preview the pull request against it",
    ]
    assert "GITHUB_ENV" not in step(load(PREVIEW), name_part="backend configured")["run"]


# --- e2e.yml -----------------------------------------------------------------------------


def kind_stack() -> dict[str, Any]:
    return yaml.safe_load((ROOT / "Pulumi.kind.yaml").read_text())["config"]


def test_e2e_runs_on_pushes_to_main_and_on_demand():
    doc = load(E2E)
    assert doc["on"]["push"] == {"branches": ["main"]}
    assert "workflow_dispatch" in doc["on"]
    assert doc["permissions"] == {"contents": "read"}


def test_e2e_deploys_the_image_and_context_the_kind_stack_names():
    doc, config = load(E2E), kind_stack()
    assert config["selfheal-lb:imageRef"] == doc["env"]["IMAGE"]
    assert config["selfheal-lb:kubeContext"] == f"kind-{doc['env']['KIND_CLUSTER']}"
    assert config["selfheal-lb:imagePullPolicy"] == "Never"
    assert config["selfheal-lb:serviceType"] == "LoadBalancer"
    assert config["selfheal-lb:serviceAwaitLoadBalancer"] is True
    build = step(doc, name_part="Build the app image")["run"]
    assert 'docker build -t "$IMAGE" app/' in build and "kind load docker-image" in build


def test_e2e_order_up_verify_drill_destroy_check_with_logs_on_failure():
    doc = load(E2E)
    scripts = [s.get("run", "") + s.get("uses", "") for s in steps(doc)]

    def at(fragment: str) -> int:
        (i,) = [n for n, text in enumerate(scripts) if fragment in text]
        return i

    assert (
        at("stack.sh up")
        < at('.verdict == "balanced"')
        < at("loadgen drill")
        < at("pulumi destroy")
        < at("api-resources")
    )
    assert "--kill 1 --timeout 120" in scripts[at("loadgen drill")]
    assert "--policy-pack policy" in scripts[at("stack.sh up")]
    upload = step(doc, uses_prefix="actions/upload-artifact@")
    assert upload["if"] == "failure()"
    assert step(doc, name_part="pulumi destroy")["if"].startswith("always()")


def test_e2e_asks_the_real_engine_what_make_e2e_cannot():
    """After the drill, before destroy: an unchanged preview plans nothing, a renamed context
    replaces no Kubernetes object, a re-verification (a new fortio Job) succeeds, balanced."""
    doc = load(E2E)
    scripts = [s.get("run", "") for s in steps(doc)]

    def at(fragment: str) -> int:
        (i,) = [n for n, text in enumerate(scripts) if fragment in text]
        return i

    drill, destroy = at("loadgen drill"), at("pulumi destroy")
    for fragment in ("--expect-no-changes", "rename-context", "stack.sh reverify"):
        assert drill < at(fragment) < destroy, fragment
    context = scripts[at("rename-context")]
    # The context is put back before the check can fail, so destroy finds the cluster.
    assert context.index('kubeContext "kind-$KIND_CLUSTER"') < context.index("jq -e")
    assert "YES=1" in scripts[at("stack.sh reverify")]


def test_the_leftover_check_is_a_bounded_loop_on_the_part_of_label_and_namespace():
    doc = load(E2E)
    check = step(doc, name_part="nothing of the stack is left")["run"]
    assert doc["env"]["PART_OF"] == "app.kubernetes.io/part-of=selfheal-lb"
    assert re.search(r"for attempt in \$\(seq 1 \d+\)", check)
    assert '-l "$PART_OF"' in check and 'get namespace "$ns"' in check


def test_a_self_managed_backend_without_its_passphrase_fails_with_a_clear_error(tmp_path):
    with pytest.raises(GateFailed, match="needs the stack's passphrase"):
        run_gate(tmp_path, url="s3://state-bucket")


def test_e2e_checks_the_stack_installed_metrics_server_and_that_destroy_kept_it():
    doc = load(E2E)
    installed = step(doc, name_part="installed metrics-server")["run"]
    assert ".installedByThisStack == true" in installed
    kept = step(doc, name_part="metrics-server was kept")
    assert kept["if"] == "always() && steps.destroy.conclusion == 'success'"
    assert "selfheal-lb/owner-stack" in kept["run"]
    # The removal docs/metrics-server.md gives, selecting only what the stack labelled.
    readme = (ROOT / "docs" / "metrics-server.md").read_text()
    selector = "-l selfheal-lb/installed=metrics-server"
    for command in (
        f"kubectl delete apiservice,clusterrole,clusterrolebinding {selector}",
        f"kubectl -n kube-system delete deployment,service,serviceaccount,rolebinding {selector}",
    ):
        assert command in kept["run"] and command in readme
