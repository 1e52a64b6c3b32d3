"""The node drill's eyes (loadgen/nodedrill.py runs it): one look at a time at the node, the
app pods and the Service's EndpointSlices, each change noted on one timeline, and the moments
the drill measures (NotReady, endpoints removed, replicas Ready off the node)."""

from __future__ import annotations

import time
from typing import Any

from loadgen import kube, nodeapi, nodeloss
from loadgen.drill import _ready_replicas
from loadgen.kube import KubeClient, KubeError
from loadgen.rollout import endpoint_states


class Tracker:
    """Polls the node, the app pods and the Service's EndpointSlices; notes each change."""

    def __init__(
        self, client: KubeClient, namespace: str, selector: str, node: str, service: str, pods: list
    ):
        self.client, self.node, self.service = client, node, service
        self.namespace, self.selector = namespace, selector
        self.known = {kube.pod_name(p) for p in pods}
        lost = [p for p in pods if kube.is_ready(p) and kube.node_name(p) == node]
        self.lost_ips = {str((p.get("status") or {}).get("podIP") or "") for p in lost} - {""}
        self.t0 = time.monotonic()
        self.timeline: list[dict[str, Any]] = []
        self.not_ready_t: float | None = None
        self.removed_t: float | None = None
        self.recovered_t: float | None = None
        self.states: dict[str, str] = {}
        self.min_ready: int | None = None  # fewest Ready app pods at any look (the PDB's count)
        self.poll_errors: list[str] = []
        self.uses_slices = bool(
            client.list_endpointslices(namespace, service) if self.lost_ips else []
        )

    def now(self) -> float:
        return time.monotonic() - self.t0

    def note(self, text: str) -> None:
        self.timeline.append({"t": round(self.now(), 2), "event": text})

    def look(self) -> list[dict]:
        """The app pods: each change of state noted, the fewest Ready (not terminating) kept."""
        pods = self.client.list_pods(self.namespace, self.selector)
        for p in pods:
            name, state = kube.pod_name(p), nodeloss.pods_table([p])[0]["state"]
            if self.states.get(name) != state:
                if name not in self.known and name not in self.states:
                    self.note(f"replacement {name} on {kube.node_name(p) or '(unscheduled)'}")
                elif name in self.states:
                    self.note(f"pod {name} ({kube.node_name(p)}) {state}")
                self.states[name] = state
        ready = sum(kube.is_ready(p) for p in pods)
        self.min_ready = ready if self.min_ready is None else min(self.min_ready, ready)
        return pods

    def look_during_drain(self) -> None:
        try:
            self.look()
        except KubeError as exc:  # one missed look only coarsens the count
            self.poll_errors.append(kube.one_line(exc, 120))

    def poll(self, desired: int, deployment: str) -> bool:
        """One look; True once the Deployment is full and Ready with no pod on the node."""
        if self.not_ready_t is None:
            status = nodeloss.ready_status(nodeapi.get_node(self.client, self.node))
            if status != "True":
                self.not_ready_t = self.now()
                self.note(f"node {self.node} Ready={status or 'none'}")
        pods = self.look()
        if self.removed_t is None:
            if self.uses_slices:
                eps = endpoint_states(self.client.list_endpointslices(self.namespace, self.service))
                serving = [ip for ip in self.lost_ips if eps.get(ip) == "ready"]
            else:  # no EndpointSlices to read: the pods' Ready is what the controller follows
                serving = [
                    kube.pod_name(p)
                    for p in pods
                    if kube.node_name(p) == self.node and kube.is_ready(p)
                ]
            if not serving:
                self.removed_t = self.now()
                self.note(f"no endpoint on {self.node} left ready in the Service")
        healthy = [p for p in pods if kube.is_ready(p) and kube.node_name(p) != self.node]
        _, dep_ready = _ready_replicas(self.client.get_deployment(self.namespace, deployment))
        if len(healthy) >= desired and dep_ready >= desired:
            self.recovered_t = self.now()
            self.note(f"{deployment} {len(healthy)}/{desired} Ready, none on {self.node}")
            return True
        return False
