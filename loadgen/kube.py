"""loadgen's access to the Kubernetes API: a thin layer over the official `kubernetes` client.

The client does the configuration (loadgen/kubeconfig.py), authentication, TLS and the
transport. This module adds what the CLI promises on top of it: one time budget for the whole
run that bounds every call (an exec plugin and name resolution included), bounded retries of
transient failures, and one-line `KubeError`s.

The Kubernetes client is imported only when a client is made: `python -m loadgen --help` and
`verify --url` do not pay for it.
"""

from __future__ import annotations

import contextlib
import functools
import json
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from typing import Any

RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
USER_AGENT = "selfheal-lb-loadgen"


class KubeError(Exception):
    """Anything that stops us talking to the API. str() is one line for stderr."""


class KubeStatusError(KubeError):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class KubeNotFound(KubeStatusError):
    pass


class _Timeout(Exception):
    pass


def one_line(text: object, limit: int = 300) -> str:
    return " ".join(str(text).split())[:limit]


def _bounded(fn: Callable[[], Any], seconds: float, what: str) -> Any:
    """fn() in a daemon thread, waited for at most `seconds`. The client has no deadline for
    an exec plugin or for name resolution; a daemon thread left behind dies with the CLI."""
    box: dict[str, Any] = {}

    def run() -> None:
        try:
            box["value"] = fn()
        except BaseException as exc:  # re-raised in the caller's thread
            box["error"] = exc

    worker = threading.Thread(target=run, name="kube-call", daemon=True)
    worker.start()
    worker.join(max(0.0, seconds))
    if worker.is_alive():
        raise _Timeout(f"{what} timed out")
    if "error" in box:
        raise box["error"]
    return box.get("value")


def _status_message(body: str | None) -> str:
    if not body:
        return ""
    try:
        doc = json.loads(body)
        if isinstance(doc, dict) and doc.get("message"):
            return one_line(doc["message"])
    except ValueError:
        pass
    return one_line(body, 200)


def _connection_problem(exc: BaseException) -> str:
    """urllib3's messages carry the pool object's repr; keep the reason."""
    text = str(exc)
    for marker in ("Failed to establish a new connection: ", "): "):
        if marker in text:
            text = text.split(marker, 1)[1]
            break
    return one_line(text, 200)


class KubeClient:
    """The few API calls loadgen makes, each bounded by the run's deadline and retried on
    transient failures (connection errors, timeouts, 429, 5xx) up to `retries` times.
    Objects come back as plain API JSON (dicts, as `kubectl get -o json` shows them).

    Requests go through the client's ApiClient (its auth, TLS, proxy and URL encoding) but not
    through the generated CoreV1Api/AppsV1Api: importing those builds hundreds of pydantic
    models (0.9 s on the test machine) for the seven endpoints below."""

    def __init__(
        self,
        kubeconfig: str = "",
        context: str = "",
        *,
        timeout: float = 30.0,
        request_timeout: float = 10.0,
        retries: int = 3,
    ) -> None:
        self.deadline = time.monotonic() + timeout
        self.total_timeout = timeout
        self.request_timeout = request_timeout
        self.retries = retries
        self._kubeconfig = kubeconfig
        self._context = context
        self.server = ""
        self.source = ""
        self._api: Any = None
        self._refreshable = False
        self._connect()

    @classmethod
    def from_kubeconfig(cls, path: str = "", context: str = "", **kw: Any) -> KubeClient:
        return cls(path, context, **kw)

    def _connect(self) -> None:
        from kubernetes.client.api_client import ApiClient

        from loadgen.kubeconfig import Loaded, load_configuration

        try:
            loaded: Loaded = _bounded(
                lambda: load_configuration(self._kubeconfig, self._context),
                self.remaining(),
                "loading the kubeconfig",
            )
        except _Timeout as exc:
            raise KubeError(
                f"loading the kubeconfig credentials (exec plugin?) did not finish within "
                f"{self.total_timeout:g}s"
            ) from exc
        cfg = loaded.configuration
        cfg.retries = False  # our own retries below, bounded by the deadline
        if not cfg.verify_ssl:
            # insecure-skip-tls-verify is the kubeconfig's choice; kubectl does not warn on
            # every request, urllib3 would (several stderr lines per call).
            from urllib3.exceptions import InsecureRequestWarning

            warnings.simplefilter("ignore", InsecureRequestWarning)
        if self._api is not None:
            self._api.close()
        self._api = ApiClient(cfg)
        self._api.user_agent = USER_AGENT
        self.server = cfg.host
        self.source = loaded.source
        self._refreshable = loaded.refreshable

    def close(self) -> None:
        if self._api is not None:
            self._api.close()

    def extend(self, seconds: float) -> None:
        """Give a long-running command (drill) a fresh budget."""
        self.deadline = time.monotonic() + seconds

    def remaining(self) -> float:
        return self.deadline - time.monotonic()

    # -- one call, bounded and retried -----------------------------------------------------
    def _once(
        self,
        method: str,
        path: str,
        params: dict[str, str],
        query: dict,
        seconds: float,
        patch: dict | None = None,
    ) -> tuple[int, bytes]:
        headers = {"Accept": "application/json, */*"}
        if patch is not None:
            # A PATCH is a strategic merge patch (kubectl's default); a POST body is plain JSON.
            patch_type = "application/strategic-merge-patch+json"
            headers["Content-Type"] = patch_type if method == "PATCH" else "application/json"
        request = self._api.param_serialize(
            method=method,
            resource_path=path,
            path_params=params,
            query_params=[(k, v) for k, v in query.items() if v is not None],
            header_params=headers,
            body=patch,
            auth_settings=["BearerToken"],
        )
        resp = self._api.call_api(*request, _request_timeout=(seconds, seconds))
        try:
            return resp.status, resp.read()
        finally:
            resp.response.release_conn()

    def request(
        self,
        method: str,
        path: str,
        params: dict[str, str],
        query: dict | None = None,
        patch: dict | None = None,
        retry_statuses: frozenset[int] = RETRY_STATUSES,
    ) -> bytes:
        """One API call (path with {placeholders} filled from params, URL-encoded by the
        client); retries transient failures within the deadline; raises KubeError otherwise."""
        from kubernetes.client.exceptions import ApiException
        from urllib3.exceptions import HTTPError, NewConnectionError, TimeoutError

        what = f"{method} {path.format(**params)}"
        tries = 0
        refreshed = False
        last = ""
        while True:
            remaining = self.remaining()
            if remaining <= 0:
                raise KubeError(
                    f"Kubernetes API {self.server} did not answer within "
                    f"{self.total_timeout:g}s ({last or what})"
                )
            per_try = min(self.request_timeout, remaining)
            try:
                once = functools.partial(
                    self._once, method, path, params, query or {}, per_try, patch
                )
                status, body = _bounded(once, per_try + 0.5, what)
            except ApiException as exc:  # the client's wrapping of a TLS failure (status 0)
                reason = one_line(str(exc.reason).replace("\n", ": "))
                if "CERTIFICATE_VERIFY_FAILED" in reason or "verify failed" in reason:
                    raise KubeError(f"TLS verification of {self.server} failed: {reason}") from exc
                raise KubeError(f"TLS with {self.server} failed: {reason}") from exc
            except (_Timeout, TimeoutError) as exc:
                if isinstance(exc, NewConnectionError):
                    last = f"cannot reach {self.server}: {_connection_problem(exc)}"
                else:
                    last = f"{what} timed out"
                status, body = -1, b""
            except (HTTPError, OSError) as exc:
                last = f"cannot reach {self.server}: {_connection_problem(exc)}"
                status, body = -1, b""
            if 200 <= status < 300:
                return body
            message = _status_message(body.decode("utf-8", "replace"))
            if status == 401 and self._refreshable and not refreshed:
                refreshed = True  # an exec/tokenFile credential may have expired: load anew
                self._connect()
                continue
            if status == 401:
                raise KubeStatusError(
                    401,
                    f"unauthorized (401) at {self.server}: the credentials of "
                    f"{self.source} were rejected",
                )
            if status == 403:
                raise KubeStatusError(403, f"forbidden (403): {message}")
            if status == 404:
                raise KubeNotFound(404, f"not found (404): {message or what}")
            if status != -1:
                last = f"HTTP {status} for {what}: {message}"
            if (status != -1 and status not in retry_statuses) or tries >= self.retries:
                if status == -1:
                    raise KubeError(last)
                raise KubeStatusError(status, last)
            tries += 1
            time.sleep(min(0.2 * 2 ** (tries - 1), max(0.0, self.remaining())))

    def _json(self, path: str, params: dict[str, str], query: dict | None = None) -> dict:
        body = self.request("GET", path, params, query)
        try:
            doc = json.loads(body)
        except ValueError as exc:
            raise KubeError(
                f"GET {path.format(**params)}: the API answered with something not JSON"
            ) from exc
        return doc if isinstance(doc, dict) else {}

    # -- the resources we use --------------------------------------------------------------
    def list_pods(self, namespace: str, selector: str) -> list[dict]:
        doc = self._json(
            "/api/v1/namespaces/{namespace}/pods",
            {"namespace": namespace},
            {"labelSelector": selector or None},
        )
        return list(doc.get("items") or [])

    def pod_proxy(self, namespace: str, pod: str, port: str | int, path: str) -> str:
        body = self.request(
            "GET",
            "/api/v1/namespaces/{namespace}/pods/{name}/proxy/{path}",
            {"namespace": namespace, "name": f"{pod}:{port}", "path": path.lstrip("/")},
        )
        return body.decode("utf-8", "replace")

    def pod_log(self, namespace: str, pod: str, container: str | None = None) -> str:
        body = self.request(
            "GET",
            "/api/v1/namespaces/{namespace}/pods/{name}/log",
            {"namespace": namespace, "name": pod},
            {"container": container},
        )
        return body.decode("utf-8", "replace")

    def delete_pod(self, namespace: str, pod: str, grace_seconds: int | None = None) -> None:
        # 404: already gone (e.g. our retried DELETE had landed): the goal is met.
        with contextlib.suppress(KubeNotFound):
            self.request(
                "DELETE",
                "/api/v1/namespaces/{namespace}/pods/{name}",
                {"namespace": namespace, "name": pod},
                {"gracePeriodSeconds": grace_seconds},
            )

    def get_replicaset(self, namespace: str, name: str) -> dict:
        return self._json(
            "/apis/apps/v1/namespaces/{namespace}/replicasets/{name}",
            {"namespace": namespace, "name": name},
        )

    def get_deployment(self, namespace: str, name: str) -> dict:
        return self._json(
            "/apis/apps/v1/namespaces/{namespace}/deployments/{name}",
            {"namespace": namespace, "name": name},
        )

    def patch_deployment(self, namespace: str, name: str, patch: dict) -> dict:
        """A strategic merge patch (what `kubectl patch` sends by default)."""
        body = self.request(
            "PATCH",
            "/apis/apps/v1/namespaces/{namespace}/deployments/{name}",
            {"namespace": namespace, "name": name},
            patch=patch,
        )
        doc = json.loads(body)
        return doc if isinstance(doc, dict) else {}

    def list_endpointslices(self, namespace: str, service: str) -> list[dict]:
        doc = self._json(
            "/apis/discovery.k8s.io/v1/namespaces/{namespace}/endpointslices",
            {"namespace": namespace},
            {"labelSelector": f"kubernetes.io/service-name={service}"},
        )
        return list(doc.get("items") or [])

    def pod_metrics(self, namespace: str, selector: str) -> list[dict]:
        doc = self._json(
            "/apis/metrics.k8s.io/v1beta1/namespaces/{namespace}/pods",
            {"namespace": namespace},
            {"labelSelector": selector or None},
        )
        return list(doc.get("items") or [])


@contextlib.contextmanager
def client(kubeconfig: str, context: str, timeout: float) -> Iterator[KubeClient]:
    c = KubeClient(kubeconfig, context, timeout=timeout, request_timeout=min(10.0, timeout))
    try:
        yield c
    finally:
        c.close()


# -- pod helpers (on the API's JSON) -------------------------------------------------------
def pod_name(pod: dict) -> str:
    return str((pod.get("metadata") or {}).get("name", ""))


def node_name(pod: dict) -> str:
    """The node the scheduler bound the pod to (spec.nodeName); "" while it is unscheduled."""
    return str((pod.get("spec") or {}).get("nodeName") or "")


def is_terminating(pod: dict) -> bool:
    return bool((pod.get("metadata") or {}).get("deletionTimestamp"))


def is_ready(pod: dict) -> bool:
    if is_terminating(pod):
        return False
    status = pod.get("status") or {}
    if status.get("phase") != "Running":
        return False
    return any(
        c.get("type") == "Ready" and c.get("status") == "True"
        for c in status.get("conditions") or []
    )


def phase(pod: dict) -> str:
    return str((pod.get("status") or {}).get("phase", "Unknown"))


def owner(obj: dict, kind: str) -> str | None:
    for ref in (obj.get("metadata") or {}).get("ownerReferences") or []:
        if ref.get("kind") == kind:
            return ref.get("name")
    return None


def parse_cpu(quantity: str) -> float:
    """CPU quantity -> millicores ("250m", "1", "12345678n", "5u")."""
    from kubernetes.utils.quantity import parse_quantity

    return float(parse_quantity(quantity) * 1000)


def parse_memory(quantity: str) -> float:
    """Memory quantity -> MiB ("20Mi", "123456Ki", "1G", "1048576")."""
    from kubernetes.utils.quantity import parse_quantity

    return float(parse_quantity(quantity)) / 2**20
