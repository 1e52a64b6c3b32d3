"""What `make e2e` asserts about a deployed stack: the report, the policies, the drill.

Each check returns a one-line summary or raises CheckFailed with a one-line reason.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterable
from typing import Any

import yaml

from cluster.e2e.stack import Deployer, DeployError
from loadgen.fortio import FortioParseError, extract_result


class CheckFailed(AssertionError):
    pass


def require(condition: bool, message: str) -> None:
    if not condition:
        raise CheckFailed(message)


def report_is_balanced(
    report: dict[str, Any], expected_pods: int, *, under_load: bool = True
) -> str:
    """Verdict balanced, every expected pod named with requests and CPU/memory figures; with
    under_load, figures sampled while the load ran and above the pod's idle CPU (the steps that
    run the load unpaced, to check something else, leave that to the first deploy)."""
    require(
        report.get("verdict") == "balanced",
        f"verdict {report.get('verdict')!r}: {report.get('reason', report.get('raw', ''))}",
    )
    pods = report.get("pods") or []
    require(len(pods) == expected_pods, f"{len(pods)} pods in the report, {expected_pods} expected")
    for pod in pods:
        require(pod.get("requests", 0) > 0, f"pod {pod.get('name')} served no request")
    resources = report.get("resources") or {}
    require(
        bool(resources.get("available")),
        f"no CPU/memory in the report: {resources.get('note', 'metrics API unavailable')}",
    )
    requests = ", ".join(str(p["requests"]) for p in pods)
    if not under_load:
        return f"balanced over {len(pods)} pods (requests {requests}; p={_p(report)})"
    require(
        str(resources.get("note", "")).startswith("sampled while the load generator ran"),
        f"CPU/memory not sampled under load: {resources.get('note')}",
    )
    figures = []
    for pod in pods:
        under, idle = pod.get("resources") or {}, pod.get("resources_idle") or {}
        require(bool(under) and bool(idle), f"no CPU/memory under load and idle for {pod['name']}")
        require(
            under["cpu_peak_m"] > idle["cpu_mean_m"],
            f"{pod['name']}: CPU under load {under['cpu_peak_m']}m is not above idle "
            f"{idle['cpu_mean_m']}m",
        )
        figures.append(f"{under['cpu_peak_m']:g}m/{idle['cpu_mean_m']:g}m")
    return (
        f"balanced over {len(pods)} pods (requests {requests}; p={_p(report)}; "
        f"CPU peak under load/idle {', '.join(figures)})"
    )


def views_consistent(report: dict[str, Any]) -> str:
    """With the shared store every successful request counted exactly one view."""
    consistency = report.get("consistency") or {}
    require(
        consistency.get("verdict") == "consistent",
        f"views {consistency.get('verdict')!r}: {consistency.get('reason')}",
    )
    return str(consistency.get("reason"))


def report_is_sticky(report: dict[str, Any]) -> str:
    """With sessionAffinity ClientIP the report checks what sticky sessions promise."""
    require(
        report.get("verdict") == "sticky",
        f"verdict {report.get('verdict')!r} with sessionAffinity ClientIP: {report.get('reason')}",
    )
    return str(report.get("reason"))


def _p(report: dict[str, Any]) -> str:
    p = (report.get("distribution") or {}).get("p_value")
    return f"{p:.3f}" if isinstance(p, int | float) else "n/a"


def fortio_without_errors(report: dict[str, Any], expected_total: int) -> str:
    fortio = report.get("fortio") or {}
    codes = fortio.get("ret_codes") or {}
    require(fortio.get("errors", 1) == 0, f"fortio saw {fortio.get('errors')} errors ({codes})")
    require(set(codes) == {"200"}, f"fortio got status codes {codes}")
    require(
        fortio.get("total") == expected_total,
        f"fortio sent {fortio.get('total')} requests, {expected_total} expected",
    )
    return f"{fortio['total']} requests, 0 errors, {fortio.get('qps', 0):.0f} req/s"


PROBE_SECONDS = 15


def _probe_pod(
    name: str, namespace: str, labels: dict[str, str], image: str, url: str
) -> dict[str, Any]:
    """A pod that tries `url` for up to PROBE_SECONDS, stopping at the first 200 (restricted PSA).

    Not a single call: the policy engine admits a new pod's address a moment after it starts,
    so a one-shot probe would fail for the wrong reason. fortio's JSON result is its log.
    """
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": namespace, "labels": labels},
        "spec": {
            "restartPolicy": "Never",
            "automountServiceAccountToken": False,
            "securityContext": {
                "runAsNonRoot": True,
                "runAsUser": 10001,
                "seccompProfile": {"type": "RuntimeDefault"},
            },
            "containers": [
                {
                    "name": "probe",
                    "image": image,
                    "imagePullPolicy": "Never",
                    "command": [
                        "/usr/bin/fortio",
                        "load",
                        "-json",
                        "-",
                        "-quiet",
                        "-c",
                        "1",
                        "-qps",
                        "4",
                        "-t",
                        f"{PROBE_SECONDS}s",
                        "-allow-initial-errors",
                        "-abort-on",
                        "200",
                        "-timeout",
                        "2s",
                        url,
                    ],
                    "securityContext": {
                        "allowPrivilegeEscalation": False,
                        "readOnlyRootFilesystem": True,
                        "capabilities": {"drop": ["ALL"]},
                    },
                    "resources": {
                        "requests": {"cpu": "10m", "memory": "16Mi"},
                        "limits": {"cpu": "100m", "memory": "64Mi"},
                    },
                }
            ],
        },
    }


def probe(
    d: Deployer, name: str, namespace: str, labels: dict[str, str], image: str, url: str
) -> bool:
    """True when a pod with `labels` in `namespace` got a 200 from `url` within PROBE_SECONDS."""
    pod = _probe_pod(name, namespace, labels, image, url)
    d.kc("apply", "-f", "-", stdin=yaml.safe_dump(pod))
    try:
        d.kc(
            "wait",
            f"pod/{name}",
            "-n",
            namespace,
            f"--timeout={PROBE_SECONDS + 45}s",
            "--for=jsonpath={.status.phase}=Succeeded",
            check=False,
            timeout=PROBE_SECONDS + 55,
        )
        log = d.kc("logs", name, "-n", namespace, check=False).stdout
        try:
            codes = extract_result(log).get("RetCodes") or {}
        except FortioParseError:
            raise CheckFailed(f"probe pod {name} printed no result: {log.strip()[-200:]}") from None
        return codes.get("200", 0) > 0
    finally:
        d.kc(
            "delete",
            "pod",
            name,
            "-n",
            namespace,
            "--ignore-not-found",
            "--wait=false",
            check=False,
        )


def network_policies_enforced(
    d: Deployer,
    namespace: str,
    pod_ip: str,
    fortio_labels: dict[str, str],
    image: str,
    other_namespace: str,
) -> str:
    """fortio's labels admitted, an unlabelled pod refused, both straight to an app pod's IP.

    The refused probe runs in a namespace of its own that has no policies, so only the app's
    ingress policy can refuse it (not the stack's default-deny egress).
    """
    url = f"http://{pod_ip}:8080/healthz"
    require(
        probe(d, "e2e-probe-fortio", namespace, fortio_labels, image, url),
        f"a pod with fortio's labels could not reach the app at {url}",
    )
    d.kc("create", "namespace", other_namespace, check=False)
    d.kc(
        "label",
        "namespace",
        other_namespace,
        "app.kubernetes.io/part-of=selfheal-lb",
        "--overwrite",
    )
    try:
        require(
            not probe(d, "e2e-probe-unlabelled", other_namespace, {}, image, url),
            "a pod without fortio's labels reached the app: NetworkPolicy not enforced",
        )
    finally:
        d.kc(
            "delete",
            "namespace",
            other_namespace,
            "--ignore-not-found",
            "--wait=true",
            "--timeout=120s",
            check=False,
            timeout=130,
        )
    return "fortio's labels admitted, an unlabelled pod refused"


def spread_over_nodes(report: dict[str, Any], replicas: int, nodes: int) -> str:
    """A first deploy on an idle cluster: the topology spread put the pods on as many nodes as
    it could, and each of those nodes served traffic (the report's nodes_served)."""
    served = int(report.get("nodes_served") or 0)
    want = min(replicas, nodes)
    per_node = {n.get("name"): len(n.get("pods") or []) for n in report.get("nodes") or []}
    require(served >= want, f"{served} of {nodes} nodes served traffic, not {want}: {per_node}")
    return f"{served} node{'s' * (served != 1)} served traffic: {per_node}"


def _loadgen_json(d: Deployer, what: str, args: list[str], timeout: float) -> dict[str, Any]:
    cmd = [sys.executable, "-m", "loadgen", *args, "--context", d.context, "--json"]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=d.env(), timeout=timeout)
    try:
        return json.loads(proc.stdout)
    except json.JSONDecodeError as exc:
        raise DeployError(
            f"{what} printed no JSON (exit {proc.returncode}): {proc.stderr.strip()[-300:]}"
        ) from exc


def drill(d: Deployer, namespace: str, selector: str, url: str) -> dict[str, Any]:
    args = ["drill", "--namespace", namespace, "--selector", selector]
    args += ["--kill", "1", "--timeout", "120", "--url", url]
    result = _loadgen_json(d, "drill", args, timeout=180)
    traffic = result.get("traffic") or {}
    require(result.get("verdict") == "recovered", f"drill: {result.get('reason')}")
    require(
        traffic.get("failed") == 0 and traffic.get("total", 0) > 0,
        f"drill: {traffic.get('failed')} of {traffic.get('total')} requests failed",
    )
    return result


def node_drill(
    d: Deployer, namespace: str, selector: str, service: str, url: str, *, drain: bool
) -> dict[str, Any]:
    """`loadgen drill --node auto [--drain]` on a cluster of several nodes: every goal of the
    drill met (recovery within 60 s, failures within the bound or 0 for a drain, balanced over
    the survivors, the node back), which the drill's own exit code and goals say."""
    args = ["drill", "--node", "auto", "--namespace", namespace, "--selector", selector]
    args += ["--service", service, "--url", url, "--timeout", "120"] + ["--drain"] * drain
    result = _loadgen_json(d, "node drill", args, timeout=600)
    missed = [g["goal"] for g in result.get("goals") or [] if g.get("met") is not True]
    require(result.get("exit_code") == 0 and not missed, f"node drill: {result.get('reason')}")
    return result


def metrics_server_reused(state: Any, applied: Iterable[dict[str, Any]]) -> str:
    """The cluster's addon was detected, so the stack applied no metrics-server of its own."""
    require(
        state.status == "available", f"metrics.k8s.io detected as {state.status}: {state.detail}"
    )
    own = [o["metadata"]["name"] for o in applied if "metrics-server" in o["metadata"]["name"]]
    require(not own, f"the stack applied metrics-server objects of its own: {own}")
    return f"detected {state.status} ({state.provider or state.detail}); the stack applied none"


def nothing_left(d: Deployer, namespaces: list[str]) -> str:
    left = d.kc(
        "get",
        "all,pdb,networkpolicy,hpa,configmap,secret",
        "-A",
        "-l",
        "app.kubernetes.io/part-of=selfheal-lb",
        "-o",
        "name",
    ).stdout.split()
    require(not left, f"left behind: {' '.join(left[:5])}")
    for ns in namespaces:
        proc = d.kc("get", "namespace", ns, "-o", "name", check=False)
        require(proc.returncode != 0, f"namespace {ns} still exists")
    return "nothing labelled part-of=selfheal-lb, no stack namespace"
