"""`make e2e`: the stack on the local cluster, for real, start to teardown.

    python -m cluster.e2e [--stack local] [--out build/e2e]

Steps (one summary line each, with its time): the app's base image; the program evaluated and
its resources carried out in dependency order (image build + load into the node, namespace,
app, baseline, fortio Job, verification: cluster/e2e/stack.py); the report's assertions;
NetworkPolicy enforcement; a pod-kill drill through the load balancer; teardown and a check
that nothing is left. Exit 0 when every check holds, 1 with a one-line reason otherwise. The
report and the drill's result are written to the --out directory.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from cluster.e2e import checks
from cluster.e2e.stack import PROJECT_DIR, Deployer, DeployError, evaluate, ordered, write_report
from components import labels
from components.settings import ConfigError

CACHE = Path(
    os.environ.get("SELFHEAL_LB_CACHE")
    or Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "selfheal-lb"
)
KUBECONFIG = CACHE / "cluster" / "kubeconfig"
KUBECTL = CACHE / "cluster" / "bin" / "kubectl"


def say(line: str) -> None:
    print(line, flush=True)


def timed(name: str, fn: Callable[[], str]) -> str:
    t0 = time.monotonic()
    detail = fn()
    say(f"e2e: {name}: {detail} ({time.monotonic() - t0:.1f} s)")
    return detail


def verify_stdout(d: Deployer, run: Any) -> dict[str, Any]:
    rec = run.named("verification-verify")
    return json.loads(d.stdout[rec.urn])


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
    args = parser.parse_args(argv)
    if not KUBECONFIG.exists() or not KUBECTL.exists():
        say("e2e: no local cluster: run 'make cluster' first")
        return 1
    d = Deployer(kubectl=str(KUBECTL), kubeconfig=str(KUBECONFIG), context="selfheal-lb", log=say)
    if d.kc("get", "--raw", "/readyz", check=False, timeout=10).returncode != 0:
        say("e2e: the local cluster does not answer: run 'make cluster' (it restarts it)")
        return 1
    try:
        run = evaluate(args.stack)
    except ConfigError as err:
        say(f"e2e: {err}")
        return 1
    outputs = run.outputs
    namespace = outputs["namespace"]
    replicas = int(outputs["appReplicas"])
    selector = f"app.kubernetes.io/name={labels.APP_NAME},app.kubernetes.io/instance={args.stack}"
    results: dict[str, Any] = {"stack": args.stack}
    t_start = time.monotonic()
    try:
        timed(
            "base image",
            lambda: subprocess.run(
                [
                    str(PROJECT_DIR / "scripts" / "docker-base.sh"),
                    "--wheels",
                    str(PROJECT_DIR / "app" / "requirements.txt"),
                ],
                capture_output=True,
                text=True,
                check=True,
                env={**os.environ, "PYTHON": sys.executable},
            ).stdout.strip(),
        )
        t_apply = time.monotonic()
        say("e2e: deploying (the program's resources in dependency order):")
        d.up(ordered(run))
        report = verify_stdout(d, run)
        results["report"] = report
        results["apply_to_report_s"] = round(time.monotonic() - t_apply, 1)
        say(f"e2e: apply -> verified report: {results['apply_to_report_s']} s")
        timed("report", lambda: checks.report_is_balanced(report, replicas))
        total = run.named("loadgen-job").inputs["spec"]["parallelism"] * _fortio_requests(run)
        timed("fortio job", lambda: checks.fortio_without_errors(report, total))
        pod_ip = d.kc(
            "get",
            "pods",
            "-n",
            namespace,
            "-l",
            selector,
            "-o",
            "jsonpath={.items[0].status.podIP}",
        ).stdout
        fortio_labels = labels.selector_labels(labels.LOADGEN_NAME, args.stack)
        image = _fortio_container(run)["image"]
        timed(
            "network policies",
            lambda: checks.network_policies_enforced(
                d, namespace, pod_ip, fortio_labels, image, f"{namespace}-e2e-outside"
            ),
        )
        lb_ip = d.kc(
            "get",
            "service",
            outputs["serviceName"],
            "-n",
            namespace,
            "-o",
            "jsonpath={.status.loadBalancer.ingress[0].ip}",
        ).stdout
        url = f"http://{lb_ip}:{_service_port(run)}/article1"

        def run_drill() -> str:
            result = checks.drill(d, namespace, selector, url)
            results["drill"] = result
            return result["reason"]

        timed("drill", run_drill)
    except (DeployError, checks.CheckFailed, subprocess.CalledProcessError) as err:
        say(f"e2e: FAILED: {err}")
        results["failure"] = str(err)
        _diagnose(d, namespace, args.out / "diagnostics.txt")
        if args.keep_on_failure:
            say(f"e2e: left deployed in namespace {namespace} (--keep-on-failure)")
            write_report(args.out / "e2e.json", results)
            return 1
        _teardown(d, namespace, results)
        write_report(args.out / "e2e.json", results)
        return 1
    ok = _teardown(d, namespace, results)
    results["total_s"] = round(time.monotonic() - t_start, 1)
    write_report(args.out / "e2e.json", results)
    say(
        f"e2e: {'passed' if ok else 'FAILED'} in {results['total_s']} s "
        f"(report in {args.out / 'e2e.json'})"
    )
    return 0 if ok else 1


def _diagnose(d: Deployer, namespace: str, path: Path) -> None:
    """What a person would look at: the namespace's objects, events and failed pods' logs."""
    parts = []
    for args in (
        ("get", "all,networkpolicy,hpa,pdb", "-o", "wide"),
        ("get", "events", "--sort-by=.lastTimestamp"),
    ):
        parts.append(d.kc(*args, "-n", namespace, check=False, timeout=30).stdout)
    pods = d.kc("get", "pods", "-n", namespace, "-o", "json", check=False, timeout=30).stdout
    for pod in json.loads(pods or "{}").get("items") or []:
        name = pod["metadata"]["name"]
        if pod.get("status", {}).get("phase") != "Running":
            log = d.kc(
                "logs",
                name,
                "-n",
                namespace,
                "--all-containers",
                "--tail=40",
                check=False,
                timeout=30,
            )
            parts.append(f"--- {name} ({pod['status'].get('phase')})\n{log.stdout}{log.stderr}")
            say(f"e2e:   {name}: {(log.stdout or log.stderr).strip().splitlines()[-1:]}")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(parts))
    say(f"e2e: diagnostics in {path}")


def _teardown(d: Deployer, namespace: str, results: dict[str, Any]) -> bool:
    t0 = time.monotonic()
    try:
        d.destroy()
        detail = checks.nothing_left(d, [namespace])
    except (DeployError, checks.CheckFailed) as err:
        say(f"e2e: teardown FAILED: {err}")
        return False
    results["teardown_s"] = round(time.monotonic() - t0, 1)
    say(f"e2e: teardown: {detail} ({results['teardown_s']} s)")
    return True


def _fortio_container(run: Any) -> dict[str, Any]:
    return run.named("loadgen-job").inputs["spec"]["template"]["spec"]["containers"][0]


def _fortio_requests(run: Any) -> int:
    args = _fortio_container(run)["args"]
    return int(args[args.index("-n") + 1])


def _service_port(run: Any) -> int:
    return int(run.named("app-service").inputs["spec"]["ports"][0]["port"])


if __name__ == "__main__":
    sys.exit(main())
