"""A fake Kubernetes API server speaking the parts loadgen uses, over real HTTP.

list pods (label selectors), pod proxy (to a real app's /metrics or canned text), pod logs,
delete pod (the "ReplicaSet" recreates it after a delay, ready after another), read
Deployment and ReplicaSet, metrics.k8s.io pod metrics; nodes (list, get, cordon by PATCH), pods
on a node (fieldSelector) and evictions (a PodDisruptionBudget's 429 injectable), with a
"scheduler" that puts a replacement on a Ready, schedulable node. Bearer-token auth,
injectable faults (transient statuses, 403s, hangs) and a request log let tests check
retries, timeouts and error handling. TLS, client certificates, RBAC and exec credentials
are tested against the real cluster instead (test_loadgen_kube_real.py). State changes are
computed lazily from timestamps, so no background thread mutates anything.
"""

from __future__ import annotations

import contextlib
import http.server
import itertools
import json
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

_counter = itertools.count(1)


def _now_iso() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


@dataclass
class Pod:
    name: str
    labels: dict[str, str]
    # A real app for the pod proxy: container port -> base URL (one URL = every port).
    backend: str | dict[str, str] | None = None
    metrics_text: str | None = None  # canned /metrics when there is no backend
    log: str = ""
    owner_kind: str | None = None
    owner_name: str | None = None
    created: float = field(default_factory=time.monotonic)
    ready_after: float = 0.0  # seconds after creation until Running + Ready
    finish_after: float | None = None  # Job pods: Succeeded this long after creation
    deleted_at: float | None = None
    uid: str = field(default_factory=lambda: f"uid-{next(_counter)}")
    cpu: str = "25m"
    memory: str = "48Mi"
    metrics_stamp: str | None = None  # the metrics API's timestamp for this pod (default: now)
    metrics_after: float = 0.0  # metrics-server lists the pod only this long after creation
    slot: int = 0  # which backend of its Deployment this pod stands for
    node: str = ""  # spec.nodeName; "" = not scheduled (the API then has no nodeName)
    replaced: bool = False  # the fake ReplicaSet already made its successor

    def age(self) -> float:
        return time.monotonic() - self.created

    def phase(self) -> str:
        if self.finish_after is not None and self.age() >= self.finish_after:
            return "Succeeded"
        return "Running" if self.age() >= self.ready_after else "Pending"

    def ready_at(self) -> str:
        """Wall-clock time the pod became (or becomes) Ready, as the API shows it."""
        wall = time.time() - (time.monotonic() - self.created) + self.ready_after
        return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(wall))

    def ready(self) -> bool:
        return self.deleted_at is None and self.phase() == "Running" and self.finish_after is None

    def to_json(self, namespace: str) -> dict[str, Any]:
        meta: dict[str, Any] = {
            "name": self.name,
            "namespace": namespace,
            "uid": self.uid,
            "labels": self.labels,
        }
        if self.owner_kind:
            meta["ownerReferences"] = [
                {"kind": self.owner_kind, "name": self.owner_name, "controller": True}
            ]
        if self.deleted_at is not None:
            meta["deletionTimestamp"] = _now_iso()
        phase = self.phase()
        ready = "True" if self.ready() or (self.deleted_at and phase == "Running") else "False"
        spec: dict[str, Any] = {"containers": [{"name": "articles"}]}
        if self.node:
            spec["nodeName"] = self.node
        return {
            "metadata": meta,
            "spec": spec,
            "status": {
                "phase": phase,
                "conditions": [
                    {"type": "Ready", "status": ready, "lastTransitionTime": self.ready_at()}
                ],
            },
        }


@dataclass
class Deployment:
    name: str
    replicas: int
    labels: dict[str, str]
    backends: list[str | dict[str, str] | None]
    metrics_texts: list[str | None]
    rs: str = ""
    ready_after: float = 0.5  # replacement pods become ready this long after creation
    recreate_after: float = 0.3  # the ReplicaSet notices a deletion this late
    terminate_after: float = 0.5  # a deleted pod stays (terminating) this long
    nodes: list[str] = field(default_factory=list)  # each slot's node ("" or none: unscheduled)


class FakeKube:
    def __init__(self, namespace: str = "demo", token: str = "s3cret-token") -> None:
        self.namespace = namespace
        self.token = token
        self.pods: dict[str, Pod] = {}
        self.deployments: dict[str, Deployment] = {}
        self.metrics_enabled = True
        # name -> {"labels": {...}, "ready": "True"|"False"|"Unknown", "unschedulable": bool}
        self.nodes: dict[str, dict[str, Any]] = {}
        self.pdb_refusals = 0  # the next N evictions are refused (429), as a PDB would
        self.pdbs: list[dict[str, Any]] = []  # PodDisruptionBudgets listed (not enforced)
        self.faults: list[dict[str, Any]] = []
        self.requests: list[tuple[str, str, str]] = []  # (method, path+query, auth header)
        self.lock = threading.RLock()
        self._server: http.server.ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- scenario setup ------------------------------------------------------------------
    def add_deployment(
        self,
        name: str,
        labels: dict[str, str],
        *,
        backends: list[str] | list[dict[str, str]] | None = None,
        metrics_texts: list[str] | None = None,
        nodes: list[str] | None = None,
        **timing: float,
    ) -> list[str]:
        slots: list[Any] = list(backends or metrics_texts or [])
        dep = Deployment(
            name,
            len(slots),
            labels,
            list(backends) if backends else [None] * len(slots),
            list(metrics_texts) if metrics_texts else [None] * len(slots),
            rs=f"{name}-5d8f7c",
            nodes=list(nodes or []),
            **timing,
        )
        self.deployments[name] = dep
        names = []
        for i in range(dep.replicas):
            pod = self._new_pod(dep, i, ready_after=0.0)
            names.append(pod.name)
        return names

    def _new_pod(self, dep: Deployment, slot: int, ready_after: float) -> Pod:
        name = f"{dep.rs}-{next(_counter):05x}"
        pod = Pod(
            name,
            dict(dep.labels),
            backend=dep.backends[slot],
            metrics_text=dep.metrics_texts[slot],
            owner_kind="ReplicaSet",
            owner_name=dep.rs,
            ready_after=ready_after,
        )
        pod.slot = slot
        pod.node = dep.nodes[slot] if slot < len(dep.nodes) else ""
        usable = sorted(
            n for n, v in self.nodes.items() if v["ready"] == "True" and not v["unschedulable"]
        )
        if pod.node in self.nodes and pod.node not in usable and usable:
            # The scheduler: not onto a lost or cordoned node; the least busy usable one.
            busy = {n: sum(p.node == n for p in self.pods.values()) for n in usable}
            pod.node = dep.nodes[slot] = min(usable, key=lambda n: (busy[n], n))
        self.pods[name] = pod
        return pod

    def add_node(self, name: str, labels: dict[str, str] | None = None) -> None:
        self.nodes[name] = {"labels": dict(labels or {}), "ready": "True", "unschedulable": False}

    def lose_node(self, name: str, evict_after: float = 0.0) -> None:
        """The node stops reporting: NotReady now, its pods evicted `evict_after` seconds later
        (the taint manager's work), then replaced on the other nodes."""
        with self.lock:
            self.nodes[name]["ready"] = "Unknown"
            self.nodes[name]["evict_at"] = time.monotonic() + evict_after

    def node_json(self, name: str) -> dict[str, Any]:
        n = self.nodes[name]
        return {
            "metadata": {"name": name, "labels": n["labels"]},
            "spec": {"unschedulable": True} if n["unschedulable"] else {},
            "status": {"conditions": [{"type": "Ready", "status": n["ready"]}]},
        }

    def add_pod(self, pod: Pod) -> None:
        self.pods[pod.name] = pod

    def fail(self, method: str, path_part: str, status: int, times: int = 1) -> None:
        """The next `times` matching requests get `status` (then normal service)."""
        self.faults.append(
            {"method": method, "part": path_part, "status": status, "times": times, "delay": 0.0}
        )

    def hang(self, path_part: str, seconds: float) -> None:
        """Matching requests wait this long before answering (a stuck API server)."""
        self.faults.append(
            {"method": "*", "part": path_part, "status": 0, "times": 10**9, "delay": seconds}
        )

    def calls(self, method: str, part: str) -> int:
        return sum(1 for m, p, _ in self.requests if m == method and part in p)

    # -- the lazy "controllers" ----------------------------------------------------------
    def reconcile(self) -> None:
        now = time.monotonic()
        for name, node in self.nodes.items():
            if node.get("evict_at") is not None and now >= node["evict_at"]:
                for pod in self.pods.values():
                    if pod.node == name and pod.deleted_at is None:
                        pod.deleted_at = node["evict_at"]
        for dep in self.deployments.values():
            owned = [p for p in self.pods.values() if p.owner_name == dep.rs]
            for p in owned:
                if p.deleted_at is not None and now - p.deleted_at >= dep.terminate_after:
                    del self.pods[p.name]
            live = [p for p in owned if p.deleted_at is None]
            deleted = sorted(
                (p for p in owned if p.deleted_at is not None and not p.replaced),
                key=lambda p: p.deleted_at or 0,
            )
            for p in deleted:
                if len(live) >= dep.replicas:
                    break
                if now - (p.deleted_at or now) >= dep.recreate_after:
                    p.replaced = True
                    live.append(self._new_pod(dep, p.slot, dep.ready_after))

    def deployment_json(self, dep: Deployment) -> dict[str, Any]:
        owned = [p for p in self.pods.values() if p.owner_name == dep.rs and p.deleted_at is None]
        ready = sum(1 for p in owned if p.ready())
        return {
            "metadata": {"name": dep.name, "namespace": self.namespace},
            "spec": {"replicas": dep.replicas},
            "status": {"replicas": len(owned), "readyReplicas": ready, "availableReplicas": ready},
        }

    # -- serving -------------------------------------------------------------------------
    @property
    def url(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def start(self) -> FakeKube:
        fake = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # Headers and body go out as separate small writes: without TCP_NODELAY a client
            # that keeps the connection (the kubernetes client does) waits ~40 ms per request.
            disable_nagle_algorithm = True

            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                fake._handle(self, "GET")

            def do_DELETE(self) -> None:
                fake._handle(self, "DELETE")

            def do_PATCH(self) -> None:
                fake._handle(self, "PATCH")

            def do_POST(self) -> None:
                fake._handle(self, "POST")

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    def _send(
        self,
        h: http.server.BaseHTTPRequestHandler,
        status: int,
        body: Any,
        ctype: str = "application/json",
    ) -> None:
        data = (
            body
            if isinstance(body, bytes)
            else (body.encode() if isinstance(body, str) else json.dumps(body).encode())
        )
        h.send_response(status)
        h.send_header("Content-Type", ctype)
        h.send_header("Content-Length", str(len(data)))
        h.end_headers()
        h.wfile.write(data)

    def _status(self, h: http.server.BaseHTTPRequestHandler, code: int, message: str) -> None:
        self._send(
            h,
            code,
            {
                "kind": "Status",
                "apiVersion": "v1",
                "status": "Failure",
                "message": message,
                "code": code,
            },
        )

    def _handle(self, h: http.server.BaseHTTPRequestHandler, method: str) -> None:
        auth = h.headers.get("Authorization", "")
        if method in ("PATCH", "POST"):  # read before any answer: the connection is reused
            length = int(h.headers.get("Content-Length") or 0)
            h.json_body = json.loads(h.rfile.read(length) or b"{}")  # type: ignore[attr-defined]
        with self.lock:
            self.requests.append((method, unquote(h.path), auth))
            fault = next(
                (
                    f
                    for f in self.faults
                    # Matched on the decoded path: clients differ in what they percent-encode
                    # (the official client encodes the ':' of "pod:port").
                    if f["times"] > 0
                    and f["method"] in ("*", method)
                    and f["part"] in unquote(h.path)
                ),
                None,
            )
            if fault is not None:
                fault["times"] -= 1
        try:
            if fault is not None and fault["delay"]:
                time.sleep(fault["delay"])
            if auth != f"Bearer {self.token}":
                self._status(h, 401, "Unauthorized")
                return
            if fault is not None and fault["status"]:
                self._status(h, fault["status"], f"injected {fault['status']}")
                return
            self._route(h, method)
        except (BrokenPipeError, ConnectionResetError):
            pass

    def _route(self, h: http.server.BaseHTTPRequestHandler, method: str) -> None:
        parts = urlsplit(h.path)
        query = {k: v[0] for k, v in parse_qs(parts.query).items()}
        segs = [unquote(s) for s in parts.path.strip("/").split("/")]
        ns = self.namespace
        with self.lock:
            self.reconcile()
        body: dict[str, Any] = getattr(h, "json_body", {})
        if segs[:3] == ["api", "v1", "nodes"]:
            with self.lock:
                if len(segs) == 3 and method == "GET":
                    items = [self.node_json(n) for n in sorted(self.nodes)]
                    self._send(h, 200, {"kind": "NodeList", "items": items})
                    return
                if len(segs) == 4 and segs[3] in self.nodes:
                    if method == "PATCH":
                        spec = body.get("spec") or {}
                        self.nodes[segs[3]]["unschedulable"] = bool(spec.get("unschedulable"))
                    self._send(h, 200, self.node_json(segs[3]))
                    return
            self._status(h, 404, f'nodes "{segs[-1]}" not found')
            return
        if segs == ["apis", "policy", "v1", "namespaces", ns, "poddisruptionbudgets"]:
            self._send(h, 200, {"kind": "PodDisruptionBudgetList", "items": self.pdbs})
            return
        if segs == ["api", "v1", "pods"] and method == "GET":
            field_sel = query.get("fieldSelector", "")
            node = field_sel.split("=", 1)[1] if field_sel.startswith("spec.nodeName=") else None
            with self.lock:
                items = [p.to_json(ns) for p in self.pods.values() if node in (None, p.node)]
            self._send(h, 200, {"kind": "PodList", "apiVersion": "v1", "items": items})
            return
        if segs[:4] == ["api", "v1", "namespaces", ns] and len(segs) >= 5 and segs[4] == "pods":
            if len(segs) == 5 and method == "GET":
                with self.lock:
                    items = [
                        p.to_json(ns)
                        for p in self.pods.values()
                        if matches(p.labels, query.get("labelSelector", ""))
                    ]
                self._send(h, 200, {"kind": "PodList", "apiVersion": "v1", "items": items})
                return
            target = segs[5] if len(segs) > 5 else ""
            name, _, port = target.partition(":")
            with self.lock:
                pod = self.pods.get(name)
            if pod is None:
                self._status(h, 404, f'pods "{name}" not found')
                return
            if len(segs) == 7 and segs[6] == "eviction" and method == "POST":
                with self.lock:
                    if self.pdb_refusals > 0:
                        self.pdb_refusals -= 1
                        refusal = (
                            "Cannot evict pod as it would violate the pod's disruption budget."
                        )
                        self._status(h, 429, refusal)
                        return
                    if pod.deleted_at is None:
                        pod.deleted_at = time.monotonic()
                self._send(h, 201, {"kind": "Status", "status": "Success"})
                return
            if len(segs) == 6 and method == "DELETE":
                with self.lock:
                    if pod.deleted_at is None:
                        pod.deleted_at = time.monotonic()
                self._send(h, 200, pod.to_json(ns))
                return
            if len(segs) == 7 and segs[6] == "log" and method == "GET":
                self._send(h, 200, pod.log, "text/plain")
                return
            if len(segs) >= 7 and segs[6] == "proxy" and port and method == "GET":
                self._proxy(h, pod, port, "/" + "/".join(segs[7:]))
                return
        if (
            segs[:3] == ["apis", "apps", "v1"]
            and len(segs) == 7
            and segs[3:5] == ["namespaces", ns]
        ):
            kind, name = segs[5], segs[6]
            with self.lock:
                if kind == "deployments" and name in self.deployments:
                    self._send(h, 200, self.deployment_json(self.deployments[name]))
                    return
                for dep in self.deployments.values():
                    if kind == "replicasets" and dep.rs == name:
                        self._send(
                            h,
                            200,
                            {
                                "metadata": {
                                    "name": name,
                                    "ownerReferences": [
                                        {"kind": "Deployment", "name": dep.name, "controller": True}
                                    ],
                                }
                            },
                        )
                        return
            self._status(h, 404, f'{kind} "{name}" not found')
            return
        if segs[:3] == ["apis", "metrics.k8s.io", "v1beta1"] and segs[3:5] == ["namespaces", ns]:
            if not self.metrics_enabled:
                self._status(h, 404, "the server could not find the requested resource")
                return
            with self.lock:
                items = [
                    {
                        "metadata": {"name": p.name, "namespace": ns},
                        "timestamp": p.metrics_stamp or _now_iso(),
                        "window": "15s",
                        "containers": [
                            {"name": "app", "usage": {"cpu": p.cpu, "memory": p.memory}}
                        ],
                    }
                    for p in self.pods.values()
                    if p.phase() == "Running"
                    and p.age() >= p.metrics_after
                    and matches(p.labels, query.get("labelSelector", ""))
                ]
            self._send(h, 200, {"kind": "PodMetricsList", "items": items})
            return
        self._status(h, 404, "the server could not find the requested resource")

    def _proxy(self, h: http.server.BaseHTTPRequestHandler, pod: Pod, port: str, path: str) -> None:
        if pod.phase() != "Running":
            self._status(h, 503, f"error trying to reach service: pod {pod.name} not running")
            return
        if pod.backend is None:
            self._send(h, 200, pod.metrics_text or "", "text/plain; version=0.0.4")
            return
        base = pod.backend.get(port) if isinstance(pod.backend, dict) else pod.backend
        if base is None:  # what the API server says when nothing listens on the pod's port
            self._status(h, 503, f"error trying to reach service: dial tcp :{port}: refused")
            return
        try:
            with urllib.request.urlopen(base + path, timeout=5) as resp:
                self._send(h, resp.status, resp.read(), resp.headers.get("Content-Type", ""))
        except urllib.error.HTTPError as exc:
            self._send(h, exc.code, exc.read(), "text/plain")
        except OSError as exc:
            self._status(h, 503, f"error trying to reach service: {exc}")


def matches(labels: dict[str, str], selector: str) -> bool:
    """Equality-based label selectors: k=v, k==v, k!=v, k, !k (comma = and)."""
    for term in filter(None, (t.strip() for t in selector.split(","))):
        if "!=" in term:
            k, v = term.split("!=", 1)
            if labels.get(k.strip()) == v.strip():
                return False
        elif "=" in term:
            k, v = term.replace("==", "=").split("=", 1)
            if labels.get(k.strip()) != v.strip():
                return False
        elif term.startswith("!"):
            if term[1:] in labels:
                return False
        elif term not in labels:
            return False
    return True


def write_kubeconfig(
    path: str,
    server: str,
    token: str | None,
    *,
    context: str = "fake",
    extra_cluster: dict | None = None,
    user: dict | None = None,
) -> str:
    """A kubeconfig pointing at the fake API; returns its path."""
    import yaml

    cluster = {"server": server, **(extra_cluster or {})}
    usr = user if user is not None else ({"token": token} if token else {})
    doc = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "fake-cluster", "cluster": cluster}],
        "users": [{"name": "fake-user", "user": usr}],
        "contexts": [
            {"name": context, "context": {"cluster": "fake-cluster", "user": "fake-user"}}
        ],
        "current-context": context,
    }
    with open(path, "w") as f:
        yaml.safe_dump(doc, f)
    return path


@contextlib.contextmanager
def running(fake: FakeKube) -> Iterator[FakeKube]:
    fake.start()
    try:
        yield fake
    finally:
        fake.stop()
