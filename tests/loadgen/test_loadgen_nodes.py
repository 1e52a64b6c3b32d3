"""The report names each pod's node and how many nodes served traffic: from pod objects as the
API returns them (spec.nodeName), into the JSON, the table, the summary line and the page."""

from __future__ import annotations

import copy
from typing import Any

from loadgen import html_report, kube, nodes, report
from loadgen.baseline import Counters

# A pod as `GET /api/v1/namespaces/NS/pods` lists it (fields loadgen does not read trimmed to a
# few, the shape kept): scheduled and Ready on node 2 of a three-node cluster.
SCHEDULED: dict[str, Any] = {
    "metadata": {
        "name": "articles-6d5f8b7c9-x2x7q",
        "namespace": "selfheal-lb-dev",
        "uid": "0b7b1f7e-3c1a-4c55-9d7e-2f3c2a1b9e10",
        "labels": {
            "app.kubernetes.io/name": "articles",
            "app.kubernetes.io/instance": "dev",
            "pod-template-hash": "6d5f8b7c9",
        },
        "ownerReferences": [
            {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "articles-6d5f8b7c9",
             "uid": "5f0e", "controller": True, "blockOwnerDeletion": True}
        ],
    },
    "spec": {
        "containers": [{"name": "articles", "image": "selfheal-lb/articles:3f9a1c2e7b4d"}],
        "nodeName": "selfheal-lb-node2",
        "tolerations": [
            {"key": "node.kubernetes.io/not-ready", "operator": "Exists",
             "effect": "NoExecute", "tolerationSeconds": 5},
        ],
    },
    "status": {
        "phase": "Running",
        "hostIP": "10.199.0.2",
        "podIP": "10.244.1.7",
        "conditions": [
            {"type": "PodScheduled", "status": "True",
             "lastTransitionTime": "2026-12-05T02:30:00Z"},
            {"type": "Ready", "status": "True", "lastTransitionTime": "2026-12-05T02:30:09Z"},
        ],
    },
}  # fmt: skip


def unscheduled() -> dict[str, Any]:
    """The same pod before the scheduler placed it: no nodeName, PodScheduled False."""
    pod = copy.deepcopy(SCHEDULED)
    del pod["spec"]["nodeName"]
    pod["status"] = {
        "phase": "Pending",
        "conditions": [
            {"type": "PodScheduled", "status": "False", "reason": "Unschedulable",
             "lastTransitionTime": "2026-12-05T02:30:00Z"}
        ],
    }  # fmt: skip
    return pod


def test_a_pods_node_is_its_spec_node_name_and_empty_until_it_is_scheduled():
    assert kube.node_name(SCHEDULED) == "selfheal-lb-node2"
    assert kube.node_name(unscheduled()) == ""
    assert kube.node_name({"metadata": {"name": "bare"}}) == ""


def test_nodes_served_counts_the_nodes_whose_pods_served_requests():
    on = {"a": "node-1", "b": "node-1", "c": "node-2", "idle": "node-3"}
    got = nodes.served_by_node({"a": 300.0, "b": 340.4, "c": 310.0, "idle": 0.0}, on)
    assert got["nodes_served"] == 2  # node-3's only pod served nothing
    assert got["nodes"] == [
        {"name": "node-1", "pods": ["a", "b"], "requests": 640},
        {"name": "node-2", "pods": ["c"], "requests": 310},
    ]


def test_all_pods_on_one_node_is_one_node_served():
    got = nodes.served_by_node({"a": 5.0, "b": 7.0}, {"a": "n", "b": "n"})
    assert got["nodes_served"] == 1


def test_a_pod_gone_since_the_baseline_keeps_the_node_the_baseline_saw():
    after = Counters(nodes={"a": "node-1", "b": "node-2"})
    baseline = {"pods": {"a": {"node": "node-1"}, "gone": {"node": "node-3"}, "old": {}}}
    assert nodes.pod_nodes(after, baseline) == {"a": "node-1", "b": "node-2", "gone": "node-3"}
    assert nodes.pod_nodes(after, None) == {"a": "node-1", "b": "node-2"}


def in_cluster_report() -> dict[str, Any]:
    row = {"share": 0.5, "expected_share": 0.5, "units": 150.0, "requests": 500}
    return {
        "verdict": "balanced",
        "reason": "all 2 pods served traffic",
        "pods": [
            {"name": "articles-6d5f8b7c9-x2x7q", "node": "selfheal-lb-node2", **row},
            {"name": "articles-6d5f8b7c9-9kq4m", "node": "selfheal-lb-node", **row},
        ],
        "nodes_served": 2,
        "nodes": [
            {"name": "selfheal-lb-node", "pods": ["articles-6d5f8b7c9-9kq4m"], "requests": 500},
            {"name": "selfheal-lb-node2", "pods": ["articles-6d5f8b7c9-x2x7q"], "requests": 500},
        ],
        "distribution": {"unit": "connection"},
    }


def test_the_table_names_each_pods_node_and_says_how_many_nodes_served():
    lines = report.render_table(in_cluster_report()).splitlines()
    assert lines[1].split()[:3] == ["pod", "node", "requests"]
    assert lines[2].split()[:2] == ["articles-6d5f8b7c9-x2x7q", "selfheal-lb-node2"]
    assert lines[3].split()[:2] == ["articles-6d5f8b7c9-9kq4m", "selfheal-lb-node"]
    assert lines[4] == (
        "nodes: 2 served traffic: selfheal-lb-node (1 pod, 500 requests), "
        "selfheal-lb-node2 (1 pod, 500 requests)"
    )


def test_a_report_without_nodes_has_no_node_column_or_line():
    """verify --url counts by X-Served-By: no API to name the nodes, the table as before."""
    rep = in_cluster_report()
    for pod in rep["pods"]:
        del pod["node"]
    del rep["nodes_served"], rep["nodes"]
    text = report.render_table(rep)
    assert "node" not in text
    assert text.splitlines()[1].split()[:2] == ["pod", "requests"]


def test_the_page_names_each_pods_node_and_the_nodes_served():
    page = html_report.render(in_cluster_report())
    assert '<td class="node">selfheal-lb-node2</td>' in page
    assert '<p id="nodes" data-nodes-served="2">nodes: 2 served traffic: ' in page
    rep = in_cluster_report()
    for pod in rep["pods"]:
        del pod["node"]
    del rep["nodes_served"], rep["nodes"]
    page = html_report.render(rep)
    assert 'class="node"' not in page and 'id="nodes"' not in page
