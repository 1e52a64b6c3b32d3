"""`drill --node`: which node is lost, what bounds the failed requests, the verdict over the
surviving pods, the one-line refusals, and the restore that runs whatever happens. The drill
runs in-process against the fake API (tests/loadgen/fake_kube.py, with nodes, cordon and
evictions) with the load going to a loopback stand-in for the LoadBalancer that answers as a
random Ready pod and drops what it routes to a pod on a lost node, as a cut network does."""

from __future__ import annotations

import http.server
import os
import random
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fake_kube import FakeKube

from loadgen import cli, kube, nodecmd, nodedrill, nodeloss, report
from loadgen.verdict import decide

NS = "selfheal-lb-dev"
LABELS = {"app.kubernetes.io/name": "articles", "app.kubernetes.io/instance": "dev"}
SEL = "app.kubernetes.io/name=articles,app.kubernetes.io/instance=dev"
CP = {nodeapi_label: "" for nodeapi_label in ["node-role.kubernetes.io/control-plane"]}
CANNED = 'articles_http_requests_total{pod="x",route="/article1"} 1.0\n'


def node(name: str, control_plane: bool = False) -> dict[str, Any]:
    labels = dict(CP) if control_plane else {"selfheal-lb.dev/extra-node": "true"}
    return {"metadata": {"name": name, "labels": labels}}


def pod(name: str, on: str, ready: bool = True) -> dict[str, Any]:
    cond = [{"type": "Ready", "status": "True" if ready else "False"}]
    return {
        "metadata": {"name": name},
        "spec": {"nodeName": on},
        "status": {"phase": "Running", "conditions": cond},
    }


NODES = [node("n1", control_plane=True), node("n2"), node("n3")]


# -- which node ---------------------------------------------------------------------------
def test_auto_picks_the_worker_hosting_the_most_ready_pods() -> None:
    pods = [pod("a", "n1"), pod("b", "n1"), pod("c", "n2"), pod("d", "n3"), pod("e", "n3")]
    assert nodeloss.pick_node("auto", NODES, pods) == "n3"  # n1 hosts as many: control plane
    # A pod that is not Ready does not count: n2 then hosts the most ready ones.
    pods = [pod("c", "n2"), pod("d", "n3", ready=False), pod("e", "n2")]
    assert nodeloss.pick_node("auto", NODES, pods) == "n2"
    assert nodeloss.pick_node("n3", NODES, pods) == "n3"  # named: taken as asked


@pytest.mark.parametrize(
    ("requested", "nodes", "pods", "says"),
    [
        ("auto", [node("n1", True)], [pod("a", "n1")], "one-node cluster"),
        ("n1", [node("n1", True)], [pod("a", "n1")], "one-node cluster"),
        ("n9", NODES, [pod("a", "n2")], "no node 'n9' in the cluster (nodes: n1, n2, n3)"),
        ("n1", NODES, [pod("a", "n2")], "n1 is the control-plane node"),
        ("auto", NODES, [pod("a", "n1")], "no node outside the control plane hosts a ready"),
        ("auto", [node("n1", True), node("n2", True)], [pod("a", "n1")], "every node"),
    ],
)
def test_refusals_are_one_line(requested: str, nodes: list, pods: list, says: str) -> None:
    with pytest.raises(nodeloss.Refusal) as err:
        nodeloss.pick_node(requested, nodes, pods)
    assert says in str(err.value) and "\n" not in str(err.value)


# -- the failures bound -------------------------------------------------------------------
def test_binomial_upper_is_the_exact_tail_quantile() -> None:
    from math import comb

    for n, p in [(30, 0.5), (900, 1 / 3), (250, 0.02)]:
        b = nodeloss.binomial_upper(n, p, 0.001)

        def tail(k: int, n: int = n, p: float = p) -> float:
            return sum(comb(n, i) * p**i * (1 - p) ** (n - i) for i in range(k + 1, n + 1))

        assert tail(b) <= 0.001 < tail(b - 1)
    assert nodeloss.binomial_upper(500, 0.0) == 0 and nodeloss.binomial_upper(0, 0.5) == 0


def test_bound_counts_the_requests_of_the_window_and_splits_the_failures() -> None:
    """100 requests/s from 0 to 30 s; the fault at 10 s, endpoints removed at 18 s: counted
    from 8 s (one request timeout before: in flight at the cut) to 20 s (+ kube-proxy lag)."""
    starts = [i / 100 for i in range(3000)]
    fails = [9.5, 10.2, 12.0, 19.9, 25.0]
    b = nodeloss.failure_bound(
        starts=starts, failure_starts=fails, fault_t=10.0, removed_t=18.0,
        request_timeout=2.0, proxy_lag=2.0, lost_share=1 / 3,
    )  # fmt: skip
    assert b["detection_window_s"] == 8.0
    assert b["requests_in_window"] == 1201 and b["rate_rps"] == pytest.approx(100, abs=0.2)
    assert b["expected_failures"] == pytest.approx(1201 / 3, abs=0.1)
    assert b["expected_failures"] < b["bound"] < 1201
    assert (b["failed_during"], b["failed_after"], b["failed_before_fault"]) == (4, 1, 0)
    # No lost pod: nothing may fail.
    none_lost = nodeloss.failure_bound(
        starts=starts, failure_starts=[], fault_t=10.0, removed_t=10.5,
        request_timeout=2.0, proxy_lag=2.0, lost_share=0.0,
    )  # fmt: skip
    assert none_lost["bound"] == 0
    never = nodeloss.failure_bound(
        starts=starts, failure_starts=fails, fault_t=10.0, removed_t=None,
        request_timeout=2.0, proxy_lag=2.0, lost_share=1 / 3,
    )  # fmt: skip
    assert never["bound"] is None and "never seen removed" in never["reason"]


def test_bound_is_rarely_exceeded_by_healthy_runs_and_catches_a_worse_one() -> None:
    """Seeded: requests pick a lost endpoint with the lost share (what kube-proxy does) -> the
    bound is exceeded about alpha of the time; endpoints kept twice as long -> nearly always."""
    rng = random.Random(22)
    n, share, trials = 600, 1 / 3, 2000
    bound = nodeloss.binomial_upper(n, share)
    healthy = sum(sum(rng.random() < share for _ in range(n)) > bound for _ in range(trials))
    assert healthy <= 8  # alpha 0.001: 2 expected in 2000
    slow = sum(sum(rng.random() < share for _ in range(2 * n)) > bound for _ in range(50))
    assert slow == 50


# -- the split over the surviving pods ----------------------------------------------------
AFTER = [
    {"name": "a", "node": "n1", "state": "ready"},
    {"name": "b", "node": "n3", "state": "ready"},
    {"name": "c", "node": "n3", "state": "ready"},
    {"name": "x", "node": "n2", "state": "terminating"},
]


def url_report(counts: dict[str, int]) -> dict[str, Any]:
    v = decide(counts, keepalive=False, expected_pods=3)
    return {
        "verdict": v.outcome,
        "reason": v.reason,
        "pods": report.pod_rows(v),
        "distribution": report.distribution(v),
        "total": sum(counts.values()),
    }


def test_survivors_balanced() -> None:
    got = nodeloss.survivor_balance(url_report({"a": 198, "b": 205, "c": 197}), AFTER, "n2", 3)
    assert got["verdict"] == "balanced" and got["nodes_served"] == 2
    assert got["served"]["b"] == {"requests": 205, "node": "n3"}


def test_a_pod_on_the_lost_node_serving_is_not_balanced() -> None:
    got = nodeloss.survivor_balance(url_report({"a": 200, "b": 200, "x": 200}), AFTER, "n2", 3)
    assert got["verdict"] == "imbalanced" and "x" in got["reason"]


def test_skewed_or_short_split_is_not_balanced() -> None:
    skewed = nodeloss.survivor_balance(url_report({"a": 400, "b": 100, "c": 100}), AFTER, "n2", 3)
    assert skewed["verdict"] == "imbalanced"
    two = decide({"a": 300, "b": 300}, keepalive=False, expected_pods=2)  # 2 of 3 replicas
    short = {"verdict": two.outcome, "reason": two.reason, "pods": report.pod_rows(two)}
    got = nodeloss.survivor_balance(short, AFTER, "n2", 3)
    assert got["verdict"] == "imbalanced" and "only 2 of 3" in got["reason"]


# -- the commands -------------------------------------------------------------------------
def test_default_command_is_found_in_the_repository_from_any_cwd(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = tmp_path / "repo"
    (repo / "cluster").mkdir(parents=True)
    script = repo / "cluster" / "node.sh"
    script.write_text("#!/bin/sh\n")
    script.chmod(0o755)
    monkeypatch.setattr(nodecmd, "REPO", repo)
    monkeypatch.chdir(tmp_path)
    assert nodecmd.argv(nodecmd.DEFAULT_FAULT, "node2") == [str(script), "cut", "node2"]
    script.unlink()
    with pytest.raises(nodeloss.Refusal, match="--fault-cmd 'minikube node stop"):
        nodecmd.argv(nodecmd.DEFAULT_FAULT, "node2")
    with pytest.raises(nodeloss.Refusal, match="no-such-tool-xyz not found on PATH"):
        nodecmd.argv("no-such-tool-xyz node stop {node}", "node2")
    # {node} inside a quoted word too; no shell in between.
    assert nodecmd.argv("sh -c 'echo {node}; x'", "n 2")[2] == "echo n 2; x"


def test_commands_are_bounded_and_report_their_last_line() -> None:
    import sys

    ok = nodecmd.run([sys.executable, "-c", "print('one'); print('node2 cut')"], 10)
    assert ok["ok"] and ok["output"] == "node2 cut"
    bad = nodecmd.run([sys.executable, "-c", "import sys; sys.exit('no such node')"], 10)
    assert not bad["ok"] and bad["exit_code"] == 1 and bad["output"] == "no such node"
    slow = nodecmd.run([sys.executable, "-c", "import time; time.sleep(30)"], 0.5)
    assert slow["exit_code"] is None and "did not finish within 0.5s" in slow["output"]


# -- the drill against the fake API -------------------------------------------------------
@pytest.fixture
def cluster(fake: FakeKube, request: pytest.FixtureRequest) -> FakeKube:
    """Three nodes (n1 control plane), the app's three pods on n1, n2, n2."""
    fake.add_node("n1", CP)
    fake.add_node("n2", {"selfheal-lb.dev/extra-node": "true"})
    fake.add_node("n3", {"selfheal-lb.dev/extra-node": "true"})
    # A lost node's pods stay terminating (its kubelet cannot confirm); a drained one's go.
    # The budget tests keep a drained pod 1.5 s (a preStop) while its replacement is Ready
    # after 0.6 s: only a look during the drain sees the dip.
    name = request.node.name
    gone_after = 1.5 if "budget" in name else 0.5 if "drain" in name else 30.0
    fake.add_deployment(
        "articles", LABELS, metrics_texts=[CANNED] * 3, nodes=["n1", "n2", "n2"],
        recreate_after=0.2, ready_after=0.4, terminate_after=gone_after,
    )  # fmt: skip
    return fake


@pytest.fixture
def lb(cluster: FakeKube) -> Iterator[str]:
    """The LoadBalancer stand-in: each request to a random Ready pod (as kube-proxy picks);
    one on a lost node gets no answer (the connection is dropped)."""
    rng = random.Random(7)

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: object) -> None:
            pass

        def do_GET(self) -> None:
            with cluster.lock:
                cluster.reconcile()
                ready = sorted(
                    (p for p in cluster.pods.values() if p.ready()), key=lambda p: p.name
                )
                chosen = rng.choice(ready) if ready else None
                lost = chosen is None or cluster.nodes[chosen.node]["ready"] != "True"
            if lost:
                self.close_connection = True
                return
            assert chosen is not None
            self.send_response(200)
            self.send_header("X-Served-By", chosen.name)
            self.send_header("Content-Length", "2")
            self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(b"ok")

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/article1"
    finally:
        server.shutdown()
        server.server_close()


class Commands:
    """The fault and restore as the fake cluster sees them (the real ones are cluster/node.sh)."""

    def __init__(self, fake: FakeKube, evict_after: float = 0.8, fault_ok: bool = True) -> None:
        self.fake, self.evict_after, self.fault_ok = fake, evict_after, fault_ok
        self.calls: list[list[str]] = []

    def __call__(self, words: list[str], timeout: float) -> dict[str, Any]:
        self.calls.append(words)
        verb, name = words[-2], words[-1]
        if verb == "cut" and self.fault_ok:
            self.fake.lose_node(name, self.evict_after)
        elif verb == "restore":
            with self.fake.lock:
                self.fake.nodes[name].update(ready="True", evict_at=None)
        ok = verb != "cut" or self.fault_ok
        return {"command": " ".join(words), "exit_code": 0 if ok else 1, "ok": ok,
                "seconds": 0.0, "output": f"{name} {verb}" if ok else "no route"}  # fmt: skip


def settings(url: str, **kw: Any) -> nodedrill.Settings:
    base = dict(namespace=NS, selector=SEL, node="auto", url=url, settle=0.3, timeout=20,
                restore_timeout=5, verify_requests=300, fault_cmd="sh x cut {node}",
                restore_cmd="sh x restore {node}")  # fmt: skip
    return nodedrill.Settings(**{**base, **kw})


def run_drill(kubeconfig: str, s: nodedrill.Settings, commands: Any = None) -> dict[str, Any]:
    with kube.client(kubeconfig, "", 30) as client:
        return nodedrill.node_drill(client, s, run_cmd=commands or nodecmd.run)


@pytest.mark.slow
def test_node_loss_under_load(cluster: FakeKube, lb: str, kubeconfig: str) -> None:
    commands = Commands(cluster, evict_after=0.8)
    rep = run_drill(kubeconfig, settings(lb), commands)
    assert rep["node"] == "n2" and rep["lost_share"] == pytest.approx(2 / 3, abs=1e-3)
    assert [c[-2:] for c in commands.calls] == [["cut", "n2"], ["restore", "n2"]]
    assert rep["node_not_ready_s"] < 0.5 <= 0.8 <= rep["endpoints_removed_s"] < 1.5
    # Replaced 0.2 s after eviction, Ready 0.4 s later: not before 1.4 s after the fault.
    assert 1.4 <= rep["recovery_seconds"] < 4
    before = {r["name"]: r["node"] for r in rep["pods_before"]}
    assert sorted(before.values()) == ["n1", "n2", "n2"]
    ready_after = [r for r in rep["pods_after"] if r["state"] == "ready"]
    assert len(ready_after) == 3 and "n2" not in {r["node"] for r in ready_after}
    b = rep["failures"]
    assert 0 < b["failed_since_fault"] <= b["bound"] and b["failed_after"] == 0
    assert rep["balance"]["verdict"] == "balanced" and rep["balance"]["nodes_served"] == 2
    assert rep["verdict"] == "goals-met" and rep["exit_code"] == 0, rep["reason"]
    assert rep["restore"]["node_ready_after_s"] is not None


@pytest.mark.slow
def test_drain_honours_the_pdb_and_uncordons(cluster: FakeKube, lb: str, kubeconfig: str) -> None:
    cluster.pdb_refusals = 2  # the PDB says "not now" twice
    rep = run_drill(kubeconfig, settings(lb, drain=True))
    d = rep["drain"]
    assert rep["node"] == "n2" and d["pdb_refusals"] == 2 and len(d["evicted"]) == 2
    assert d["drain_seconds"] >= 1.0  # one RETRY_EVERY at least, the refusals were waited out
    assert rep["traffic"]["failed"] == 0 and rep["verdict"] == "goals-met", rep["reason"]
    assert cluster.nodes["n2"]["unschedulable"] is False  # uncordoned afterwards
    assert all(r["node"] != "n2" for r in rep["pods_after"] if r["state"] == "ready")


def _pdb(name: str, **spec: Any) -> dict[str, Any]:
    return {"metadata": {"name": name}, "spec": {"selector": {"matchLabels": LABELS}, **spec}}


@pytest.mark.slow
@pytest.mark.parametrize(("max_unavailable", "held"), [(2, True), (1, False)])
def test_drain_counts_the_fewest_ready_pods_against_the_budget(
    cluster: FakeKube, lb: str, kubeconfig: str, max_unavailable: int, held: bool
) -> None:
    """The fake evicts n2's two pods at once, as no real API server would under maxUnavailable
    1: the drill sees 1 Ready pod during the drain and says the budget did not hold."""
    cluster.pdbs = [_pdb("other", maxUnavailable=0) | {"spec": {"selector": {}}}]
    cluster.pdbs.append(_pdb("articles", maxUnavailable=max_unavailable))
    rep = run_drill(kubeconfig, settings(lb, drain=True))
    assert rep["pdb"] == {"name": "articles", "min_healthy": 3 - max_unavailable}
    assert rep["min_ready"] == 1
    goal = next(g for g in rep["goals"] if g["goal"] == "fewest Ready app pods")
    assert (
        goal["met"] is held
        and goal["target"] == f">= {3 - max_unavailable} (PodDisruptionBudget articles)"
    )
    assert (rep["exit_code"] == 0) is held, rep["reason"]
    assert cluster.nodes["n2"]["unschedulable"] is False


@pytest.mark.slow
def test_drain_without_a_budget_says_so(cluster: FakeKube, lb: str, kubeconfig: str) -> None:
    rep = run_drill(kubeconfig, settings(lb, drain=True))
    assert rep["pdb"] is None and all(g["goal"] != "fewest Ready app pods" for g in rep["goals"])
    assert "no PodDisruptionBudget selects the app pods" in " ".join(rep["notes"])


@pytest.mark.parametrize(
    ("spec", "floor"),
    [
        ({"maxUnavailable": 1}, 2),
        ({"maxUnavailable": "34%"}, 1),  # 34 % of 3 = 1.02, rounded up: 2 may go
        ({"minAvailable": 2}, 2),
        ({"minAvailable": "50%"}, 2),  # 1.5 rounded up
        ({"minAvailable": 0}, 0),
    ],
)
def test_pdb_floor_is_the_disruption_controllers_arithmetic(spec: dict, floor: int) -> None:
    assert nodeloss.pdb_floor([_pdb("b", **spec)], LABELS, 3) == ("b", floor)


def test_pdb_floor_takes_only_a_budget_that_selects_the_pods() -> None:
    other = {
        "metadata": {"name": "x"},
        "spec": {"selector": {"matchLabels": {"app": "y"}}, "maxUnavailable": 0},
    }
    exprs = {
        "metadata": {"name": "e"},
        "spec": {"selector": {"matchExpressions": [{"key": "a"}]}, "maxUnavailable": 0},
    }
    assert nodeloss.pdb_floor([other, exprs], LABELS, 3) is None
    assert nodeloss.pdb_floor([other, _pdb("mine", maxUnavailable=1)], LABELS, 3) == ("mine", 2)
    assert nodeloss.pdb_floor([_pdb("none-set")], LABELS, 3) is None


# -- the restore runs whatever happens ----------------------------------------------------
def test_failed_fault_still_restores_in_one_line(
    cluster: FakeKube, lb: str, kubeconfig: str
) -> None:
    commands = Commands(cluster, fault_ok=False)
    with pytest.raises(kube.KubeError) as err:
        run_drill(kubeconfig, settings(lb), commands)
    assert [c[-2] for c in commands.calls] == ["cut", "restore"]
    assert str(err.value) == (
        "the fault command failed: no route; restored (sh x restore n2): n2 Ready"
    )


def test_a_step_that_raises_still_restores(
    cluster: FakeKube, lb: str, kubeconfig: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(self: nodedrill.Tracker, desired: int, deployment: str) -> bool:
        raise RuntimeError("tracker broke")

    monkeypatch.setattr(nodedrill.Tracker, "poll", broken)
    commands = Commands(cluster)
    with pytest.raises(kube.KubeError, match=r"^tracker broke; restored"):
        run_drill(kubeconfig, settings(lb), commands)
    assert [c[-2] for c in commands.calls] == ["cut", "restore"]
    assert cluster.nodes["n2"]["ready"] == "True"


def test_ctrl_c_still_restores(cluster: FakeKube, lb: str, kubeconfig: str) -> None:
    class Interrupted(Commands):
        def __call__(self, words: list[str], timeout: float) -> dict[str, Any]:
            result = super().__call__(words, timeout)
            if words[-2] == "cut":
                raise KeyboardInterrupt
            return result

    commands = Interrupted(cluster)
    with pytest.raises(KeyboardInterrupt):
        run_drill(kubeconfig, settings(lb), commands)
    assert [c[-2] for c in commands.calls] == ["cut", "restore"]


def test_drain_that_fails_still_uncordons(cluster: FakeKube, lb: str, kubeconfig: str) -> None:
    cluster.fail("POST", "/eviction", 403, times=5)
    with pytest.raises(kube.KubeError, match=r"forbidden \(403\).*restored \(uncordon n2\)"):
        run_drill(kubeconfig, settings(lb, drain=True))
    assert cluster.nodes["n2"]["unschedulable"] is False
    assert cluster.calls("PATCH", "/nodes/n2") == 2  # cordon, uncordon


# -- through the CLI: one line --------------------------------------------------------------
def test_cli_refuses_a_one_node_cluster_in_one_line(
    fake: FakeKube, kubeconfig: str, capsys: pytest.CaptureFixture[str]
) -> None:
    fake.add_node("n1", CP)
    fake.add_deployment("articles", LABELS, metrics_texts=[CANNED] * 2, nodes=["n1", "n1"])
    os.environ["KUBECONFIG"] = kubeconfig
    try:
        code = cli.main(["drill", "-n", NS, "-l", SEL, "--node", "auto", "--url",
                         "http://127.0.0.1:9/"])  # fmt: skip
    finally:
        del os.environ["KUBECONFIG"]
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1
    assert err.startswith("loadgen drill: error: a one-node cluster (n1)")
    assert fake.calls("PATCH", "/nodes/") == 0


def test_cli_flag_mistakes_are_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    for argv, says in [
        (["--node", "auto"], "--node needs --url"),
        (["--drain"], "--drain, --fault-cmd and --restore-cmd need --node"),
        (["--node", "n2", "--url", "http://x/", "--drain", "--fault-cmd", "x"], "no --fault-cmd"),
        (["--node", "n2", "--url", "http://x/", "--kill", "2"], "--kill is the pod drill's"),
    ]:
        assert cli.main(["drill", "-n", NS, "-l", SEL, *argv]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and says in err, err
