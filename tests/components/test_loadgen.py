"""LoadGenerator under Pulumi mocks, plus its fortio command run for real on loopback."""

from __future__ import annotations

import re
import subprocess
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import yaml

from components import labels
from components.loadgen import (
    JOB_START_ALLOWANCE_SECONDS,
    TYPE_TOKEN,
    WAIT_FOR_TARGET_SECONDS,
    fortio_args,
    job_deadline_seconds,
    load_url,
    readiness_command,
    wait_for_target_command,
)
from components.settings import LoadSettings

ROOT = Path(__file__).resolve().parents[2]
FORTIO = ROOT / ".tools" / "bin" / "fortio"
URL = "http://articles.selfheal-lb-dev.svc.cluster.local:8080/article1"
FORTIO_SELECTOR = {"app.kubernetes.io/name": "fortio", "app.kubernetes.io/instance": "dev"}
APP_POD_LABELS = {
    "app.kubernetes.io/name": "articles",
    "app.kubernetes.io/instance": "dev",
    "app.kubernetes.io/part-of": "selfheal-lb",
    "app.kubernetes.io/component": "web",
}


def load(**overrides) -> LoadSettings:
    values = {
        "mode": "job",
        "pods": 3,
        "connections": 100,
        "requests": 1000,
        "qps": 0,
        "path": "/article1",
        "keepalive": True,
        "timeout_seconds": 5,
        "image": "fortio/fortio:1.68.2",
    }
    values.update(overrides)
    return LoadSettings(**values)


def selects(selector: dict[str, str], pod_labels: dict[str, str]) -> bool:
    return bool(selector) and all(pod_labels.get(k) == v for k, v in selector.items())


def pod_spec(workload) -> dict:
    return workload.inputs["spec"]["template"]["spec"]


def fortio_container(workload) -> dict:
    [container] = pod_spec(workload)["containers"]
    return container


# --- what each mode declares ---------------------------------------------------------------


def test_job_mode_declares_a_job_and_its_policy_all_parented(run_loadgen):
    run = run_loadgen()
    mine = [r for r in run.resources if r.name != "baseline"]
    assert sorted(r.type for r in mine) == [
        "kubernetes:batch/v1:Job",
        "kubernetes:networking.k8s.io/v1:NetworkPolicy",
        TYPE_TOKEN,
    ]
    for r in mine:
        if r.type != TYPE_TOKEN:
            assert (r.parent_type, r.parent_name) == (TYPE_TOKEN, "loadgen"), r.name
            assert r.inputs["metadata"]["namespace"] == "selfheal-lb-dev"
    assert run.outputs["hasJob"] is True and run.outputs["hasDeployment"] is False
    # Auto-named: the verification selects the run's pods by the name the provider gave.
    assert "name" not in run.one("Job").inputs["metadata"]
    assert run.outputs["jobName"].startswith("loadgen-job-")


def test_continuous_mode_declares_a_deployment_with_its_pdb_and_no_job(run_loadgen):
    run = run_loadgen(load={"mode": "continuous", "qps": 20})
    assert run.kind("Job") == []
    deployment = run.one("Deployment").inputs
    assert deployment["spec"]["replicas"] == 3
    assert selects(deployment["spec"]["selector"]["matchLabels"], run.outputs["podLabels"])
    assert run.outputs["jobName"] is None
    pdb = run.one("PodDisruptionBudget").inputs["spec"]
    assert pdb["maxUnavailable"] == 1
    assert selects(pdb["selector"]["matchLabels"], run.outputs["podLabels"])
    for kind in ("Deployment", "PodDisruptionBudget", "NetworkPolicy"):
        assert [r.parent_type for r in run.kind(kind)] == [TYPE_TOKEN], kind


def test_off_mode_declares_nothing_but_the_component(run_loadgen):
    run = run_loadgen(load={"mode": "off"})
    assert [r.type for r in run.resources if r.name != "baseline"] == [TYPE_TOKEN]
    assert run.outputs["hasJob"] is False and run.outputs["hasDeployment"] is False


def test_continuous_without_a_qps_cap_is_refused(run_loadgen):
    with pytest.raises(ValueError, match="loadgenQps >= 1"):
        run_loadgen(load={"mode": "continuous", "qps": 0})


# --- the Job -------------------------------------------------------------------------------


def test_job_runs_pods_in_parallel_once_and_keeps_its_pods_for_the_logs(run_loadgen):
    run = run_loadgen(load={"pods": 4})
    spec = run.one("Job").inputs["spec"]
    assert spec["parallelism"] == 4 and spec["completions"] == 4
    assert 0 < spec["backoffLimit"] <= 3
    assert "ttlSecondsAfterFinished" not in spec
    assert spec["activeDeadlineSeconds"] == job_deadline_seconds(load(pods=4))
    assert pod_spec(run.one("Job"))["restartPolicy"] == "Never"


def test_job_waits_for_the_baseline_and_its_network_policy(run_loadgen):
    options = run_loadgen().options["loadgen-job"]
    assert options["depends_on"] == ["baseline", "loadgen-egress"]
    alone = run_loadgen(with_baseline=False, network_policy=False).options["loadgen-job"]
    assert alone["depends_on"] == []


def test_job_is_replaced_create_first_and_awaited_past_its_deadline(run_loadgen):
    """A new run's Job is created beside the old one (no fixed name, no delete-first): under
    the real engine a fixed-name Job with skipAwait was recreated while the old one was still
    being deleted, and `pulumi up` failed (tests/cluster/test_e2e_engine_on_cluster.py)."""
    run = run_loadgen()
    options = run.options["loadgen-job"]
    assert not options.get("delete_before_replace")
    assert "name" not in run.one("Job").inputs["metadata"]
    deadline = run.one("Job").inputs["spec"]["activeDeadlineSeconds"]
    for timeout in options["custom_timeouts"].values():
        assert int(timeout.removesuffix("s")) > deadline


@pytest.mark.parametrize(
    ("settings", "run_seconds"),
    [
        (load(), 10 * 5),  # 1000 calls over 100 connections, each up to 5 s
        (load(requests=1000, connections=1, timeout_seconds=2), 1000 * 2),
        (load(requests=1000, connections=100, qps=50, timeout_seconds=1), 10 * 1 + 20),
        (load(requests=7, connections=2, timeout_seconds=3), 4 * 3),
    ],
)
def test_job_deadline_is_start_up_plus_the_slowest_possible_run(settings, run_seconds):
    start = JOB_START_ALLOWANCE_SECONDS + WAIT_FOR_TARGET_SECONDS
    assert job_deadline_seconds(settings) == start + run_seconds


def test_job_pods_wait_for_the_target_before_the_load(run_loadgen):
    spec = run_loadgen().one("Job").inputs["spec"]["template"]["spec"]
    (wait,) = spec["initContainers"]
    main = spec["containers"][0]
    url = main["args"][-1]
    assert wait["command"] == wait_for_target_command(url)
    # The Service's health route: the same way in, but not counted as load by the verification.
    assert wait["command"][-1] == url.replace("/article1", "/healthz")
    assert "-abort-on" in wait["command"]
    # Same image, resources and restricted security context as the load itself.
    for key in ("image", "resources", "securityContext", "volumeMounts"):
        assert wait[key] == main[key]


@pytest.mark.slow  # runs fortio
def test_wait_for_target_ends_at_the_first_answer_and_is_bounded(tmp_path):
    """The real fortio: returns at once from a server that answers, after the bound if none."""
    if not FORTIO.exists():
        pytest.skip("fortio not installed (make tools builds .tools/bin/fortio)")

    class Ok(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Ok)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/article1"
        t0 = time.monotonic()
        cmd = [str(FORTIO), *wait_for_target_command(url)[1:]]
        subprocess.run(cmd, check=True, capture_output=True, timeout=WAIT_FOR_TARGET_SECONDS)
        assert time.monotonic() - t0 < 2
    finally:
        server.shutdown()
    quick = [a if a != f"{WAIT_FOR_TARGET_SECONDS}s" else "2s" for a in cmd]
    quick[-1] = url  # nobody listens there any more
    t0 = time.monotonic()
    proc = subprocess.run(quick, capture_output=True, text=True, timeout=10)
    assert proc.returncode == 0 and 1.5 < time.monotonic() - t0 < 8


# --- fortio's command line -----------------------------------------------------------------


def test_job_container_runs_pinned_fortio_with_the_exact_load_arguments(run_loadgen):
    run = run_loadgen(load={"connections": 50, "requests": 2000, "qps": 300, "timeout_seconds": 7})
    container = fortio_container(run.one("Job"))
    assert container["image"] == "fortio/fortio:1.68.2"
    assert container["command"] == ["/usr/bin/fortio"]
    assert container["args"] == [
        "load", "-json", "-", "-quiet", "-c", "50", "-n", "2000", "-qps", "300",
        "-timeout", "7s", URL,
    ]  # fmt: skip


def test_keepalive_off_adds_the_flag_and_only_then(run_loadgen):
    off = fortio_container(run_loadgen(load={"keepalive": False}).one("Job"))["args"]
    on = fortio_container(run_loadgen().one("Job"))["args"]
    assert "-keepalive=false" in off
    assert not any(a.startswith("-keepalive") for a in on)


def test_continuous_args_run_until_stopped_at_a_bounded_rate(run_loadgen):
    run = run_loadgen(load={"mode": "continuous", "qps": 25, "connections": 8})
    deployment = run.one("Deployment")
    assert fortio_container(deployment)["args"] == [
        "load", "-quiet", "-allow-initial-errors", "-c", "8", "-qps", "25", "-t", "0",
        "-timeout", "5s", URL,
    ]  # fmt: skip
    assert pod_spec(deployment)["restartPolicy"] == "Always"


def test_continuous_loader_is_ready_when_it_reaches_the_app_and_live_on_its_own(run_loadgen):
    container = fortio_container(
        run_loadgen(load={"mode": "continuous", "qps": 5}).one("Deployment")
    )
    readiness = container["readinessProbe"]["exec"]["command"]
    assert readiness == ["/usr/bin/fortio", "curl", "-quiet", "-timeout", "2s", URL]
    liveness = container["livenessProbe"]["exec"]["command"]
    # An app outage must not restart every loader: liveness never touches the target.
    assert liveness == ["/usr/bin/fortio", "version"]
    for probe in ("readinessProbe", "livenessProbe"):
        assert container[probe]["timeoutSeconds"] < container[probe]["periodSeconds"]


def test_job_pods_have_no_probes(run_loadgen):
    container = fortio_container(run_loadgen().one("Job"))
    assert not {"livenessProbe", "readinessProbe", "startupProbe"} & set(container)


def test_default_image_is_the_fortio_the_tests_and_the_local_cluster_build():
    pins = (ROOT / "cluster" / "versions.env").read_text()
    version = re.search(r"^FORTIO_VERSION=v([0-9.]+)$", pins, re.M)
    assert version, "FORTIO_VERSION not found in cluster/versions.env"
    config = yaml.safe_load((ROOT / "Pulumi.yaml").read_text())["config"]
    default = config["loadgenImage"]["default"]
    assert default == f"fortio/fortio:{version.group(1)}"


def test_configured_image_is_the_one_the_pods_run(run_loadgen):
    image = "mirror.example/fortio/fortio:1.68.2"
    container = fortio_container(run_loadgen(load={"image": image}).one("Job"))
    assert container["image"] == image


# --- the target URL ------------------------------------------------------------------------


def test_url_is_the_service_dns_name_plus_the_article_path():
    base = "http://articles.ns.svc.cluster.local:8080"
    assert load_url(base, "/article1") == f"{base}/article1"
    assert load_url(base + "/", "/article/2") == f"{base}/article/2"
    assert load_url(f"{base}/article1", "/article1") == f"{base}/article1"


@pytest.mark.parametrize(
    "bad",
    [
        "http://10.110.107.181:8080",  # the seed's hard-coded Service IP
        "http://[fd00::1]:8080",
        "articles.ns.svc.cluster.local:8080",
        "http://articles.ns.svc.cluster.local:8080/other",
    ],
)
def test_url_refuses_ips_missing_schemes_and_conflicting_paths(bad):
    with pytest.raises(ValueError, match="fortio target"):
        load_url(bad, "/article1")


def test_an_ip_target_fails_the_program(run_loadgen):
    with pytest.raises(ValueError, match="not an IP"):
        run_loadgen(target_url="http://10.110.107.181:8080")


# --- pod security and resources ------------------------------------------------------------


@pytest.mark.parametrize("mode", ["job", "continuous"])
def test_fortio_pods_meet_pod_security_restricted(run_loadgen, mode):
    run = run_loadgen(load={"mode": mode, "qps": 10})
    workload = run.one("Job" if mode == "job" else "Deployment")
    pod = pod_spec(workload)
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == 10001
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert pod["automountServiceAccountToken"] is False
    sc = fortio_container(workload)["securityContext"]
    assert sc["allowPrivilegeEscalation"] is False
    assert sc["capabilities"] == {"drop": ["ALL"]}
    assert sc["readOnlyRootFilesystem"] is True
    assert sc["runAsNonRoot"] is True
    resources = fortio_container(workload)["resources"]
    assert set(resources["requests"]) == {"cpu", "memory"}
    assert set(resources["limits"]) == {"cpu", "memory"}
    assert workload.inputs["spec"]["template"]["metadata"]["labels"] == {
        **FORTIO_SELECTOR,
        "app.kubernetes.io/part-of": "selfheal-lb",
        "app.kubernetes.io/component": "loadgen",
    }


# --- NetworkPolicy -------------------------------------------------------------------------


def test_fortio_may_only_reach_the_app_pods_and_dns_and_receives_nothing(run_loadgen):
    run = run_loadgen()
    policy = run.one("NetworkPolicy").inputs["spec"]
    assert selects(policy["podSelector"]["matchLabels"], run.outputs["podLabels"])
    assert policy["policyTypes"] == ["Ingress", "Egress"]
    assert not policy.get("ingress")
    to_app, to_dns = policy["egress"]
    assert to_app == {
        "to": [{"podSelector": {"matchLabels": APP_POD_LABELS}}],
        "ports": [{"protocol": "TCP", "port": 8080}],
    }
    assert to_dns == {
        "to": [
            {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}}}
        ],
        "ports": [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}],
    }


def test_no_policy_when_network_policies_are_off(run_loadgen):
    assert run_loadgen(network_policy=False).kind("NetworkPolicy") == []


def test_the_apps_ingress_rule_admits_exactly_these_pods(run_loadgen):
    pod_labels = run_loadgen().outputs["podLabels"]
    app_side = labels.selector_labels(labels.LOADGEN_NAME, "dev")  # what ArticleApp admits
    assert selects(app_side, pod_labels)
    assert not selects(app_side, {**pod_labels, "app.kubernetes.io/instance": "other"})


# --- fortio itself, on loopback --------------------------------------------------------------


class _Ok(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        body = b"article"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def loopback_server() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Ok)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


needs_fortio = pytest.mark.skipif(
    not FORTIO.exists(), reason="fortio not installed (make tools builds .tools/bin/fortio)"
)


@pytest.mark.slow  # runs fortio
@needs_fortio
@pytest.mark.parametrize("keepalive", [True, False])
def test_job_arguments_run_real_fortio_and_print_one_json_result(loopback_server, keepalive):
    from loadgen.fortio import extract_result

    settings = load(connections=4, requests=40, keepalive=keepalive, timeout_seconds=2)
    # load_url refuses IPs, so the loopback server's URL is handed to fortio_args directly.
    args = fortio_args(settings, f"{loopback_server}/article1")
    done = subprocess.run(
        [str(FORTIO), *args], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    result = extract_result(done.stdout)
    assert result["DurationHistogram"]["Count"] == 40
    assert result["RetCodes"] == {"200": 40}
    assert result["NumThreads"] == 4


@pytest.mark.slow  # runs fortio
@needs_fortio
def test_readiness_curl_passes_on_200_and_fails_when_the_app_is_unreachable(loopback_server):
    def probe(url: str) -> int:
        argv = [str(FORTIO), *readiness_command(url)[1:]]
        return subprocess.run(argv, capture_output=True, timeout=30, check=False).returncode

    assert probe(f"{loopback_server}/article1") == 0
    assert probe("http://127.0.0.1:9/article1") != 0


@pytest.mark.slow  # runs fortio
@needs_fortio
def test_continuous_arguments_keep_fortio_running_even_without_a_target():
    # Nothing listens on port 9: the first calls fail, as while the app still rolls out.
    args = fortio_args(load(mode="continuous", qps=5, connections=1, timeout_seconds=1),
                       "http://127.0.0.1:9/article1")  # fmt: skip
    proc = subprocess.Popen([str(FORTIO), *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        with pytest.raises(subprocess.TimeoutExpired):
            proc.wait(timeout=3)  # still loading: no exit, so no crash loop
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


@pytest.mark.parametrize("mode", ["job", "continuous"])
def test_preview_declares_the_same_objects(run_loadgen, mode):
    up = run_loadgen(load={"mode": mode, "qps": 10})
    preview = run_loadgen(load={"mode": mode, "qps": 10}, preview=True)
    # The same set: registration order varies from run to run (the SDK registers concurrently).
    declared = sorted((r.type, r.name) for r in preview.resources)
    assert declared == sorted((r.type, r.name) for r in up.resources)
