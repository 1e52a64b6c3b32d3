"""`rollout-check`: a steady load of fresh connections through the Service while a Deployment
rolls out, and every failed request with its time and reason beside what the cluster did at
that moment (pods created, Ready, terminating, gone; addresses entering and leaving the
Service's EndpointSlices).

Modes: --restart starts the rollout itself (the pod template's restartedAt annotation, what
`kubectl rollout restart` patches); without it the check waits (within --timeout) for a
rollout someone else starts (`pulumi up` in another terminal); without --namespace it only
sends the load for --duration seconds. A rollout is over when the Deployment's status says so
and no pod of the old template is left terminating: an old pod's exit is part of the rollout.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from loadgen import http_load, kube
from loadgen.kube import KubeClient, KubeError
from loadgen.steady import Recorder, SteadyLoad

POLL = 0.25  # the timeline's resolution, seconds
RESTARTED_AT = "kubectl.kubernetes.io/restartedAt"


def rollout_done(dep: dict) -> bool:
    """The Deployment controller's own notion of `kubectl rollout status` being done."""
    meta, spec, st = dep.get("metadata") or {}, dep.get("spec") or {}, dep.get("status") or {}
    want = int(spec.get("replicas", 1))
    return (
        int(st.get("observedGeneration") or 0) >= int(meta.get("generation") or 0)
        and int(st.get("updatedReplicas") or 0) == want
        and int(st.get("replicas") or 0) == want
        and int(st.get("availableReplicas") or 0) == want
    )


def selector_of(dep: dict) -> str:
    labels = ((dep.get("spec") or {}).get("selector") or {}).get("matchLabels") or {}
    return ",".join(f"{k}={v}" for k, v in sorted(labels.items()))


def pod_state(pod: dict) -> str:
    if kube.is_terminating(pod):
        return "terminating"
    return "ready" if kube.is_ready(pod) else kube.phase(pod).lower()


def endpoint_states(slices: list[dict]) -> dict[str, str]:
    """address -> ready / serving-terminating / not-ready, over every slice of the Service."""
    out: dict[str, str] = {}
    for sl in slices:
        for ep in sl.get("endpoints") or []:
            cond = ep.get("conditions") or {}
            if cond.get("ready"):
                state = "ready"
            elif cond.get("terminating"):
                state = "serving-terminating" if cond.get("serving") else "terminating"
            else:
                state = "not-ready"
            for address in ep.get("addresses") or []:
                out[address] = state
    return out


class Watcher:
    """Polls pods and EndpointSlices; records each change with its time offset."""

    def __init__(
        self, client: KubeClient, namespace: str, selector: str, service: str, t0: float
    ) -> None:
        self.client, self.namespace, self.selector, self.service = (
            client,
            namespace,
            selector,
            service,
        )
        self.t0 = t0
        self.events: list[dict[str, Any]] = []
        self.pod_ips: dict[str, str] = {}
        self.errors = 0
        self._pods: dict[str, str] = {}
        self._eps: dict[str, str] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rollout-watch", daemon=True)

    def note(self, text: str, **fields: Any) -> None:
        t = round(time.monotonic() - self.t0, 3)
        self.events.append({"t": t, "event": text, **fields})

    def poll(self) -> None:
        pods = {kube.pod_name(p): p for p in self.client.list_pods(self.namespace, self.selector)}
        for name, pod in pods.items():
            ip = str((pod.get("status") or {}).get("podIP") or "")
            if ip:
                self.pod_ips[name] = ip
            state = pod_state(pod)
            if self._pods.get(name) != state:
                self.note(f"pod {name} {state}", pod=name, ip=ip or None, state=state)
                self._pods[name] = state
        for name in [n for n in self._pods if n not in pods]:
            self.note(f"pod {name} gone", pod=name, ip=self.pod_ips.get(name), state="gone")
            del self._pods[name]
        eps = endpoint_states(self.client.list_endpointslices(self.namespace, self.service))
        owners = {ip: name for name, ip in self.pod_ips.items()}
        for ip, state in eps.items():
            if self._eps.get(ip) != state:
                self.note(f"endpoint {ip} {state}", ip=ip, pod=owners.get(ip), endpoint=state)
        for ip in [i for i in self._eps if i not in eps]:
            self.note(f"endpoint {ip} removed", ip=ip, pod=owners.get(ip), endpoint="removed")
        self._eps = eps

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.poll()
            except KubeError:
                self.errors += 1  # a missed poll only coarsens the timeline
            self._stop.wait(POLL)

    def start(self) -> Watcher:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5.0)


def restart(client: KubeClient, namespace: str, deployment: str) -> None:
    stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    patch = {"spec": {"template": {"metadata": {"annotations": {RESTARTED_AT: stamp}}}}}
    client.patch_deployment(namespace, deployment, patch)


class _Background:
    """The trigger (a patch, or a whole deploy that also awaits the rollout) in a thread, so
    the rollout is timed by its own status, not by when the trigger returns."""

    def __init__(self, fn: Callable[[], object]) -> None:
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, args=(fn,), name="rollout-trigger")
        self.thread.daemon = True
        self.thread.start()

    def _run(self, fn: Callable[[], object]) -> None:
        try:
            fn()
        except BaseException as exc:  # re-raised in the caller's thread by join()
            self.error = exc

    def failed(self) -> bool:
        return not self.thread.is_alive() and self.error is not None

    def join(self, deadline: float) -> None:
        self.thread.join(max(0.0, deadline - time.monotonic()))
        if self.thread.is_alive():
            raise KubeError("the rollout's trigger did not return within the timeout")
        if self.error is not None:
            raise self.error


def _wait_rollout(
    client: KubeClient,
    namespace: str,
    deployment: str,
    start_gen: int,
    deadline: float,
    watcher: Watcher,
    triggered: _Background | None = None,
) -> tuple[float | None, float | None]:
    """(seconds until the rollout began, seconds until it ended), from the watcher's t0; gives
    up at once when the trigger failed."""
    began: float | None = None
    while time.monotonic() < deadline and not (triggered is not None and triggered.failed()):
        dep = client.get_deployment(namespace, deployment)
        now = time.monotonic() - watcher.t0
        if began is None and (
            int((dep.get("metadata") or {}).get("generation") or 0) > start_gen
            or not rollout_done(dep)
        ):
            began = now
            watcher.note(f"rollout of {deployment} began")
        # Done: the status says so, and no old pod is still on its way out.
        if (
            began is not None
            and rollout_done(dep)
            and not any(
                kube.is_terminating(p) for p in client.list_pods(namespace, watcher.selector)
            )
        ):
            watcher.note(f"rollout of {deployment} complete")
            return began, now
        time.sleep(POLL)
    return began, None


def rollout_check(
    url: str,
    *,
    client: KubeClient | None,
    namespace: str | None,
    deployment: str,
    service: str,
    trigger: Callable[[], object] | None,
    clients: int,
    request_timeout: float,
    timeout: float,
    duration: float,
    settle: float,
    max_failures: int,
    interval: float = 0.0,
) -> dict[str, Any]:
    # Probe first: a wrong URL must fail before anything is patched.
    try:
        http_load.reachable(url, min(5.0, timeout))
    except OSError as exc:
        raise KubeError(f"{url} is unreachable, nothing started: {exc}") from exc
    t0 = time.monotonic()
    recorder = Recorder(t0=t0)
    bound = (timeout if namespace else duration) + 2 * settle + 10.0
    load = SteadyLoad(
        url,
        clients=clients,
        request_timeout=request_timeout,
        max_seconds=bound,
        interval=interval,
        recorder=recorder,
    )
    watcher: Watcher | None = None
    triggered: _Background | None = None
    deadline = time.monotonic() + timeout + settle
    began = ended = None
    notes: list[str] = []
    load.start()
    try:
        if client is not None and namespace:
            client.extend(timeout + 2 * settle + 30.0)  # the API budget covers the whole watch
            dep = client.get_deployment(namespace, deployment)
            start_gen = int((dep.get("metadata") or {}).get("generation") or 0)
            watcher = Watcher(client, namespace, selector_of(dep), service, t0).start()
            time.sleep(settle)  # traffic before the change: failures then are not the rollout's
            deadline = time.monotonic() + timeout
            if trigger is not None:
                watcher.note("rollout triggered")
                triggered = _Background(trigger)
            began, ended = _wait_rollout(
                client, namespace, deployment, start_gen, deadline, watcher, triggered
            )
            if began is None:
                notes.append(f"no rollout of {deployment} began within {timeout:g}s")
        else:
            time.sleep(duration)
        if ended is not None or not namespace:
            time.sleep(settle)  # traffic after: do the new pods serve?
    finally:
        load.stop()
        if watcher is not None:
            watcher.stop()
    if triggered is not None:
        # After the load: what the trigger does once the rollout is over (a deploy's later
        # steps) is not the rollout's. Re-raises the trigger's error.
        triggered.join(deadline)
    traffic = recorder.summary()
    if watcher is not None:
        # A failed request names no pod; the addresses around its time do.
        traffic["pod_ips"] = dict(sorted(watcher.pod_ips.items()))
        if watcher.errors:
            notes.append(f"{watcher.errors} polls of the API failed (timeline coarser)")
    failed = traffic["failed"]
    over = failed > max_failures
    finished = namespace is None or ended is not None
    if not finished:
        verdict, code = "not-finished", 2 if began is None else 1
        reason = notes[0] if began is None else f"rollout not complete within {timeout:g}s"
    else:
        verdict, code = ("failures" if over else "ok"), (1 if over else 0)
        what = f"rollout of {deployment} in {ended - began:.1f}s" if namespace else "steady load"
        reason = f"{what}: {failed} of {traffic['total']} requests failed"
        if failed:
            reason += " (" + ", ".join(f"{n} {r}" for r, n in traffic["by_reason"].items()) + ")"
    return {
        "verdict": verdict,
        "reason": reason,
        "exit_code": 1 if over else code,
        "url": url,
        "namespace": namespace,
        "deployment": deployment if namespace else None,
        "clients": clients,
        "max_failures": max_failures,
        "rollout_began_s": round(began, 2) if began is not None else None,
        "rollout_seconds": round(ended - began, 2) if began is not None and ended else None,
        "traffic": traffic,
        "timeline": watcher.events if watcher is not None else [],
        "notes": notes,
    }


def render(rep: dict[str, Any]) -> str:
    """The timeline with the failures of each second beside it, for a person."""
    tr = rep["traffic"]
    rows: list[tuple[float, str]] = [(e["t"], e["event"]) for e in rep["timeline"]]
    for s in tr["seconds_with_failures"]:
        bad = ", ".join(f"{n} {k}" for k, n in s.items() if k not in ("second", "requests", "slow"))
        rows.append((s["second"] + 0.999, f"  {bad} of {s['requests']} in second {s['second']}"))
    lines = [f"{t:>8.2f}s  {text}" for t, text in sorted(rows, key=lambda r: r[0])]
    pods = ", ".join(
        f"{p} {v['served']} ({v['first_s']:g}-{v['last_s']:g}s)" for p, v in tr["pods"].items()
    )
    lines.append(f"requests: {tr['total']}, failed {tr['failed']} {tr['by_reason'] or ''}")
    lines.append(
        f"slow (answered after >= 0.9 s, e.g. a lost SYN sent again): {tr['slow']}; "
        f"slowest {tr['max_latency_s']} s"
    )
    lines.append(f"served by: {pods}")
    for note in rep["notes"]:
        lines.append(f"note: {note}")
    return "\n".join(lines)
