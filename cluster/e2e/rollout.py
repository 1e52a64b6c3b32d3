"""make e2e's rollout step: a new image and one more replica rolled out while a steady load of
fresh connections (8 clients, one request per connection) comes from outside the cluster
through the LoadBalancer, NetworkPolicies enforced. No request may fail.

"A new image" is the deployed build under a new tag (`docker tag` + cluster/images.sh load),
set as imageRef: what `pulumi config set imageRef <same image, new tag>; pulumi up` does, the
way issue 23 reproduced it. The deploy itself is the caller's (EndToEnd.deploy), run as the
rollout's trigger in loadgen's rollout-check (loadgen/rollout.py), which times the rollout by
the Deployment's status and old pods' exit, and lists every failure with its time and reason.
"""

from __future__ import annotations

import asyncio
import subprocess
from collections.abc import Callable
from typing import Any

from cluster.e2e import checks
from cluster.e2e.stack import PROJECT_DIR, Deployer, DeployError
from cluster.paths import CONTEXT, KUBECONFIG
from components import labels
from loadgen import kube, rollout

CLIENTS = 8
TIMEOUT_S = 420.0  # the deploy also re-runs the verification's fortio load after the rollout
SETTLE_S = 3.0
# A request fails when refused, reset, answered with an error, or not answered within this: long
# enough for a connection whose first SYN was lost (sent again after 1 s, then 3 s) on a node
# whose 2 cores the fortio Job saturates; rollout-check lists those as `slow` (evidence), not
# as downtime. The failures a rollout causes are refusals and resets (the old pod's listener
# closed while it still received connections), and timeouts on an address that is gone.
REQUEST_TIMEOUT_S = 5.0


def retagged(image: str, suffix: str = "rollout") -> str:
    """The same image under a new tag, in Docker and on the node; returns the new reference."""
    new = f"{image.rsplit(':', 1)[0]}:{image.rsplit(':', 1)[-1]}-{suffix}"
    for cmd in (
        ["docker", "tag", image, new],
        [str(PROJECT_DIR / "cluster" / "images.sh"), "load", new],
    ):
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
        if proc.returncode != 0:
            raise DeployError(f"{' '.join(cmd[:2])} failed: {proc.stderr.strip()[-200:]}")
    return new


def under_load(
    d: Deployer,
    namespace: str,
    image: str,
    replicas: int,
    deploy: Callable[..., Any],
) -> dict[str, Any]:
    """deploy(imageRef=<new tag>, appReplicas=replicas + 1) under the load; the report."""
    lb_ip = d.kc(
        "get", "service", labels.APP_NAME, "-n", namespace,
        "-o", "jsonpath={.status.loadBalancer.ingress[0].ip}",
    ).stdout  # fmt: skip
    checks.require(bool(lb_ip), f"service {labels.APP_NAME} has no load-balancer address")
    new_image = retagged(image)
    overrides = {
        "imageRef": new_image,
        "imageBase": "",  # a prebuilt imageRef: nothing is built or loaded by the program
        "imageLoadCommand": "",
        "appReplicas": replicas + 1,
    }
    try:
        with kube.client(str(KUBECONFIG), CONTEXT, 60.0) as client:
            rep = rollout.rollout_check(
                f"http://{lb_ip}:8080/article1",
                client=client,
                namespace=namespace,
                deployment=labels.APP_NAME,
                service=labels.APP_NAME,
                trigger=lambda: _in_own_loop(deploy, overrides),
                clients=CLIENTS,
                request_timeout=REQUEST_TIMEOUT_S,
                timeout=TIMEOUT_S,
                duration=0.0,
                settle=SETTLE_S,
                max_failures=0,
            )
    except kube.KubeError as exc:  # the API or the load balancer address: one line
        raise DeployError(f"rollout under load: {exc}") from exc
    rep["image"] = new_image
    return rep


def _in_own_loop(deploy: Callable[..., Any], overrides: dict[str, Any]) -> Any:
    """The program runs under the Pulumi SDK's mocks, which need an event loop in this thread."""
    asyncio.set_event_loop(asyncio.new_event_loop())
    return deploy(**overrides)


def judge(rep: dict[str, Any], replicas: int) -> str:
    """0 failed requests, the rollout complete, and new pods (at least the old count) serving.

    The extra replica may come after the rollout: with the HPA on, the Deployment's count is
    the HPA's, which reaches the new minimum only once the HPA itself is updated (after the
    Deployment, as the engine orders them)."""
    tr = rep["traffic"]
    first = tr["failures"][:3]
    checks.require(
        rep["exit_code"] == 0,
        f"{rep['reason']}; first failures: "
        + "; ".join(f"{f['t']}s {f['reason']} (after {f['previous_pod']})" for f in first),
    )
    new_pods = new_pods_of(rep["timeline"])
    serving = sorted(p for p in new_pods if tr["pods"].get(p, {}).get("served"))
    checks.require(
        len(serving) >= replicas,
        f"{len(serving)} new pods served the load ({', '.join(serving)}), {replicas} expected",
    )
    return (
        f"{rep['reason']}; {tr['total']} requests from {rep['clients']} clients, "
        f"{len(tr['pods'])} pods served"
    )


def new_pods_of(timeline: list[dict[str, Any]]) -> set[str]:
    """Pods first seen after the rollout was triggered."""
    triggered = next((e["t"] for e in timeline if e["event"] == "rollout triggered"), None)
    first_seen: dict[str, float] = {}
    for e in timeline:
        if e.get("state") and e.get("pod"):
            first_seen.setdefault(e["pod"], e["t"])
    if triggered is None:
        return set()
    return {pod for pod, t in first_seen.items() if t > triggered}
