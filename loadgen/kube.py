"""A small Kubernetes API client on the standard library (+ PyYAML for kubeconfig).

The Pulumi program's virtualenv has no `kubernetes` package, and this CLI only needs a few
GETs and one DELETE. Supported kubeconfig features: KUBECONFIG (several files, first wins),
--context or current-context, server + CA (file or data), insecure-skip-tls-verify, client
cert/key (file or data), bearer token / tokenFile, basic auth, exec credential plugins.
Every failure becomes a KubeError with a one-line message; every request is bounded by the
client's deadline.
"""

from __future__ import annotations

import base64
import contextlib
import http.client
import json
import os
import socket
import ssl
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode, urlsplit

import yaml

RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
EXEC_TIMEOUT = 20.0


class KubeError(Exception):
    """Anything that stops us talking to the API. str() is one line for stderr."""


class KubeStatusError(KubeError):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class KubeNotFound(KubeStatusError):
    pass


@dataclass
class Credentials:
    token: str | None = None
    cert_file: str | None = None
    key_file: str | None = None
    basic: str | None = None  # "user:password"
    expires: float | None = None  # epoch seconds, exec credentials only
    temp_files: list[str] = field(default_factory=list)


@dataclass
class KubeConfig:
    context: str
    server: str
    namespace: str | None = None
    ca_file: str | None = None
    insecure: bool = False
    tls_server_name: str | None = None
    creds: Credentials = field(default_factory=Credentials)
    token_file: str | None = None
    exec_spec: dict | None = None
    temp_files: list[str] = field(default_factory=list)

    def cleanup(self) -> None:
        for path in self.temp_files:
            with contextlib.suppress(OSError):
                os.unlink(path)
        self.temp_files.clear()


def _private_file(data: bytes, temp_files: list[str], suffix: str) -> str:
    """Write secret material to a 0600 temp file (ssl wants paths); removed on cleanup."""
    fd, path = tempfile.mkstemp(prefix="loadgen-kube-", suffix=suffix)
    try:
        os.fchmod(fd, 0o600)
        os.write(fd, data)
    finally:
        os.close(fd)
    temp_files.append(path)
    return path


def _b64(value: str, what: str) -> bytes:
    try:
        return base64.b64decode(value, validate=False)
    except ValueError as exc:
        raise KubeError(f"kubeconfig: {what} is not valid base64") from exc


def kubeconfig_paths(explicit: str = "") -> list[Path]:
    if explicit:
        return [Path(explicit).expanduser()]
    env = os.environ.get("KUBECONFIG", "")
    if env:
        return [Path(p).expanduser() for p in env.split(os.pathsep) if p]
    return [Path.home() / ".kube" / "config"]


def _load_merged(paths: list[Path]) -> tuple[dict, dict[str, Path]]:
    """Merge kubeconfig files the way kubectl does for what we read: first name wins.
    Returns the merged document and, per cluster/user name, the file it came from (relative
    paths inside a kubeconfig are relative to that file)."""
    merged: dict[str, Any] = {"clusters": [], "users": [], "contexts": []}
    origin: dict[str, Path] = {}
    seen: dict[str, set[str]] = {"clusters": set(), "users": set(), "contexts": set()}
    found = False
    for path in paths:
        if not path.is_file():
            continue
        found = True
        try:
            doc = yaml.safe_load(path.read_text()) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise KubeError(f"cannot read kubeconfig {path}: {exc}".splitlines()[0]) from exc
        if not isinstance(doc, dict):
            raise KubeError(f"kubeconfig {path} is not a mapping")
        if doc.get("current-context") and not merged.get("current-context"):
            merged["current-context"] = doc["current-context"]
        for key in ("clusters", "users", "contexts"):
            for item in doc.get(key) or []:
                name = item.get("name") if isinstance(item, dict) else None
                if name and name not in seen[key]:
                    seen[key].add(name)
                    merged[key].append(item)
                    origin[f"{key}/{name}"] = path
    if not found:
        raise KubeError(f"no kubeconfig found (looked at {', '.join(map(str, paths))})")
    return merged, origin


def _named(doc: dict, key: str, name: str) -> dict | None:
    for item in doc.get(key) or []:
        if item.get("name") == name:
            return item.get(key[:-1]) or {}
    return None


def load_kubeconfig(path: str = "", context: str = "") -> KubeConfig:
    doc, origin = _load_merged(kubeconfig_paths(path))
    ctx_name = context or doc.get("current-context") or ""
    if not ctx_name:
        raise KubeError("kubeconfig has no current-context; pass --context")
    ctx = _named(doc, "contexts", ctx_name)
    if ctx is None:
        raise KubeError(f"context {ctx_name!r} not found in kubeconfig")
    cluster_name = ctx.get("cluster", "")
    cluster = _named(doc, "clusters", cluster_name)
    if cluster is None or not cluster.get("server"):
        raise KubeError(f"context {ctx_name!r}: cluster {cluster_name!r} missing or has no server")
    user_name = ctx.get("user", "")
    user = _named(doc, "users", user_name) or {}
    cbase = origin.get(f"clusters/{cluster_name}", Path.cwd()).parent
    ubase = origin.get(f"users/{user_name}", Path.cwd()).parent

    def rel(base: Path, value: str) -> str:
        p = Path(value).expanduser()
        return str(p if p.is_absolute() else base / p)

    cfg = KubeConfig(
        context=ctx_name, server=str(cluster["server"]).rstrip("/"), namespace=ctx.get("namespace")
    )
    try:
        _fill(cfg, cluster, user, user_name, lambda v: rel(cbase, v), lambda v: rel(ubase, v))
    except BaseException:
        cfg.cleanup()  # no key material left behind when the kubeconfig is unusable
        raise
    return cfg


def _fill(
    cfg: KubeConfig,
    cluster: dict,
    user: dict,
    user_name: str,
    crel: Callable[[str], str],
    urel: Callable[[str], str],
) -> None:
    """TLS and credential settings of one cluster/user pair into cfg."""
    cfg.insecure = bool(cluster.get("insecure-skip-tls-verify", False))
    cfg.tls_server_name = cluster.get("tls-server-name")
    if cluster.get("certificate-authority-data"):
        data = _b64(cluster["certificate-authority-data"], "certificate-authority-data")
        cfg.ca_file = _private_file(data, cfg.temp_files, ".crt")
    elif cluster.get("certificate-authority"):
        cfg.ca_file = crel(cluster["certificate-authority"])
    creds = cfg.creds
    if user.get("client-certificate-data"):
        creds.cert_file = _private_file(
            _b64(user["client-certificate-data"], "client-certificate-data"), cfg.temp_files, ".crt"
        )
    elif user.get("client-certificate"):
        creds.cert_file = urel(user["client-certificate"])
    if user.get("client-key-data"):
        creds.key_file = _private_file(
            _b64(user["client-key-data"], "client-key-data"), cfg.temp_files, ".key"
        )
    elif user.get("client-key"):
        creds.key_file = urel(user["client-key"])
    if user.get("token"):
        creds.token = str(user["token"])
    elif user.get("tokenFile"):
        cfg.token_file = urel(user["tokenFile"])
    if user.get("username") and user.get("password"):
        creds.basic = f"{user['username']}:{user['password']}"
    if user.get("exec"):
        cfg.exec_spec = dict(user["exec"])
    if user.get("auth-provider"):
        raise KubeError(
            f"user {user_name!r} uses an auth-provider plugin, which loadgen does not support "
            "(use an exec credential plugin or a token)"
        )


def run_exec_plugin(spec: dict, timeout: float) -> Credentials:
    """Run a client-go exec credential plugin and read its ExecCredential."""
    command = spec.get("command")
    if not command:
        raise KubeError("kubeconfig exec plugin has no command")
    env = dict(os.environ)
    for item in spec.get("env") or []:
        env[str(item.get("name"))] = str(item.get("value", ""))
    api_version = spec.get("apiVersion", "client.authentication.k8s.io/v1beta1")
    env["KUBERNETES_EXEC_INFO"] = json.dumps(
        {"apiVersion": api_version, "kind": "ExecCredential", "spec": {"interactive": False}}
    )
    argv = [str(command), *[str(a) for a in spec.get("args") or []]]
    try:
        proc = subprocess.run(
            argv, env=env, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL
        )
    except FileNotFoundError as exc:
        hint = spec.get("installHint", "")
        raise KubeError(
            f"exec plugin {command!r} not found{': ' + hint if hint else ''}".splitlines()[0]
        ) from exc
    except subprocess.TimeoutExpired as exc:
        raise KubeError(f"exec plugin {command!r} did not finish within {timeout:g}s") from exc
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or [""])[-1]
        raise KubeError(f"exec plugin {command!r} failed with exit {proc.returncode}: {last}")
    try:
        status = (json.loads(proc.stdout) or {}).get("status") or {}
    except ValueError as exc:
        raise KubeError(f"exec plugin {command!r} printed no ExecCredential JSON") from exc
    creds = Credentials(token=status.get("token"))
    temp = creds.temp_files
    if status.get("clientCertificateData") and status.get("clientKeyData"):
        creds.cert_file = _private_file(status["clientCertificateData"].encode(), temp, ".crt")
        creds.key_file = _private_file(status["clientKeyData"].encode(), temp, ".key")
    if not creds.token and not creds.cert_file:
        raise KubeError(f"exec plugin {command!r} returned neither a token nor a client cert")
    exp = status.get("expirationTimestamp")
    if exp:
        with contextlib.suppress(ValueError):
            from datetime import datetime

            creds.expires = datetime.fromisoformat(exp.replace("Z", "+00:00")).timestamp()
    return creds


class _HTTPSConnection(http.client.HTTPSConnection):
    """HTTPS with an explicit TLS server name (kubeconfig tls-server-name)."""

    def __init__(
        self, host: str, port: int, *, timeout: float, context: ssl.SSLContext, server_name: str
    ) -> None:
        super().__init__(host, port, timeout=timeout, context=context)
        self._tls_context = context
        self._server_name = server_name

    def connect(self) -> None:
        sock = socket.create_connection((self.host, self.port), self.timeout)
        try:
            self.sock = self._tls_context.wrap_socket(sock, server_hostname=self._server_name)
        except BaseException:
            sock.close()
            raise


def _status_message(body: bytes) -> str:
    try:
        doc = json.loads(body)
        if isinstance(doc, dict) and doc.get("message"):
            return str(doc["message"]).splitlines()[0]
    except ValueError:
        pass
    text = body.decode("utf-8", "replace").strip()
    return text.splitlines()[0][:200] if text else ""


class KubeClient:
    """GET/DELETE against the API server, bounded by an overall deadline."""

    def __init__(
        self,
        cfg: KubeConfig,
        *,
        timeout: float = 30.0,
        request_timeout: float = 10.0,
        retries: int = 3,
    ) -> None:
        self.cfg = cfg
        self.deadline = time.monotonic() + timeout
        self.total_timeout = timeout
        self.request_timeout = request_timeout
        self.retries = retries
        parts = urlsplit(cfg.server)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise KubeError(f"kubeconfig server {cfg.server!r} is not an http(s) URL")
        self.scheme = parts.scheme
        self.host = parts.hostname
        self.port = parts.port or (443 if parts.scheme == "https" else 80)
        self.base_path = parts.path.rstrip("/")
        self._exec_creds: Credentials | None = None
        self._ssl: ssl.SSLContext | None = None

    @classmethod
    def from_kubeconfig(cls, path: str = "", context: str = "", **kw: Any) -> KubeClient:
        return cls(load_kubeconfig(path, context), **kw)

    def close(self) -> None:
        self.cfg.cleanup()
        if self._exec_creds is not None:
            for p in self._exec_creds.temp_files:
                with contextlib.suppress(OSError):
                    os.unlink(p)

    def extend(self, seconds: float) -> None:
        """Give a long-running command (drill) a fresh budget."""
        self.deadline = time.monotonic() + seconds

    def remaining(self) -> float:
        return self.deadline - time.monotonic()

    # -- credentials and TLS -------------------------------------------------------------
    def _credentials(self, refresh: bool = False) -> Credentials:
        cfg = self.cfg
        if cfg.exec_spec:
            stale = (
                self._exec_creds is None
                or refresh
                or (
                    self._exec_creds.expires is not None
                    and self._exec_creds.expires - 10 < time.time()
                )
            )
            if stale:
                self._exec_creds = run_exec_plugin(
                    cfg.exec_spec, max(0.5, min(EXEC_TIMEOUT, self.remaining()))
                )
                self._ssl = None  # a new client cert needs a new context
            assert self._exec_creds is not None
            merged = Credentials(
                token=cfg.creds.token,
                cert_file=cfg.creds.cert_file,
                key_file=cfg.creds.key_file,
                basic=cfg.creds.basic,
            )
            if self._exec_creds.token:
                merged.token = self._exec_creds.token
            if self._exec_creds.cert_file:
                merged.cert_file = self._exec_creds.cert_file
                merged.key_file = self._exec_creds.key_file
            return merged
        if cfg.token_file:
            try:
                # Re-read every time: projected service-account tokens rotate.
                cfg.creds.token = Path(cfg.token_file).read_text().strip()
            except OSError as exc:
                raise KubeError(f"cannot read tokenFile {cfg.token_file}: {exc}") from exc
        return cfg.creds

    def _ssl_context(self, creds: Credentials) -> ssl.SSLContext:
        if self._ssl is not None:
            return self._ssl
        cfg = self.cfg
        try:
            if cfg.insecure:
                ctx = ssl.create_default_context()
                ctx.check_hostname = False
                ctx.verify_mode = ssl.CERT_NONE
            else:
                ctx = ssl.create_default_context(cafile=cfg.ca_file)
            if creds.cert_file:
                ctx.load_cert_chain(creds.cert_file, creds.key_file)
        except (OSError, ssl.SSLError) as exc:
            raise KubeError(f"TLS setup failed: {exc}".splitlines()[0]) from exc
        self._ssl = ctx
        return ctx

    # -- requests ------------------------------------------------------------------------
    def _once(
        self, method: str, path: str, creds: Credentials, accept: str, timeout: float
    ) -> tuple[int, bytes]:
        if self.scheme == "https":
            conn: http.client.HTTPConnection = _HTTPSConnection(
                self.host,
                self.port,
                timeout=timeout,
                context=self._ssl_context(creds),
                server_name=self.cfg.tls_server_name or self.host,
            )
        else:
            conn = http.client.HTTPConnection(self.host, self.port, timeout=timeout)
        headers = {"Accept": accept, "User-Agent": "selfheal-lb-loadgen"}
        if creds.token:
            headers["Authorization"] = f"Bearer {creds.token}"
        elif creds.basic:
            headers["Authorization"] = "Basic " + base64.b64encode(creds.basic.encode()).decode()
        try:
            conn.request(method, self.base_path + path, headers=headers)
            resp = conn.getresponse()
            body = resp.read()
            return resp.status, body
        finally:
            conn.close()

    def request(
        self, method: str, path: str, *, accept: str = "application/json", idempotent: bool = True
    ) -> tuple[int, bytes]:
        """One API call with retries on transient failures; raises KubeError otherwise."""
        attempt = 0
        refreshed = False
        last_error = ""
        while True:
            remaining = self.remaining()
            if remaining <= 0:
                raise KubeError(
                    f"Kubernetes API {self.cfg.server} did not answer within "
                    f"{self.total_timeout:g}s ({last_error or method + ' ' + path})"
                )
            creds = self._credentials()
            try:
                status, body = self._once(
                    method, path, creds, accept, min(self.request_timeout, remaining)
                )
            except ssl.SSLCertVerificationError as exc:
                raise KubeError(
                    f"TLS verification of {self.cfg.server} failed: {exc.verify_message or exc}"
                ) from exc
            except TimeoutError:
                last_error = f"{method} {path} timed out"
                status, body = -1, b""
            except (OSError, http.client.HTTPException) as exc:
                last_error = f"cannot reach {self.cfg.server}: {exc}".splitlines()[0]
                status, body = -1, b""
            if status == 401 and self.cfg.exec_spec and not refreshed:
                refreshed = True  # the exec credential may have expired: fetch a new one
                self._credentials(refresh=True)
                continue
            if status == 401:
                raise KubeStatusError(
                    401,
                    f"unauthorized (401) at {self.cfg.server}: "
                    "the kubeconfig credentials were rejected",
                )
            if status == 403:
                raise KubeStatusError(403, f"forbidden (403): {_status_message(body)}")
            if status == 404:
                raise KubeNotFound(404, f"not found (404): {_status_message(body) or path}")
            if 200 <= status < 300:
                return status, body
            if status != -1:
                last_error = f"HTTP {status} for {method} {path}: {_status_message(body)}"
            retryable = status == -1 or status in RETRY_STATUSES
            if not retryable or (not idempotent and status != -1) or attempt >= self.retries:
                if status == -1:
                    raise KubeError(last_error)
                raise KubeStatusError(status, last_error)
            attempt += 1
            time.sleep(min(0.2 * 2 ** (attempt - 1), max(0.0, self.remaining())))

    def get_json(self, path: str, query: dict[str, str] | None = None) -> dict:
        full = path + ("?" + urlencode(query) if query else "")
        _, body = self.request("GET", full)
        try:
            return json.loads(body)
        except ValueError as exc:
            raise KubeError(f"GET {path}: the API answered with something not JSON") from exc

    def get_text(self, path: str, query: dict[str, str] | None = None) -> str:
        full = path + ("?" + urlencode(query) if query else "")
        _, body = self.request("GET", full, accept="*/*")
        return body.decode("utf-8", "replace")

    # -- the resources we use ------------------------------------------------------------
    def list_pods(self, namespace: str, selector: str) -> list[dict]:
        doc = self.get_json(
            f"/api/v1/namespaces/{quote(namespace)}/pods",
            {"labelSelector": selector} if selector else None,
        )
        return list(doc.get("items") or [])

    def pod_proxy(self, namespace: str, pod: str, port: str | int, path: str) -> str:
        return self.get_text(
            f"/api/v1/namespaces/{quote(namespace)}/pods/{quote(pod)}:{port}/proxy/"
            + path.lstrip("/")
        )

    def pod_log(self, namespace: str, pod: str, container: str | None = None) -> str:
        query = {"container": container} if container else None
        return self.get_text(f"/api/v1/namespaces/{quote(namespace)}/pods/{quote(pod)}/log", query)

    def delete_pod(self, namespace: str, pod: str, grace_seconds: int | None = None) -> None:
        path = f"/api/v1/namespaces/{quote(namespace)}/pods/{quote(pod)}"
        if grace_seconds is not None:
            path += "?" + urlencode({"gracePeriodSeconds": str(grace_seconds)})
        # 404: already gone (e.g. our retried DELETE had landed): the goal is met.
        with contextlib.suppress(KubeNotFound):
            self.request("DELETE", path, idempotent=True)

    def get_replicaset(self, namespace: str, name: str) -> dict:
        return self.get_json(
            f"/apis/apps/v1/namespaces/{quote(namespace)}/replicasets/{quote(name)}"
        )

    def get_deployment(self, namespace: str, name: str) -> dict:
        return self.get_json(
            f"/apis/apps/v1/namespaces/{quote(namespace)}/deployments/{quote(name)}"
        )

    def pod_metrics(self, namespace: str, selector: str) -> list[dict]:
        doc = self.get_json(
            f"/apis/metrics.k8s.io/v1beta1/namespaces/{quote(namespace)}/pods",
            {"labelSelector": selector} if selector else None,
        )
        return list(doc.get("items") or [])


@contextlib.contextmanager
def client(kubeconfig: str, context: str, timeout: float) -> Iterator[KubeClient]:
    c = KubeClient.from_kubeconfig(
        kubeconfig, context, timeout=timeout, request_timeout=min(10.0, timeout)
    )
    try:
        yield c
    finally:
        c.close()


# -- pod helpers -------------------------------------------------------------------------
def pod_name(pod: dict) -> str:
    return str((pod.get("metadata") or {}).get("name", ""))


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
    q = str(quantity).strip()
    units = {"n": 1e-6, "u": 1e-3, "m": 1.0}
    if q and q[-1] in units:
        return float(q[:-1]) * units[q[-1]]
    return float(q) * 1000.0


_MEM_SUFFIX = {
    "Ki": 2**10,
    "Mi": 2**20,
    "Gi": 2**30,
    "Ti": 2**40,
    "k": 1e3,
    "K": 1e3,
    "M": 1e6,
    "G": 1e9,
    "T": 1e12,
}


def parse_memory(quantity: str) -> float:
    """Memory quantity -> MiB ("20Mi", "123456Ki", "1G", "1048576")."""
    q = str(quantity).strip()
    for suffix in ("Ki", "Mi", "Gi", "Ti", "k", "K", "M", "G", "T"):
        if q.endswith(suffix):
            return float(q[: -len(suffix)]) * _MEM_SUFFIX[suffix] / 2**20
    return float(q) / 2**20
