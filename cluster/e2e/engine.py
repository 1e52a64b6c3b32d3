"""What the Pulumi engine and its providers decide for one resource, for make e2e's executor.

The executor (stack.py) must be as strict as the engine, or it hides the defects a real
`pulumi up` shows (a Job's replacement racing its predecessor's deletion; a dependency the
program forgot, hidden by a one-at-a-time order). The rules here follow the providers' source,
read for this purpose (pulumi-kubernetes v4: provider/pkg/provider/diff.go, the Diff and Check
of provider.go, await/await.go, metadata/overrides.go; pulumi-command v1):

- a change to a "force new" field of a Kubernetes object (its name or namespace; a Job's
  template, parallelism, completions or selector; a Deployment's selector; a Secret's or a
  ConfigMap's data, which the provider treats as immutable by default) replaces the object;
  any other change updates it (server-side apply); a Command is replaced when its `triggers`
  change and run again when another input does;
- a replacement deletes first when the resource option says so, or when the object keeps the
  same user-given name and namespace (the new one could not be created beside the old one);
  otherwise the new object is created first (an auto-named one under a new name) and the old
  one deleted at the end of the update;
- a deletion is foreground-cascading unless `pulumi.com/deletionPropagationPolicy` says
  otherwise, and awaited until the object is gone, except where `pulumi.com/skipAwait` is set
  on a kind whose deletion the provider then leaves unawaited (a Job among them);
- a create is a plain create: an object of that name that still exists (even one being
  deleted) fails it with AlreadyExists.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from components import offline

COMMAND = "command:local:Command"
K8S_PREFIX = "kubernetes:"
SKIP_AWAIT = "pulumi.com/skipAwait"
AUTONAMED = "pulumi.com/autonamed"
PROPAGATION = "pulumi.com/deletionPropagationPolicy"

CREATE, SAME, UPDATE, REPLACE = "create", "same", "update", "replace"

# (API group, kind) -> input paths whose change replaces the object (metadata's always do).
FORCE_NEW: dict[tuple[str, str], tuple[str, ...]] = {
    ("batch", "Job"): ("spec.completions", "spec.parallelism", "spec.selector", "spec.template"),
    ("apps", "Deployment"): ("spec.selector",),
    ("apps", "DaemonSet"): ("spec.selector",),
    ("apps", "StatefulSet"): ("spec.podManagementPolicy", "spec.revisionHistoryLimit",
                              "spec.selector", "spec.serviceName", "spec.volumeClaimTemplates"),
    ("", "Secret"): ("type", "stringData", "data"),
    ("", "ConfigMap"): ("binaryData", "data"),
    ("", "Service"): ("spec.clusterIP",),
    ("", "ResourceQuota"): ("spec.scopes",),
    ("rbac.authorization.k8s.io", "RoleBinding"): ("roleRef",),
    ("rbac.authorization.k8s.io", "ClusterRoleBinding"): ("roleRef",),
}
METADATA_FORCE_NEW = ("metadata.name", "metadata.namespace")
# Kinds whose deletion pulumi.com/skipAwait leaves unawaited (allowsSkipAwaitWithDelete).
SKIP_AWAIT_DELETE = {
    "Namespace", "Pod", "ReplicationController", "DaemonSet", "Deployment", "StatefulSet", "Job",
}  # fmt: skip


@dataclass(frozen=True)
class Plan:
    step: str  # CREATE, SAME, UPDATE or REPLACE
    delete_first: bool = False  # REPLACE only: delete the old object before creating the new
    reasons: tuple[str, ...] = ()  # the changed inputs that force the replacement


def group_kind(obj: Mapping[str, Any]) -> tuple[str, str]:
    api = str(obj.get("apiVersion", ""))
    return (api.split("/")[0] if "/" in api else "", str(obj.get("kind", "")))


def _at(obj: Mapping[str, Any], path: str) -> Any:
    value: Any = obj
    for part in path.split("."):
        value = value.get(part) if isinstance(value, Mapping) else None
    return value


def _drop(obj: Any, path: str) -> None:
    *parents, last = path.split(".")
    for part in parents:
        obj = obj.get(part) if isinstance(obj, Mapping) else None
    if isinstance(obj, dict):
        obj.pop(last, None)


def _plain(value: Any) -> Any:
    """An input without the SDK's secret wrapper: a secret's change is a change of its value."""
    secret, inner = offline.secret_value(value)
    if secret:
        return _plain(inner)
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def plan(old: offline.RecordedResource | None, new: offline.RecordedResource) -> Plan:
    """The step the engine takes for `new`, given its previous registration `old`."""
    if old is None:
        return Plan(CREATE)
    before, after = _plain(old.inputs), _plain(new.inputs)
    for path in new.ignore_changes:  # `ignoreChanges`: never a diff, never a replacement
        _drop(before, path)
        _drop(after, path)
    if before == after:
        return Plan(SAME)
    if new.type == COMMAND:
        if before.get("triggers") != after.get("triggers"):
            return Plan(REPLACE, new.delete_before_replace, ("triggers",))
        return Plan(UPDATE)
    if new.type.startswith("random:"):
        return Plan(REPLACE, new.delete_before_replace, tuple(sorted(after)))
    if not new.type.startswith(K8S_PREFIX):
        return Plan(UPDATE)
    paths = METADATA_FORCE_NEW + FORCE_NEW.get(group_kind(after), ())
    paths += tuple(p for p in new.replace_on_changes if p not in paths)
    reasons = tuple(p for p in paths if _at(before, p) != _at(after, p))
    if not reasons:
        return Plan(UPDATE)
    return Plan(REPLACE, new.delete_before_replace or keeps_its_name(before, after), reasons)


def keeps_its_name(before: Mapping[str, Any], after: Mapping[str, Any]) -> bool:
    """The new object has a user-given name, the same as the old one's, in the same namespace:
    it cannot exist beside the old one, so the provider asks to delete the old one first."""
    name = _at(after, "metadata.name")
    return bool(name) and name == _at(before, "metadata.name") and _at(
        after, "metadata.namespace"
    ) == _at(before, "metadata.namespace")


def awaits_deletion(obj: Mapping[str, Any]) -> bool:
    annotations = (obj.get("metadata") or {}).get("annotations") or {}
    skip = str(annotations.get(SKIP_AWAIT, "")).lower() == "true"
    return not (skip and obj.get("kind") in SKIP_AWAIT_DELETE)


def propagation(obj: Mapping[str, Any]) -> str:
    """The deletion's propagationPolicy: the object's annotation, else Foreground."""
    annotations = (obj.get("metadata") or {}).get("annotations") or {}
    policy = str(annotations.get(PROPAGATION, "")).lower()
    return {"orphan": "Orphan", "background": "Background"}.get(policy, "Foreground")
