"""`drill --node`: lose a node (or drain it) under a steady load through the LoadBalancer and
time the self-healing: node NotReady, the lost pods' endpoints removed, the Deployment full
and Ready again off that node, the failed requests against what bounds them, and whether the
split over the surviving pods is balanced again. The fault is ALWAYS undone (restore command,
or uncordon) in a finally, and the node awaited Ready, bounded.

The load is rollout-check's (steady.py): closed-loop clients, one fresh connection per
request, so each request is a new pick among the Service's endpoints. The judgement is in
nodeloss.py (pure); the looks in nodetrack.py; the commands in nodecmd.py; the drain in
drain.py.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from loadgen import drain as draining
from loadgen import http_load, kube, nodeapi, nodecmd, nodeloss, nodereport
from loadgen.drill import _ready_replicas, owning_deployment
from loadgen.kube import KubeClient, KubeError
from loadgen.nodetrack import Tracker
from loadgen.steady import Recorder, SteadyLoad

POLL = 0.25  # the timeline's resolution, seconds


@dataclass
class PhasedRecorder(Recorder):
    """steady.Recorder that also keeps when every request started (seconds from t0), so the
    requests and failures of the detection window can be counted afterwards."""

    starts: list[float] = field(default_factory=list)
    failure_starts: list[float] = field(default_factory=list)

    def __call__(self, o: http_load.Outcome) -> None:
        started = self.offset(o.ended - o.latency)
        self.starts.append(started)
        failed_before = self.failed
        super().__call__(o)
        if self.failed > failed_before:
            self.failure_starts.append(started)


@dataclass
class Settings:
    namespace: str
    selector: str
    node: str  # a name or "auto"
    url: str
    drain: bool = False
    fault_cmd: str = nodecmd.DEFAULT_FAULT
    restore_cmd: str = nodecmd.DEFAULT_RESTORE
    service: str = ""  # default: the Deployment's name
    clients: int = 4
    interval: float = 0.02  # pacing per client: keeps a 2-core cluster machine responsive
    request_timeout: float = 2.0
    timeout: float = 180.0  # for the Deployment to be full and Ready again
    command_timeout: float = 180.0
    restore_timeout: float = 180.0
    settle: float = 3.0
    proxy_lag: float = 2.0
    verify_requests: int = 600


def _wait_node_ready(client: KubeClient, node: str, seconds: float) -> float | None:
    t0 = time.monotonic()
    while time.monotonic() - t0 <= seconds:
        try:
            if nodeloss.ready_status(nodeapi.get_node(client, node)) == "True":
                return time.monotonic() - t0
        except KubeError:
            pass  # the API may hiccup while the node rejoins; keep trying within the bound
        time.sleep(1.0)
    return None


def _restore(
    client: KubeClient, s: Settings, node: str, restore: list[str] | None, run_cmd: Callable
) -> dict:
    """Undo the fault, whatever happened before; never raises."""
    client.extend(s.restore_timeout + s.command_timeout + 30.0)
    try:
        if restore is None:
            nodeapi.set_unschedulable(client, node, False)
            result: dict[str, Any] = {"command": f"uncordon {node}", "ok": True}
        else:
            result = run_cmd(restore, s.command_timeout)
    except KubeError as exc:
        result = {"command": f"uncordon {node}", "ok": False, "output": str(exc)}
    ready = _wait_node_ready(client, node, s.restore_timeout)
    result["node_ready_after_s"] = round(ready, 1) if ready is not None else None
    return result


def _budget(
    client: KubeClient, s: Settings, pod: dict, desired: int
) -> tuple[tuple[str, int] | None, str | None]:
    """The PodDisruptionBudget the drain must respect, or a note saying why there is none."""
    labels = (pod.get("metadata") or {}).get("labels") or {}
    try:
        found = nodeloss.pdb_floor(nodeapi.list_pdbs(client, s.namespace), labels, desired)
    except KubeError as exc:
        return None, f"PodDisruptionBudgets not read ({kube.one_line(exc, 120)})"
    if found is None:
        return None, "no PodDisruptionBudget selects the app pods: a drain may take them all"
    return found, None


def node_drill(client: KubeClient, s: Settings, run_cmd: Callable = nodecmd.run) -> dict:
    nodes = nodeapi.list_nodes(client)
    pods = client.list_pods(s.namespace, s.selector)
    if not pods:
        raise KubeError(f"no pods match {s.selector!r} in namespace {s.namespace!r}")
    node = nodeloss.pick_node(s.node, nodes, pods)
    ready = [p for p in pods if kube.is_ready(p)]
    if not ready:
        raise KubeError(f"no app pod is Ready in {s.namespace}: nothing to drill")
    deployment = owning_deployment(client, s.namespace, ready[0])
    desired, _ = _ready_replicas(client.get_deployment(s.namespace, deployment))
    budget, budget_note = _budget(client, s, ready[0], desired) if s.drain else (None, None)
    fault = restore = None
    if not s.drain:  # both commands checked before anything happens
        fault, restore = nodecmd.argv(s.fault_cmd, node), nodecmd.argv(s.restore_cmd, node)
    try:
        http_load.reachable(s.url, min(5.0, s.request_timeout * 2))
    except OSError as exc:
        raise KubeError(f"{s.url} is unreachable, node {node} left alone: {exc}") from exc
    lost_share = sum(kube.node_name(p) == node for p in ready) / len(ready)
    service = s.service or deployment
    pods_before = nodeloss.pods_table(pods)
    client.extend(s.timeout + s.command_timeout + 60.0)
    tracker = Tracker(client, s.namespace, s.selector, node, service, pods)
    recorder = PhasedRecorder(t0=tracker.t0)
    load = SteadyLoad(
        s.url,
        clients=s.clients,
        request_timeout=s.request_timeout,
        interval=s.interval,
        max_seconds=s.timeout + s.command_timeout + 2 * s.settle + 60.0,
        recorder=recorder,
    )
    rep: dict[str, Any] = {"drain": None, "fault": None}
    error: BaseException | None = None
    load.start()
    try:
        time.sleep(s.settle)  # traffic before the fault: failures then are not the node's
        fault_t = tracker.now()
        tracker.note(f"{'drain' if s.drain else 'fault'} of {node} begins")
        if s.drain:
            rep["drain"] = draining.drain(
                client,
                node,
                timeout=s.command_timeout,
                note=tracker.note,
                tick=tracker.look_during_drain,
            )
        else:
            assert fault is not None
            rep["fault"] = run_cmd(fault, s.command_timeout)
            if not rep["fault"]["ok"]:
                raise KubeError(f"the fault command failed: {rep['fault']['output']}")
            tracker.note(f"fault command done: {rep['fault']['output']}")
        client.extend(s.timeout + 60.0)
        while True:  # at least one look, even when a slow drain used up the time
            try:
                if tracker.poll(desired, deployment):
                    break
            except KubeError as exc:  # one missed look only coarsens the timeline
                tracker.poll_errors.append(kube.one_line(exc, 120))
            if tracker.now() - fault_t > s.timeout:
                break
            time.sleep(POLL)
        if tracker.recovered_t is not None:
            time.sleep(s.settle)  # traffic after recovery: do the replacements serve?
        load.stop()
        pods_after = nodeloss.pods_table(client.list_pods(s.namespace, s.selector))
        balance = None
        if tracker.recovered_t is not None:
            from loadgen.verdict import DEFAULT_ALPHA
            from loadgen.verify import verify_url

            checked = verify_url(
                s.url,
                requests=s.verify_requests,
                concurrency=s.clients,
                keepalive=False,
                expected_pods=desired,
                alpha=DEFAULT_ALPHA,
                timeout=60.0,
                request_timeout=s.request_timeout,
                max_error_rate=0.05,
            )
            balance = nodeloss.survivor_balance(checked, pods_after, node, desired)
    except BaseException as exc:
        error = exc
        raise
    finally:
        load.stop()
        restored = _restore(client, s, node, restore, run_cmd)
        tracker.note(f"restore: {restored.get('output') or restored['command']}")
        if error is not None:  # the drill stopped early: the one line says the node's fate too
            state = "Ready" if restored["node_ready_after_s"] is not None else "NOT Ready"
            put_back = f"restored ({restored['command']}): {node} {state}"
            if not isinstance(error, Exception):  # Ctrl-C: the CLI says "interrupted"
                print(f"loadgen drill: {put_back}", file=sys.stderr)
            else:
                raise KubeError(f"{kube.one_line(error)}; {put_back}") from error
    return nodereport.build(
        nodereport.Figures(
            mode="drain" if s.drain else "loss",
            namespace=s.namespace,
            deployment=deployment,
            desired=desired,
            node=node,
            lost_share=lost_share,
            fault_t=fault_t,
            not_ready_t=tracker.not_ready_t,
            removed_t=tracker.removed_t,
            recovered_t=tracker.recovered_t,
            timeline=tracker.timeline,
            traffic=recorder.summary(),
            starts=recorder.starts,
            failure_starts=recorder.failure_starts,
            pods_before=pods_before,
            pods_after=pods_after,
            balance=balance,
            restored=restored,
            fault=rep["fault"],
            drain=rep["drain"],
            notes=_notes(tracker, s) + ([budget_note] if budget_note else []),
            min_ready=tracker.min_ready,
            pdb=budget,
        ),
        s,
    )


def _notes(tracker: Tracker, s: Settings) -> list[str]:
    notes = []
    if tracker.poll_errors:
        notes.append(
            f"{len(tracker.poll_errors)} looks at the API failed (timeline coarser); first: "
            f"{tracker.poll_errors[0]}"
        )
    if tracker.lost_ips and not tracker.uses_slices:
        notes.append(
            f"no EndpointSlices of Service {s.service or '(the Deployment name)'}: the lost "
            "endpoints' removal is read from the pods' Ready condition (pass --service)"
        )
    return notes
