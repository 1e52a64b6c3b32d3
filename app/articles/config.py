"""Settings read once from the environment (the Deployment's env and downward API)."""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path


def _int(env: Mapping[str, str], name: str, default: int, low: int, high: int) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ValueError(f"{name} must be an integer, got {raw!r}") from None
    if not low <= value <= high:
        raise ValueError(f"{name} must be between {low} and {high}, got {value}")
    return value


def _secret(env: Mapping[str, str], name: str) -> str:
    """NAME, or the contents of the file NAME_FILE (a mounted Secret key), stripped."""
    path = env.get(f"{name}_FILE", "").strip()
    if path:
        try:
            return Path(path).read_text().strip()
        except OSError as exc:
            raise ValueError(f"{name}_FILE {path!r} cannot be read: {exc.strerror}") from None
    return env.get(name, "").strip()


@dataclass(frozen=True)
class Settings:
    pod_name: str
    pod_ip: str
    node_name: str
    host: str
    port: int
    workers: int
    drain_seconds: int
    graceful_timeout: int
    # The shared state store (Redis): "" = none, counters per pod and no sessions.
    store_url: str = ""
    store_password: str = field(default="", repr=False)
    store_timeout_ms: int = 250  # bound on every store call (connect and each reply)
    # /metrics is served here only, never on the app port (metrics_port.py); 0 = not served.
    metrics_port: int = 9090

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        drain = _int(env, "DRAIN_SECONDS", 5, 0, 20)
        # Drain plus the in-flight grace must stay well inside Kubernetes' default 30 s.
        graceful = _int(env, "GRACEFUL_TIMEOUT", 10, 1, 25 - drain if drain < 24 else 1)
        store_url = _secret(env, "REDIS_URL")
        if store_url and not store_url.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("REDIS_URL must start with redis://, rediss:// or unix://")
        port = _int(env, "PORT", 8080, 1, 65535)
        metrics_port = _int(env, "METRICS_PORT", 9090, 0, 65535)
        if metrics_port == port:
            raise ValueError(f"METRICS_PORT must differ from PORT ({port})")
        return cls(
            pod_name=env.get("POD_NAME", "").strip() or socket.gethostname(),
            pod_ip=env.get("POD_IP", "").strip(),
            node_name=env.get("NODE_NAME", "").strip(),
            host=env.get("HOST", "").strip() or "0.0.0.0",
            port=port,
            workers=_int(env, "WEB_CONCURRENCY", 2, 1, 64),
            drain_seconds=drain,
            graceful_timeout=graceful,
            store_url=store_url,
            store_password=_secret(env, "REDIS_PASSWORD"),
            store_timeout_ms=_int(env, "REDIS_TIMEOUT_MS", 250, 10, 5000),
            metrics_port=metrics_port,
        )
