"""`make up|preview|destroy` preflight (scripts/stack.sh): every missing prerequisite is one
clear line and a non-zero exit, before pulumi runs. Runs the real script with a PATH that
holds only the tools each case should see (stand-in pulumi/kubectl/docker record their calls).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from fake_apiservice import FakeApiServer, apiservice, write_kubeconfig

pytestmark = pytest.mark.slow  # runs scripts/stack.sh and make as processes, with stand-in tools

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "scripts" / "stack.sh"
BASE_TOOLS = ("bash", "dirname", "ls", "sed", "tr", "mkdir", "cat")


def _tool(bin_dir: Path, name: str, body: str) -> None:
    path = bin_dir / name
    path.write_text(f"#!/bin/bash\necho \"{name} $*\" >> \"$CALLS\"\n{body}\n")
    path.chmod(0o755)


@pytest.fixture
def bin_dir(tmp_path: Path) -> Path:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name in BASE_TOOLS:
        found = shutil.which(name)
        assert found, name
        (bin_dir / name).symlink_to(found)
    return bin_dir


def run(
    bin_dir: Path, *args: str, yes: bool = True, **extra_env: str
) -> subprocess.CompletedProcess[str]:
    """stack.sh with stdin not a terminal; `yes` = YES=1 (as `make up YES=1`)."""
    env = {
        "PATH": str(bin_dir),
        "HOME": str(bin_dir.parent),
        "CALLS": str(bin_dir.parent / "calls.log"),
        "PYTHON": sys.executable,
        "PULUMI_BACKEND_URL": f"file://{bin_dir.parent / 'state'}",
        **({"YES": "1"} if yes else {}),
        **extra_env,
    }
    return subprocess.run(
        [str(SCRIPT), *args],
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )


def calls(bin_dir: Path) -> str:
    log = bin_dir.parent / "calls.log"
    return log.read_text() if log.exists() else ""


def one_line_error(proc: subprocess.CompletedProcess[str], needle: str) -> None:
    assert proc.returncode == 1, proc
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("selfheal-lb: ")
    assert needle in lines[0]
    assert "Traceback" not in proc.stderr


def test_without_pulumi_says_how_to_install_it(bin_dir: Path) -> None:
    proc = run(bin_dir, "up", "dev")
    one_line_error(proc, "the pulumi CLI is not installed")
    assert "get.pulumi.com" in proc.stderr


def test_unknown_stack_names_the_missing_file(bin_dir: Path) -> None:
    proc = run(bin_dir, "up", "nosuchstack")
    one_line_error(proc, "no stack config Pulumi.nosuchstack.yaml")


def test_bad_action_prints_usage(bin_dir: Path) -> None:
    one_line_error(run(bin_dir, "apply", "dev"), "usage:")


def test_without_kubectl(bin_dir: Path) -> None:
    _tool(bin_dir, "pulumi", "exit 0")
    one_line_error(run(bin_dir, "up", "dev"), "kubectl is not installed")
    assert "pulumi up" not in calls(bin_dir)


def test_unreachable_cluster(bin_dir: Path) -> None:
    _tool(bin_dir, "pulumi", "exit 0")
    only_context = '[ "$1 $2" = "config current-context" ] && echo minikube && exit 0\nexit 1'
    _tool(bin_dir, "kubectl", only_context)
    proc = run(bin_dir, "up", "dev")
    one_line_error(proc, "cluster of context 'minikube' is unreachable")
    assert "pulumi up" not in calls(bin_dir)


def test_no_context_at_all(bin_dir: Path) -> None:
    _tool(bin_dir, "pulumi", "exit 0")
    _tool(bin_dir, "kubectl", "exit 1")
    one_line_error(run(bin_dir, "up", "dev"), "no kubeconfig context")


def _reachable_cluster(bin_dir: Path, context: str = "kind-e2e") -> None:
    _tool(bin_dir, "pulumi", "exit 0")
    _tool(bin_dir, "kubectl", f'[ "$1 $2" = "config current-context" ] && echo {context}\nexit 0')


def test_building_needs_docker(bin_dir: Path) -> None:
    _reachable_cluster(bin_dir)
    one_line_error(run(bin_dir, "up", "dev"), "Docker is needed to build the app image")


def test_docker_daemon_down(bin_dir: Path) -> None:
    _reachable_cluster(bin_dir)
    _tool(bin_dir, "docker", "exit 1")
    one_line_error(run(bin_dir, "up", "dev"), "Docker daemon is not reachable")


def test_destroy_needs_no_docker_and_runs_pulumi_destroy(bin_dir: Path) -> None:
    _reachable_cluster(bin_dir)
    proc = run(bin_dir, "destroy", "dev")
    assert proc.returncode == 0, proc.stderr
    log = calls(bin_dir)
    assert "pulumi stack select --create dev" in log
    assert "pulumi destroy --stack dev --yes" in log


# --- an explicit target, and nothing changes without a yes ------------------------------------
SERVER = "https://192.0.2.10:6443"
# A stand-in pulumi that also records whether the provider would drop unreachable objects.
PULUMI_SHOWING_DELETE_UNREACHABLE = (
    'echo "  DELETE_UNREACHABLE=${PULUMI_K8S_DELETE_UNREACHABLE:-unset}" >> "$CALLS"'
)


def _cluster_with_server(bin_dir: Path, reachable: bool = True) -> None:
    """kubectl that names its current context and API server; `version` answers if reachable."""
    _tool(bin_dir, "pulumi", PULUMI_SHOWING_DELETE_UNREACHABLE)
    body = (
        '[ "$1 $2" = "config current-context" ] && echo prod-cluster && exit 0\n'
        f'[ "$1 $2" = "config view" ] && printf %s {SERVER} && exit 0\n'
        f'[ "$1" = version ] && exit {0 if reachable else 1}\n'
        "exit 0"
    )
    _tool(bin_dir, "kubectl", body)
    _tool(bin_dir, "docker", "exit 0")


def test_the_target_context_and_api_server_are_shown_first(bin_dir: Path) -> None:
    _cluster_with_server(bin_dir)
    proc = run(bin_dir, "up", "dev")
    assert proc.returncode == 0, proc.stderr
    assert (
        "selfheal-lb: target: stack 'dev' -> context 'prod-cluster' (the current context: "
        f"kubeContext is not set), API server {SERVER}"
    ) in proc.stdout


def test_without_a_terminal_or_yes_nothing_is_changed(bin_dir: Path) -> None:
    _cluster_with_server(bin_dir)
    for action in ("up", "destroy", "reverify"):
        proc = run(bin_dir, action, "dev", yes=False)
        one_line_error(proc, "nobody to ask (not a terminal) before changing context 'prod-")
        assert f"make {action} YES=1" in proc.stderr
    assert "pulumi up" not in calls(bin_dir) and "pulumi destroy" not in calls(bin_dir)


def test_ci_true_answers_yes(bin_dir: Path) -> None:
    _cluster_with_server(bin_dir)
    proc = run(bin_dir, "up", "dev", yes=False, CI="true")
    assert proc.returncode == 0, proc.stderr
    assert "pulumi up --stack dev --yes" in calls(bin_dir)


def test_on_a_terminal_pulumi_shows_its_preview_and_asks(bin_dir: Path) -> None:
    """No --yes: pulumi previews and asks "Do you want to perform this update?" itself."""
    import pty

    _cluster_with_server(bin_dir)
    controller, terminal = pty.openpty()
    try:
        env = {
            "PATH": str(bin_dir),
            "HOME": str(bin_dir.parent),
            "CALLS": str(bin_dir.parent / "calls.log"),
            "PYTHON": sys.executable,
            "PULUMI_BACKEND_URL": f"file://{bin_dir.parent / 'state'}",
        }
        proc = subprocess.run(
            [str(SCRIPT), "up", "dev"], env=env, stdin=terminal, capture_output=True,
            text=True, timeout=60, cwd=ROOT,
        )  # fmt: skip
    finally:
        os.close(controller)
        os.close(terminal)
    assert proc.returncode == 0, proc.stderr
    assert "pulumi up --stack dev\n" in calls(bin_dir)
    assert "--yes" not in calls(bin_dir)


def test_destroy_of_a_stack_whose_cluster_is_gone(bin_dir: Path) -> None:
    """make destroy needs no reachable cluster: the provider is told to drop the objects of an
    unreachable cluster from the state (deleteUnreachable), and the user is told so."""
    _cluster_with_server(bin_dir, reachable=False)
    proc = run(bin_dir, "destroy", "dev")
    assert proc.returncode == 0, proc.stderr
    log = calls(bin_dir)
    assert "pulumi destroy --stack dev --yes\n  DELETE_UNREACHABLE=true" in log
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "is unreachable: destroy removes the stack's objects from its" \
        " state only" in lines[0], proc.stderr


def test_destroy_of_a_reachable_cluster_deletes_for_real(bin_dir: Path) -> None:
    _cluster_with_server(bin_dir)
    proc = run(bin_dir, "destroy", "dev")
    assert proc.returncode == 0, proc.stderr
    assert "pulumi destroy --stack dev --yes\n  DELETE_UNREACHABLE=unset" in calls(bin_dir)


def test_destroy_without_kubectl_or_any_context_still_runs(bin_dir: Path) -> None:
    _tool(bin_dir, "pulumi", PULUMI_SHOWING_DELETE_UNREACHABLE)
    proc = run(bin_dir, "destroy", "dev")
    assert proc.returncode == 0, proc.stderr
    assert "pulumi destroy --stack dev --yes\n  DELETE_UNREACHABLE=true" in calls(bin_dir)


def test_all_present_runs_pulumi_up(bin_dir: Path) -> None:
    _reachable_cluster(bin_dir)
    _tool(bin_dir, "docker", "exit 0")
    proc = run(bin_dir, "up", "dev")
    assert proc.returncode == 0, proc.stderr
    assert "pulumi up --stack dev --yes" in calls(bin_dir)
    assert (bin_dir.parent / "state").is_dir(), "the local file backend directory is created"


def test_minikube_builds_into_minikubes_docker(bin_dir: Path) -> None:
    _reachable_cluster(bin_dir, context="minikube")
    _tool(bin_dir, "minikube", "echo 'export DOCKER_HOST=\"tcp://192.0.2.1:2376\"'")
    _tool(bin_dir, "docker", '[ "$DOCKER_HOST" = "tcp://192.0.2.1:2376" ]')
    proc = run(bin_dir, "up", "dev")
    assert proc.returncode == 0, proc.stderr
    assert "minikube -p minikube docker-env --shell bash" in calls(bin_dir)
    assert "building into minikube's Docker daemon" in proc.stdout



def test_check_runs_the_preflight_and_stops_before_pulumi(bin_dir: Path) -> None:
    _reachable_cluster(bin_dir)
    _tool(bin_dir, "docker", "exit 0")
    proc = run(bin_dir, "check", "dev")
    assert proc.returncode == 0, proc.stderr
    assert "pulumi" not in calls(bin_dir)
    assert "kubectl" in calls(bin_dir) and "docker info" in calls(bin_dir)


def test_check_fails_like_up_does(bin_dir: Path) -> None:
    _reachable_cluster(bin_dir)
    one_line_error(run(bin_dir, "check", "dev"), "Docker is needed to build the app image")


def test_local_stack_needs_its_offline_build_base(bin_dir: Path) -> None:
    _reachable_cluster(bin_dir, context="selfheal-lb")
    # The daemon answers, but has no image: `docker image inspect` fails.
    _tool(bin_dir, "docker", '[ "$1" = image ] && exit 1; exit 0')
    proc = run(bin_dir, "up", "local")
    one_line_error(proc, "scripts/docker-base.sh --wheels app/requirements.txt")
    assert "pulumi up" not in calls(bin_dir)


def test_local_stack_with_its_base_runs_pulumi_up(bin_dir: Path) -> None:
    _reachable_cluster(bin_dir, context="selfheal-lb")
    _tool(bin_dir, "docker", "exit 0")
    proc = run(bin_dir, "up", "local")
    assert proc.returncode == 0, proc.stderr
    assert "docker image inspect selfheal-lb/app-base:bookworm" in calls(bin_dir)
    assert "pulumi up --stack local --yes" in calls(bin_dir)
# --- metrics-server: the cluster's metrics.k8s.io against metricsServerEnabled -----------------
# A copy of the project (so the test can write its own stack file) and a fake API server on
# loopback that the probe reads through the official client, with KUBECONFIG pointing at it.


@pytest.fixture
def api() -> Iterator[FakeApiServer]:
    server = FakeApiServer()
    yield server
    server.stop()


@pytest.fixture
def project(tmp_path: Path) -> Path:
    copy = tmp_path / "project"
    copy.mkdir()
    for name in ("Pulumi.yaml", "Pulumi.dev.yaml"):
        shutil.copy(ROOT / name, copy / name)
    for name in ("components", "scripts", "app", "loadgen"):
        shutil.copytree(ROOT / name, copy / name, ignore=shutil.ignore_patterns("__pycache__"))
    return copy


def _stack_file(project: Path, name: str, enabled: str) -> None:
    config = {
        "selfheal-lb:imageRef": "selfheal-lb/articles:v1",  # prebuilt: no Docker needed
        "selfheal-lb:metricsServerEnabled": enabled,
    }
    (project / f"Pulumi.{name}.yaml").write_text(yaml.safe_dump({"config": config}))


def _run_metrics_case(
    bin_dir: Path, project: Path, api: FakeApiServer, enabled: str
) -> subprocess.CompletedProcess[str]:
    _reachable_cluster(bin_dir)
    _stack_file(project, "ms", enabled)
    kubeconfig = write_kubeconfig(bin_dir.parent / "kubeconfig", api.url, context="kind-e2e")
    env = {
        "PATH": str(bin_dir),
        "HOME": str(bin_dir.parent),
        "CALLS": str(bin_dir.parent / "calls.log"),
        "PYTHON": sys.executable,
        "PULUMI_BACKEND_URL": f"file://{bin_dir.parent / 'state'}",
        "KUBECONFIG": str(kubeconfig),
        "YES": "1",
    }
    return subprocess.run(
        [str(project / "scripts" / "stack.sh"), "up", "ms"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        cwd=project,
    )


MINIKUBE_ADDON = {"kubernetes.io/minikube-addons": "metrics-server"}


def test_addon_present_and_enabled_true_is_one_line_before_pulumi(bin_dir, project, api):
    api.serve(apiservice(labels=MINIKUBE_ADDON))
    proc = _run_metrics_case(bin_dir, project, api, "true")
    one_line_error(
        proc,
        "metricsServerEnabled is true but the cluster already serves metrics.k8s.io "
        "(minikube addon (kube-system/metrics-server))",
    )
    assert "pulumi up" not in calls(bin_dir)


def test_addon_present_and_auto_goes_ahead_quietly(bin_dir, project, api):
    api.serve(apiservice(labels=MINIKUBE_ADDON))
    proc = _run_metrics_case(bin_dir, project, api, "auto")
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""
    assert "pulumi up --stack ms --yes" in calls(bin_dir)


def test_no_metrics_api_and_enabled_false_warns_in_one_line_and_goes_ahead(bin_dir, project, api):
    proc = _run_metrics_case(bin_dir, project, api, "false")
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == (
        "selfheal-lb: warning: metricsServerEnabled is false and the cluster serves no "
        "metrics.k8s.io: no HPA and no CPU/memory in the report; set it to auto to install "
        "metrics-server\n"
    )
    assert "pulumi up --stack ms --yes" in calls(bin_dir)


def test_this_stacks_own_install_with_enabled_true_is_no_disagreement(bin_dir, project, api):
    owner = {
        "selfheal-lb/owner-stack": "selfheal-lb/ms",
        "selfheal-lb/owner-namespace": "selfheal-lb-ms",
    }
    api.serve(apiservice(annotations=owner))
    proc = _run_metrics_case(bin_dir, project, api, "true")
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""


def test_another_stacks_install_with_enabled_true_names_that_stack(bin_dir, project, api):
    owner = {
        "selfheal-lb/owner-stack": "selfheal-lb/dev",
        "selfheal-lb/owner-namespace": "selfheal-lb-dev",
    }
    api.serve(apiservice(annotations=owner))
    proc = _run_metrics_case(bin_dir, project, api, "true")
    one_line_error(
        proc, "(installed by selfheal-lb stack selfheal-lb/dev (kube-system/metrics-server))"
    )
