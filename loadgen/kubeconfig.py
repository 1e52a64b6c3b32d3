"""Which cluster and credentials loadgen uses: the official client's kubeconfig loading.

`kubernetes.config` reads the kubeconfig as kubectl does (KUBECONFIG lists, contexts, CA and
client certificates as file or data, tokens, tokenFile, basic auth, exec plugins, auth
providers) or the pod's service account. Around it: kubectl's choice of current-context, one
line for every problem, and a failing exec plugin as an error rather than a log line.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from loadgen.kube import KubeError, one_line


def kubeconfig_paths(explicit: str = "") -> list[Path]:
    if explicit:
        return [Path(explicit).expanduser()]
    env = os.environ.get("KUBECONFIG", "")
    if env:
        return [Path(p).expanduser() for p in env.split(os.pathsep) if p]
    return [Path.home() / ".kube" / "config"]


class _ErrorLog(logging.Handler):
    """The client logs a failing exec plugin (logging.error) and then carries on without
    credentials; we collect the reason and fail with it, as kubectl does."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


@dataclass
class Loaded:
    configuration: Any  # kubernetes.client.Configuration
    source: str  # "context NAME" or "in-cluster service account"
    refreshable: bool  # credentials that a second load may renew (exec plugin, tokenFile)


def load_configuration(kubeconfig: str = "", context: str = "") -> Loaded:
    """The client configuration from the kubeconfig, or from the pod's service account when
    there is no kubeconfig and we run in a pod. Raises KubeError with one line."""
    import yaml
    from kubernetes import client, config
    from kubernetes.config.kube_config import KubeConfigLoader, KubeConfigMerger

    configuration = client.Configuration()
    paths = kubeconfig_paths(kubeconfig)
    existing = [p for p in paths if p.is_file()]
    if not existing:
        explicit = kubeconfig or os.environ.get("KUBECONFIG")
        if not explicit and os.environ.get("KUBERNETES_SERVICE_HOST"):
            if context:
                raise KubeError("--context needs a kubeconfig (in a pod: the service account)")
            try:
                config.load_incluster_config(client_configuration=configuration)
            except config.ConfigException as exc:
                raise KubeError(f"in-cluster config: {one_line(exc)}") from exc
            return Loaded(configuration, "in-cluster service account", False)
        raise KubeError(f"no kubeconfig found (looked at {', '.join(map(str, paths))})")
    joined = os.pathsep.join(map(str, existing))
    try:
        merger = KubeConfigMerger(joined)
        merged = merger.config
        doc = merged.value if merged is not None else None
        if not isinstance(doc, dict):
            raise KubeError(f"kubeconfig {joined} has no configuration")
        # The merger wraps each entry in a ConfigNode (it remembers the file it came from).
        names = [getattr(c, "value", c).get("name") for c in doc.get("contexts") or []]
    except (OSError, yaml.YAMLError, AttributeError, TypeError, config.ConfigException) as exc:
        raise KubeError(f"cannot read kubeconfig {joined}: {one_line(exc)}") from exc
    # kubectl takes current-context from the first file that sets it; the merger keeps the last.
    current = next((c["current-context"] for c in merger.config_files.values()
                    if isinstance(c, dict) and c.get("current-context")), "")  # fmt: skip
    name = context or current
    if not name:
        raise KubeError("kubeconfig has no current-context; pass --context")
    if name not in names:
        raise KubeError(f"context {name!r} not found in kubeconfig (contexts: {', '.join(names)})")
    errors = _ErrorLog()
    root = logging.getLogger()
    root.addHandler(errors)
    try:
        loader = KubeConfigLoader(config_dict=merged, active_context=name, config_base_path=None)
        loader.load_and_set(configuration)
    except (config.ConfigException, OSError, ValueError, KeyError, TypeError) as exc:
        raise KubeError(f"kubeconfig context {name!r}: {one_line(exc)}") from exc
    finally:
        root.removeHandler(errors)
    user = loader._user or {}  # the client keeps the resolved user only here
    if errors.messages:
        what = "exec plugin failed" if "exec" in user else "credentials"
        raise KubeError(f"kubeconfig context {name!r}: {what}: {one_line(errors.messages[0])}")
    token = getattr(loader, "token", None)
    if isinstance(token, str) and token != token.strip():
        # The client keeps a tokenFile's trailing newline (client-go trims it), which makes
        # an invalid header; its refresh hook re-applies loader.token on every request.
        loader.token = token.strip()
        configuration.api_key["BearerToken"] = loader.token
    refreshable = "exec" in user or "tokenFile" in user
    return Loaded(configuration, f"context {name}", refreshable)
