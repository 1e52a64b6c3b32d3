"""`make e2e`: the stack on the local cluster, for real, start to teardown.

    python -m cluster.e2e [--stack local] [--out build/e2e] [--keep-on-failure]

Steps (one summary line each, with its time): the app's offline base image; the program
evaluated and its resources carried out as the engine would (cluster/e2e/stack.py: concurrently
as dependencies allow, replacements and awaits as the providers do them); the report's
assertions; an unchanged second deploy that changes nothing and a dashboard-only change that
runs no load; NetworkPolicy enforcement; a re-verification after a config change that touches
only the verification; a pod-kill drill through the load balancer; on a cluster of several
nodes (make cluster NODES=3) a node drained and a node lost under load (`loadgen drill --node
auto [--drain]`, every goal of the drill met); a new image tag and one more
replica rolled out under outside load, 0 failed requests (cluster/e2e/rollout.py); the shared
Redis store on a first `up` (views counted exactly across pods under the load); sticky sessions
(sessionAffinity ClientIP) verified as such (these two with the load unpaced); a destroy whose
cluster is gone (cluster/e2e/unreachable.py); teardown and a
check that nothing is left.
Exit 0 when every check holds, 1 with a one-line reason otherwise. The results (report, drill,
timings, the idle cluster's usage, the load average) are written to --out/e2e.json.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from cluster.e2e import checks, rollout, unreachable, upgrade
from cluster.e2e.stack import (
    PROJECT_DIR,
    Deployer,
    DeployError,
    evaluator,
    run_script,
    write_report,
)
from cluster.paths import CONTEXT, KUBECONFIG, KUBECTL
from components import labels, offline
from components.metrics_api import MetricsApiState
from components.metrics_api import probe as probe_metrics_api
from components.settings import ConfigError

FAILURES = (
    DeployError,
    checks.CheckFailed,
    subprocess.CalledProcessError,
    ConfigError,
    upgrade.UpgradeUnavailable,
)
# The Redis and sticky steps check counts and who served whom, not CPU under load (the first
# deploy does): the same 3 x 100 connections x 1000 requests, unpaced, which also presses the
# shared counter harder, and saves about 50 s per step.
UNPACED = {"loadgenQps": 0}


def say(line: str) -> None:
    print(line, flush=True)


class EndToEnd:
    def __init__(self, d: Deployer, stack: str, out: Path) -> None:
        self.d, self.stack, self.out = d, stack, out
        self.results: dict[str, Any] = {"stack": stack, "load_average": os.getloadavg()}
        self.run: offline.ProgramRun | None = None
        self.metrics_api: MetricsApiState | None = None
        self.selector = (
            f"app.kubernetes.io/name={labels.APP_NAME},app.kubernetes.io/instance={stack}"
        )

    # --- helpers ---------------------------------------------------------------------------
    def timed(self, name: str, fn: Callable[[], str]) -> str:
        t0 = time.monotonic()
        detail = fn()
        say(f"e2e: {name}: {detail} ({time.monotonic() - t0:.1f} s)")
        return detail

    @property
    def namespace(self) -> str:
        assert self.run is not None
        return self.run.outputs["namespace"]

    def deploy(self, **overrides: Any) -> tuple[dict[str, Any], list[str]]:
        """Evaluates the program (with config overrides) and brings the cluster to it."""
        previous = {r.urn: r for r in self.run.resources} if self.run else None
        if self.metrics_api is None:
            # The program's own detection, against this cluster (its answer is handed to the
            # program under mocks, as the real program would find it).
            self.metrics_api = probe_metrics_api(self.d.context, self.d.kubeconfig)
        program = evaluator(self.stack, self.metrics_api, **overrides)
        self.run, acted = self.d.up(program, previous=previous)
        verify = self.run.named("verification-verify")
        return json.loads(self.d.stdout[verify.urn]), acted

    def fortio_container(self) -> dict[str, Any]:
        assert self.run is not None
        job = self.run.named("loadgen-job").inputs["spec"]
        return job["template"]["spec"]["containers"][0]

    def expected_requests(self) -> int:
        assert self.run is not None
        args = self.fortio_container()["args"]
        return self.run.named("loadgen-job").inputs["spec"]["parallelism"] * int(
            args[args.index("-n") + 1]
        )

    def node_count(self) -> int:
        return len(self.d.kc("get", "nodes", "-o", "name").stdout.split())

    def jsonpath(self, kind: str, path: str, *selector: str) -> str:
        return self.d.kc(
            "get", kind, *selector, "-n", self.namespace, "-o", f"jsonpath={path}"
        ).stdout

    # --- the steps -------------------------------------------------------------------------
    def idle_usage(self) -> str:
        top = self.d.kc("top", "node", "--no-headers", check=False, timeout=30).stdout.split()
        self.results["idle_node"] = top[1:] if top else None
        return f"node CPU {top[1]} ({top[2]}), memory {top[3]} ({top[4]})" if top else "n/a"

    def base_image(self) -> str:
        requirements = PROJECT_DIR / "app" / "requirements.txt"
        return run_script("docker-base.sh", "--wheels", str(requirements))

    def first_deploy(self) -> None:
        t0 = time.monotonic()
        say("e2e: deploying (each resource once what it declares is done, several at once):")
        report, _ = self.deploy()
        self.results["report"] = report
        self.results["apply_to_report_s"] = round(time.monotonic() - t0, 1)
        say(f"e2e: apply -> verified report: {self.results['apply_to_report_s']} s")
        assert self.run is not None and self.metrics_api is not None
        replicas = int(self.run.outputs["appReplicas"])
        self.timed("report", lambda: checks.report_is_balanced(report, replicas))
        nodes = self.node_count()
        self.timed("spread", lambda: checks.spread_over_nodes(report, replicas, nodes))
        self.timed(
            "metrics-server",
            lambda: checks.metrics_server_reused(self.metrics_api, self.d.applied.values()),
        )
        total = self.expected_requests()
        self.timed("fortio job", lambda: checks.fortio_without_errors(report, total))

    def network_policies(self) -> str:
        pod_ip = self.jsonpath("pods", "{.items[0].status.podIP}", "-l", self.selector)
        return checks.network_policies_enforced(
            self.d,
            self.namespace,
            pod_ip,
            labels.selector_labels(labels.LOADGEN_NAME, self.stack),
            self.fortio_container()["image"],
            f"{self.namespace}-e2e-outside",
        )

    def reverification(self) -> str:
        """A change to the verification alone re-runs baseline, load and check (issue: a
        snapshot re-run without a new load used to fail `up`)."""
        assert self.run is not None
        timeout = int(offline.stack_config(self.stack)["selfheal-lb:verifyTimeoutSeconds"])
        report, acted = self.deploy(verifyTimeoutSeconds=timeout + 1)
        self.results["reverification"] = {"acted": acted, "report": report}
        for name in ("verification-snapshot", "loadgen-job", "verification-verify"):
            checks.require(name in acted, f"{name} did not run again after the config change")
        checks.require("app-deployment" not in acted, "the app was redeployed needlessly")
        replicas = int(self.run.outputs["appReplicas"])
        return "re-ran " + ", ".join(acted) + "; " + checks.report_is_balanced(report, replicas)

    def article_url(self) -> str:
        """/article1 through the app Service's load-balancer address."""
        lb_ip = self.jsonpath("service", "{.status.loadBalancer.ingress[0].ip}", "articles")
        return f"http://{lb_ip}:8080/article1"

    def drill(self) -> str:
        result = checks.drill(self.d, self.namespace, self.selector, self.article_url())
        self.results["drill"] = result
        return result["reason"]

    def node_drills(self) -> str:
        """Drain a node, then lose one (cluster/node.sh cut), under load through the LB."""
        if self.node_count() < 2:
            return "skipped: a one-node cluster (make cluster NODES=3 runs it)"
        url = self.article_url()
        said = []
        for drain in (True, False):
            result = checks.node_drill(
                self.d, self.namespace, self.selector, "articles", url, drain=drain
            )
            self.results["node_drain" if drain else "node_loss"] = result
            said.append(result["reason"])
        return "; ".join(said)

    def rollout_under_load(self) -> str:
        """A new image and one more replica rolled out under outside load: 0 failed requests."""
        assert self.run is not None
        replicas = int(self.run.outputs["appReplicas"])
        rep = rollout.under_load(
            self.d, self.namespace, self.run.outputs["imageRef"], replicas, self.deploy
        )
        self.results["rollout"] = rep
        return rollout.judge(rep, replicas)

    def shared_state(self) -> str:
        """stateStore redis on a first `up` (the stateless stack is removed first): every
        resource starts as soon as what it declares is done, as under the engine, so the
        baseline must wait for the store itself; then views counted exactly across pods."""
        self.d.destroy()
        self.run = None
        image = run_script("redis-image.sh")
        proc = subprocess.run(
            [str(PROJECT_DIR / "cluster" / "images.sh"), "load", image],
            capture_output=True,
            text=True,
        )
        if proc.returncode != 0:
            raise DeployError(f"could not load {image}: {proc.stderr.strip()[-200:]}")
        report, acted = self.deploy(
            stateStore="redis",
            stateStoreImage=image,
            stateStorePassword=secrets.token_hex(16),
            **UNPACED,
        )
        self.results["shared_state"] = {"acted": acted, "report": report}
        assert self.run is not None
        replicas = int(self.run.outputs["appReplicas"])
        balanced = checks.report_is_balanced(report, replicas, under_load=False)
        return checks.views_consistent(report) + "; " + balanced

    def sticky_sessions(self) -> str:
        report, acted = self.deploy(sessionAffinity="ClientIP", **UNPACED)
        self.results["sticky"] = {"acted": acted, "report": report}
        return checks.report_is_sticky(report)

    # --- issue 19: a stable stack, and a destroy that always works ---------------------------
    def unchanged_redeploy(self) -> str:
        """A second deploy with nothing changed changes nothing: no object, no load."""
        _, acted = self.deploy()
        checks.require(not acted, f"an unchanged deploy acted on: {', '.join(acted)}")
        return "nothing applied, no load run"

    def dashboard_only_change(self) -> str:
        """Turning the dashboard off re-runs no load and rolls no pod (components/rerun.py)."""
        dashboards = [u for u in self.d.applied if u.endswith("::monitoring-dashboard")]
        _, acted = self.deploy(grafanaDashboard=False)
        for name in ("verification-snapshot", "loadgen-job", "verification-verify"):
            checks.require(name not in acted, f"a dashboard-only change re-ran {name}")
        checks.require("app-deployment" not in acted, "a dashboard-only change rolled the app")
        gone = [u for u in dashboards if u not in self.d.applied]
        checks.require(gone, "the dashboard ConfigMap was not removed")
        return f"dashboard removed; acted on {', '.join(acted) or 'nothing else'}; no load"

    def destroy_with_the_cluster_gone(self) -> str:
        """`make destroy` of a stack whose cluster is gone: its state is emptied, without a call
        to the cluster (a copy of the state, against an API server that no longer answers; the
        real objects are left to the teardown)."""
        gone_config = unreachable.gone_kubeconfig(KUBECONFIG, self.out / "gone-kubeconfig")
        gone = Deployer(kubectl=self.d.kubectl, kubeconfig=str(gone_config),
                        context=self.d.context, timeout=30, log=say)  # fmt: skip
        gone.applied = dict(self.d.applied)
        try:
            unreachable.destroy(gone, delete_unreachable=False)
            raise checks.CheckFailed("a destroy without deleteUnreachable reached a gone cluster")
        except DeployError:
            pass
        dropped = unreachable.destroy(gone, delete_unreachable=True)
        checks.require(not gone.applied, "the stack's state is not empty after destroy")
        return f"{len(dropped)} objects dropped from the state; the stack is empty"

    # --- issue 21: an upgrade from an older commit replaces nothing ------------------------
    def upgrade_from(self, ref: str) -> str:
        """The program of commit `ref` deployed (its own image, commands and load), then this
        checkout's `up` over it: the objects that moved into other components keep their live
        identity (aliases), and nothing is replaced that the engine's plan does not replace."""
        with tempfile.TemporaryDirectory(prefix="selfheal-lb-base-") as tmp:
            tree = Path(tmp)
            upgrade.export_tree(ref, tree)
            # The older program, with this checkout's cluster tooling (the cluster is this
            # checkout's: its image loader knows every node).
            for script in [
                *(PROJECT_DIR / "cluster").glob("*.sh"),
                PROJECT_DIR / "cluster" / "versions.env",
            ]:
                shutil.copy2(script, tree / "cluster" / script.name)
            run_script("docker-base.sh", "--wheels", str(tree / "app" / "requirements.txt"))
            self.metrics_api = probe_metrics_api(self.d.context, self.d.kubeconfig)
            older = upgrade.CommitProgram(tree, self.stack, self.metrics_api)
            self.d.project_dir = tree
            try:
                say(f"e2e: deploying commit {ref}:")
                self.run, _ = self.d.up(older)
            finally:
                self.d.project_dir = PROJECT_DIR
        before = upgrade.live_uids(self.d)
        self.base_image()  # this checkout's requirements again
        newer = evaluator(self.stack, self.metrics_api)(self.d.stdout, self.d.names)
        steps = upgrade.plan_upgrade(self.run.resources, newer.resources)
        old_urns = set(self.d.applied)
        say("e2e: upgrading to this checkout:")
        report, acted = self.deploy()
        moved = {a: r.urn for r in self.run.resources for a in r.aliases if a in old_urns}
        detail = upgrade.kept_identity(steps, before, upgrade.live_uids(self.d), moved)
        self.results["upgrade"] = {"from": ref, "acted": acted, "report": report}
        assert self.run is not None
        checks.report_is_balanced(report, int(self.run.outputs["appReplicas"]))
        return f"from {ref}: {detail}; acted on {', '.join(acted) or 'nothing'}"

    def teardown(self) -> str:
        t0 = time.monotonic()
        self.d.destroy()
        detail = checks.nothing_left(self.d, [self.namespace])
        self.results["teardown_s"] = round(time.monotonic() - t0, 1)
        return detail

    def diagnose(self) -> None:
        """What a person would look at: the namespace's objects, events and failed pods' logs."""
        kc, ns = self.d.kc, self.namespace
        parts = [
            kc("get", "all,networkpolicy,hpa,pdb", "-o", "wide", "-n", ns, check=False).stdout,
            kc("get", "events", "--sort-by=.lastTimestamp", "-n", ns, check=False).stdout,
        ]
        pods = json.loads(kc("get", "pods", "-n", ns, "-o", "json", check=False).stdout or "{}")
        for pod in pods.get("items") or []:
            name, phase = pod["metadata"]["name"], pod.get("status", {}).get("phase")
            if phase != "Running":
                log = kc("logs", name, "-n", ns, "--all-containers", "--tail=40", check=False)
                parts.append(f"--- {name} ({phase})\n{log.stdout}{log.stderr}")
                say(f"e2e:   {name}: {(log.stdout or log.stderr).strip().splitlines()[-1:]}")
                continue
            # Running pods log a request per line; their warnings (Redis unreachable, drain)
            # are what explains a failed check, and CI shows only this output.
            log = kc("logs", name, "-n", ns, "--all-containers", "--tail=20000", check=False)
            warnings = [ln for ln in log.stdout.splitlines() if _is_warning(ln)]
            if warnings:
                parts.append(f"--- {name} ({phase}): warnings\n" + "\n".join(warnings[-40:]))
                for line in warnings[-3:]:
                    say(f"e2e:   {name}: {line[:300]}")
        path = self.out / "diagnostics.txt"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("\n".join(parts))
        say(f"e2e: diagnostics in {path}")


class _Done(Exception):
    """The steps asked for (--upgrade-from) are done: on to the teardown."""


def _is_warning(line: str) -> bool:
    """A JSON log line (app/articles/logs.py) at warning level or above."""
    return any(f'"level": "{lvl}"' in line for lvl in ("warning", "error", "critical"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m cluster.e2e", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--stack", default="local")
    parser.add_argument("--out", type=Path, default=PROJECT_DIR / "build" / "e2e")
    parser.add_argument(
        "--keep-on-failure",
        action="store_true",
        help="leave the stack deployed when a step fails (to look at it)",
    )
    parser.add_argument(
        "--upgrade-from",
        metavar="REF",
        help="instead of the steps: deploy commit REF, upgrade it to this checkout, check that "
        "nothing lost its identity, tear down",
    )
    args = parser.parse_args(argv)
    if not KUBECONFIG.exists() or not KUBECTL.exists():
        say("e2e: no local cluster: run 'make cluster' first")
        return 1
    d = Deployer(kubectl=str(KUBECTL), kubeconfig=str(KUBECONFIG), context=CONTEXT, log=say)
    if d.kc("get", "--raw", "/readyz", check=False, timeout=10).returncode != 0:
        say("e2e: the local cluster does not answer: run 'make cluster' (it restarts it)")
        return 1
    e2e = EndToEnd(d, args.stack, args.out)
    t0 = time.monotonic()
    try:
        e2e.timed("idle cluster", e2e.idle_usage)
        e2e.timed("base image", e2e.base_image)
        if args.upgrade_from:
            e2e.timed("upgrade", lambda: e2e.upgrade_from(args.upgrade_from))
            raise _Done
        e2e.first_deploy()
        e2e.timed("unchanged redeploy", e2e.unchanged_redeploy)
        e2e.timed("dashboard-only change", e2e.dashboard_only_change)
        e2e.timed("network policies", e2e.network_policies)
        e2e.timed("re-verification", e2e.reverification)
        e2e.timed("drill", e2e.drill)
        e2e.timed("node drills", e2e.node_drills)
        e2e.timed("rollout under load", e2e.rollout_under_load)
        e2e.timed("shared state (Redis)", e2e.shared_state)
        e2e.timed("sticky sessions", e2e.sticky_sessions)
        e2e.timed("destroy with the cluster gone", e2e.destroy_with_the_cluster_gone)
    except _Done:
        pass
    except FAILURES as err:
        say(f"e2e: FAILED: {err}")
        e2e.results["failure"] = str(err)
        if e2e.run is not None:
            e2e.diagnose()
            if args.keep_on_failure:
                say(f"e2e: left deployed in namespace {e2e.namespace} (--keep-on-failure)")
                write_report(args.out / "e2e.json", e2e.results)
                return 1
    ok = "failure" not in e2e.results
    if e2e.run is not None:
        try:
            e2e.timed("teardown", e2e.teardown)
        except FAILURES as err:
            say(f"e2e: teardown FAILED: {err}")
            ok = False
    e2e.results["total_s"] = round(time.monotonic() - t0, 1)
    write_report(args.out / "e2e.json", e2e.results)
    verdict = "passed" if ok else "FAILED"
    say(f"e2e: {verdict} in {e2e.results['total_s']} s (results in {args.out / 'e2e.json'})")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
