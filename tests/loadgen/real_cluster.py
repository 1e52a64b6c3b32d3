"""The real one-node cluster (`make cluster`) for the loadgen API-access tests, when it is up.

Its kubeconfig is at ~/.cache/selfheal-lb/cluster/kubeconfig (context selfheal-lb), or where
SELFHEAL_LB_CLUSTER_KUBECONFIG points. `cluster()` skips the test with the reason when the
file is missing or the API server does not answer; `namespace()` makes a throw-away
namespace t-kube-<random> and deletes it afterwards.
"""

from __future__ import annotations

import base64
import contextlib
import os
import secrets
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from cluster.paths import CONTEXT, KUBECONFIG

# What loadgen/README.md says the kubeconfig's user needs in the app's namespace.
LOADGEN_RULES = [
    {"apiGroups": [""], "resources": ["pods"], "verbs": ["list", "delete"]},
    {"apiGroups": [""], "resources": ["pods/proxy", "pods/log"], "verbs": ["get"]},
    {"apiGroups": ["metrics.k8s.io"], "resources": ["pods"], "verbs": ["list"]},
    {"apiGroups": ["apps"], "resources": ["replicasets", "deployments"], "verbs": ["get"]},
]


def kubeconfig_path() -> Path:
    return Path(os.environ.get("SELFHEAL_LB_CLUSTER_KUBECONFIG", KUBECONFIG))


@dataclass
class Cluster:
    kubeconfig: Path
    api: Any  # kubernetes.client.ApiClient as the cluster admin
    server: str
    ca_data: str  # base64 PEM, as in a kubeconfig

    def token_kubeconfig(self, path: Path, user: dict, *, ca: dict | None = None) -> str:
        """A kubeconfig for this server with `user` (token, exec, ...) and the cluster's CA."""
        cluster = {"server": self.server, **(ca or {"certificate-authority-data": self.ca_data})}
        doc = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "real", "cluster": cluster}],
            "users": [{"name": "u", "user": user}],
            "contexts": [{"name": "real", "context": {"cluster": "real", "user": "u"}}],
            "current-context": "real",
        }
        path.write_text(yaml.safe_dump(doc))
        return str(path)


def cluster() -> Cluster:
    path = kubeconfig_path()
    if not path.is_file():
        pytest.skip(f"the real cluster is not up ({path} missing; `make cluster` starts it)")
    from kubernetes import client, config

    try:
        api = config.new_client_from_config(config_file=str(path), context=CONTEXT)
        client.VersionApi(api).get_code(_request_timeout=(5, 5))
    except Exception as exc:  # any reason: the cluster is not usable, say why and skip
        pytest.skip(f"the real cluster at {path} does not answer: {str(exc).splitlines()[0]}")
    doc = yaml.safe_load(path.read_text())
    ctx = next(c["context"] for c in doc["contexts"] if c["name"] == CONTEXT)
    cl = next(c["cluster"] for c in doc["clusters"] if c["name"] == ctx["cluster"])
    ca = cl.get("certificate-authority-data")
    if not ca:
        ca_file = Path(cl["certificate-authority"])
        if not ca_file.is_absolute():
            ca_file = path.parent / ca_file
        ca = base64.b64encode(ca_file.read_bytes()).decode()
    return Cluster(path, api, cl["server"].rstrip("/"), ca)


@contextlib.contextmanager
def namespace(c: Cluster) -> Iterator[str]:
    from kubernetes import client

    core = client.CoreV1Api(c.api)
    name = f"t-kube-{secrets.token_hex(3)}"
    core.create_namespace(
        {
            "metadata": {
                "name": name,
                "labels": {"pod-security.kubernetes.io/enforce": "restricted"},
            }
        }
    )
    try:
        yield name
    finally:
        with contextlib.suppress(Exception):
            core.delete_namespace(name, grace_period_seconds=0)


def service_account_token(c: Cluster, ns: str, name: str, rules: list[dict] | None) -> str:
    """A service account in ns, bound to a Role with `rules` (none: no permissions at all),
    and a 10-minute token for it."""
    from kubernetes import client

    core = client.CoreV1Api(c.api)
    core.create_namespaced_service_account(ns, {"metadata": {"name": name}})
    if rules is not None:
        rbac = client.RbacAuthorizationV1Api(c.api)
        rbac.create_namespaced_role(ns, {"metadata": {"name": name}, "rules": rules})
        rbac.create_namespaced_role_binding(
            ns,
            {
                "metadata": {"name": name},
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name},
                "subjects": [{"kind": "ServiceAccount", "name": name, "namespace": ns}],
            },
        )
    deadline = time.monotonic() + 20
    while True:  # the token controller may need a moment for a brand-new account
        try:
            req = core.create_namespaced_service_account_token(
                name, ns, {"spec": {"expirationSeconds": 600}}
            )
            return req.status.token
        except Exception:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)
