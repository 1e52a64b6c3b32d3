"""`helm template` with a pinned helm: the chart's objects without a cluster or a Pulumi engine.

Under `pulumi up`/`preview` the kubernetes provider renders a `helm.v3.Chart` itself (its
`kubernetes:helm:template` invoke, helm's Go library inside the provider). Under the SDK's
mocks there is no provider, so components/offline.py answers that invoke with this module:
the same archive, values, release name and namespace, rendered by the helm CLI of the pinned
version — what `make render` writes, schema-validates and scans.

helm is built from the Go module proxy (`go install helm.sh/helm/v3/cmd/helm@HELM_VERSION`,
scripts/install-tools.sh) into a cache outside the checkout; helm's own release downloads are
not reachable from every machine that runs the tests, the Go proxy is.
"""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

HELM_VERSION = "v3.19.5"  # keep in step with scripts/install-tools.sh
TEMPLATE_TIMEOUT_SECONDS = 60


class HelmUnavailable(Exception):
    """No usable helm of the pinned version: str() is one line saying how to get it."""


def default_helm_path() -> Path:
    base = os.environ.get("SELFHEAL_LB_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "selfheal-lb"
    )
    return Path(base) / "tools" / f"helm-{HELM_VERSION}" / "helm"


def helm_binary(path: Path | None = None) -> Path:
    """The pinned helm, or HelmUnavailable."""
    helm = path or Path(os.environ.get("SELFHEAL_LB_HELM") or default_helm_path())
    if not os.access(helm, os.X_OK):
        raise HelmUnavailable(
            f"helm {HELM_VERSION} is not built at {helm}: run 'make tools' (needs Go)"
        )
    return helm


def template(opts: Mapping[str, Any], helm: Path | None = None) -> list[dict[str, Any]]:
    """Render a chart as the provider's `kubernetes:helm:template` invoke would.

    `opts` is the invoke's decoded `jsonOpts` (pulumi_kubernetes.helm.v3 LocalChartOpts):
    path, release_name, namespace, values, api_versions, kube_version, skip_crd_rendering.
    """
    binary = helm_binary(helm)
    with tempfile.TemporaryDirectory(prefix="selfheal-lb-helm-") as scratch:
        values = Path(scratch) / "values.json"
        values.write_text(json.dumps(opts.get("values") or {}))
        cmd = [
            str(binary),
            "template",
            str(opts["release_name"]),
            str(opts["path"]),
            "--namespace",
            str(opts.get("namespace") or "default"),
            "--values",
            str(values),
        ]
        if opts.get("kube_version"):
            cmd += ["--kube-version", str(opts["kube_version"])]
        for api in opts.get("api_versions") or []:
            cmd += ["--api-versions", str(api)]
        cmd += ["--skip-crds"] if opts.get("skip_crd_rendering") else ["--include-crds"]
        # helm's own config/cache in the scratch dir: no repositories, nothing fetched.
        env = {
            **os.environ,
            "HELM_CACHE_HOME": scratch,
            "HELM_CONFIG_HOME": scratch,
            "HELM_DATA_HOME": scratch,
        }
        proc = subprocess.run(
            cmd, capture_output=True, text=True, timeout=TEMPLATE_TIMEOUT_SECONDS, env=env
        )
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or ["(no output)"])[-1]
        raise RuntimeError(f"helm template {opts['path']} failed: {last}")
    return [doc for doc in yaml.safe_load_all(proc.stdout) if doc]
