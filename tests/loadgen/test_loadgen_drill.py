"""`drill` against the fake Kubernetes API (deletes, recreation, Deployment status over real
HTTP) with real traffic through HAProxy to real app processes."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import pytest
from fake_kube import FakeKube, Pod
from lg_procs import App, app_servers, free_port, haproxy, run_cli

pytestmark = pytest.mark.slow
NS = "selfheal-lb-dev"
LABELS = {"app.kubernetes.io/name": "articles", "app.kubernetes.io/instance": "dev"}
SEL = "app.kubernetes.io/name=articles,app.kubernetes.io/instance=dev"
CANNED = 'articles_http_requests_total{pod="x",route="/article1"} 1.0\n'


@pytest.fixture(scope="module")
def apps() -> Iterator[list[App]]:
    with app_servers(["d-a", "d-b", "d-c"]) as started:
        yield started


def drill(kubeconfig: str, *args: str) -> tuple[int, dict, str]:
    proc = run_cli(
        ["drill", "--namespace", NS, "--selector", SEL, "--json", *args],
        env={"KUBECONFIG": kubeconfig},
        timeout=90,
    )
    return proc.returncode, (json.loads(proc.stdout) if proc.stdout else {}), proc.stderr


def test_drill_under_traffic_recovers(apps: list[App], fake: FakeKube, kubeconfig: str) -> None:
    original = fake.add_deployment(
        "articles", LABELS, backends=[a.backend for a in apps], recreate_after=0.3, ready_after=1.0
    )
    with haproxy([(a.name, a.port, 1) for a in apps]) as url:
        code, rep, err = drill(
            kubeconfig, "--kill", "1", "--url", url + "/article1", "--timeout", "20"
        )
    assert code == 0, err
    assert rep["verdict"] == "recovered"
    assert rep["deployment"] == "articles" and rep["desired_replicas"] == 3
    assert rep["killed"] == [sorted(original)[0]]
    assert len(rep["replacements"]) == 1 and rep["replacements"][0] not in original
    # Recreated after 0.3s, ready 1.0s later: recovery cannot be faster than 1.3s.
    assert 1.3 <= rep["recovery_seconds"] < 5
    assert rep["traffic"]["total"] > 50 and rep["traffic"]["failed"] == 0
    assert fake.calls("DELETE", f"/pods/{rep['killed'][0]}") == 1
    assert err.startswith("loadgen drill: recovered:")


def test_drill_kills_two_and_retries_a_failed_delete(fake: FakeKube, kubeconfig: str) -> None:
    fake.add_deployment("articles", LABELS, metrics_texts=[CANNED] * 3, ready_after=0.2)
    fake.fail("DELETE", "/pods/", 503, times=1)
    code, rep, err = drill(kubeconfig, "--kill", "2", "--timeout", "20")
    assert code == 0, err
    assert len(rep["killed"]) == 2 and len(rep["replacements"]) == 2
    assert fake.calls("DELETE", "/pods/") == 3  # one 503, retried
    assert rep["traffic"] is None and "no --url" in rep["notes"][0]


def test_slow_recovery_exits_1_at_the_timeout(fake: FakeKube, kubeconfig: str) -> None:
    fake.add_deployment("articles", LABELS, metrics_texts=[CANNED] * 3, ready_after=30)
    start = time.monotonic()
    code, rep, err = drill(kubeconfig, "--timeout", "2")
    assert code == 1, err
    assert rep["verdict"] == "not-recovered" and rep["recovery_seconds"] is None
    assert "not back to 3 ready pods within 2s" in err
    assert time.monotonic() - start < 2 + 6


def test_failed_requests_are_counted(apps: list[App], fake: FakeKube, kubeconfig: str) -> None:
    """Behind the Service one backend refuses connections: the drill counts the failures."""
    fake.add_deployment("articles", LABELS, metrics_texts=[CANNED] * 3, ready_after=0.3)
    servers = [(apps[0].name, apps[0].port, 1), ("dead", free_port(), 1)]
    with haproxy(servers, redispatch=False) as url:
        code, rep, err = drill(kubeconfig, "--url", url + "/article1", "--timeout", "20")
    assert code == 0, err
    tr = rep["traffic"]
    assert tr["failed"] > 0 and tr["total"] > tr["failed"]
    assert 0.2 < tr["failure_rate"] < 0.8
    assert "requests failed" in err


def test_pod_without_deployment_exits_2(fake: FakeKube, kubeconfig: str) -> None:
    fake.add_pod(Pod("bare-pod", dict(LABELS), metrics_text=CANNED))
    code, _, err = drill(kubeconfig, "--timeout", "5")
    assert code == 2 and "not owned by a ReplicaSet" in err
    assert fake.calls("DELETE", "/pods/") == 0  # nothing deleted when the drill cannot judge


def test_not_enough_ready_pods_exits_2(fake: FakeKube, kubeconfig: str) -> None:
    fake.add_deployment("articles", LABELS, metrics_texts=[CANNED])
    code, _, err = drill(kubeconfig, "--kill", "2", "--timeout", "5")
    assert code == 2 and "only 1 ready pods" in err
    assert fake.calls("DELETE", "/pods/") == 0


def test_unreachable_url_fails_before_deleting(fake: FakeKube, kubeconfig: str) -> None:
    fake.add_deployment("articles", LABELS, metrics_texts=[CANNED] * 3)
    code, _, err = drill(kubeconfig, "--url", f"http://127.0.0.1:{free_port()}/", "--timeout", "5")
    assert code == 2 and "Connection refused" in err
    assert fake.calls("DELETE", "/pods/") == 0
