"""The API calls of the node drill (loadgen/nodedrill.py) beyond kube.py's: nodes, cordon,
pods on one node in every namespace, PodDisruptionBudgets, and evictions. Each goes through
KubeClient.request, so it is bounded, retried and fails in one line like every other call."""

from __future__ import annotations

import contextlib
import json

from loadgen.kube import RETRY_STATUSES, KubeClient, KubeNotFound

CONTROL_PLANE_LABEL = "node-role.kubernetes.io/control-plane"


def list_nodes(client: KubeClient) -> list[dict]:
    doc = json.loads(client.request("GET", "/api/v1/nodes", {}))
    return list(doc.get("items") or [])


def get_node(client: KubeClient, name: str) -> dict:
    return json.loads(client.request("GET", "/api/v1/nodes/{name}", {"name": name}))


def set_unschedulable(client: KubeClient, name: str, value: bool) -> None:
    """Cordon (True) or uncordon (False): what `kubectl cordon/uncordon` patches."""
    client.request(
        "PATCH", "/api/v1/nodes/{name}", {"name": name}, patch={"spec": {"unschedulable": value}}
    )


def pods_on_node(client: KubeClient, node: str) -> list[dict]:
    """Every pod bound to the node, all namespaces (what `kubectl drain` considers)."""
    doc = json.loads(
        client.request("GET", "/api/v1/pods", {}, {"fieldSelector": f"spec.nodeName={node}"})
    )
    return list(doc.get("items") or [])


def list_pdbs(client: KubeClient, namespace: str) -> list[dict]:
    path = "/apis/policy/v1/namespaces/{namespace}/poddisruptionbudgets"
    doc = json.loads(client.request("GET", path, {"namespace": namespace}))
    return list(doc.get("items") or [])


def evict(client: KubeClient, namespace: str, pod: str) -> None:
    """POST an Eviction: the API server admits it only if the pod's PodDisruptionBudget
    allows (429 otherwise, raised as KubeStatusError). 404: the pod is already gone."""
    body = {
        "apiVersion": "policy/v1",
        "kind": "Eviction",
        "metadata": {"name": pod, "namespace": namespace},
    }
    with contextlib.suppress(KubeNotFound):
        client.request(
            "POST",
            "/api/v1/namespaces/{namespace}/pods/{name}/eviction",
            {"namespace": namespace, "name": pod},
            patch=body,
            # A PDB's 429 is an answer ("not now"), for the drain to wait out and count.
            retry_statuses=RETRY_STATUSES - {429},
        )
