"""The stack's namespace enforces Pod Security `restricted`, and every pod the stack creates
there (the article Deployment, the fortio Job) passes the restricted profile, checked field by
field on the manifests `make render` writes, for each committed stack.

The rules follow https://kubernetes.io/docs/concepts/security/pod-security-standards/
(baseline + restricted, as enforced by the PodSecurity admission controller).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from components import render

ROOT = Path(__file__).resolve().parent.parent
STACKS = sorted(p.name.split(".")[1] for p in ROOT.glob("Pulumi.*.yaml"))
POD_SPEC_PATHS = {
    "Pod": ("spec",),
    "Deployment": ("spec", "template", "spec"),
    "ReplicaSet": ("spec", "template", "spec"),
    "StatefulSet": ("spec", "template", "spec"),
    "DaemonSet": ("spec", "template", "spec"),
    "Job": ("spec", "template", "spec"),
    "CronJob": ("spec", "jobTemplate", "spec", "template", "spec"),
}
RESTRICTED_VOLUME_TYPES = {
    "configMap", "csi", "downwardAPI", "emptyDir", "ephemeral", "persistentVolumeClaim",
    "projected", "secret",
}
SAFE_SYSCTLS = {
    "kernel.shm_rmid_forced", "net.ipv4.ip_local_port_range", "net.ipv4.ip_unprivileged_port_start",
    "net.ipv4.tcp_syncookies", "net.ipv4.ping_group_range", "net.ipv4.ip_local_reserved_ports",
    "net.ipv4.tcp_keepalive_time", "net.ipv4.tcp_fin_timeout", "net.ipv4.tcp_keepalive_intvl",
    "net.ipv4.tcp_keepalive_probes",
}
SELINUX_TYPES = {None, "", "container_t", "container_init_t", "container_kvm_t",
                 "container_engine_t"}


def dig(value: Any, *path: str) -> Any:
    for key in path:
        if not isinstance(value, dict):
            return None
        value = value.get(key)
    return value


def containers(spec: dict) -> Iterator[dict]:
    for key in ("initContainers", "containers", "ephemeralContainers"):
        yield from spec.get(key) or []


def restricted_violations(spec: dict, annotations: dict | None = None) -> list[str]:
    """Every way a pod spec breaks the baseline or restricted profile ([] = admitted)."""
    out: list[str] = []
    pod_sc = spec.get("securityContext") or {}
    for field in ("hostNetwork", "hostPID", "hostIPC"):
        if spec.get(field):
            out.append(f"{field} is true")
    for volume in spec.get("volumes") or []:
        kinds = set(volume) - {"name"}
        if "hostPath" in kinds:
            out.append(f"volume {volume['name']} is a hostPath")
        elif not kinds <= RESTRICTED_VOLUME_TYPES:
            out.append(f"volume {volume['name']} has a type outside restricted: {sorted(kinds)}")
    for sysctl in pod_sc.get("sysctls") or []:
        if sysctl.get("name") not in SAFE_SYSCTLS:
            out.append(f"unsafe sysctl {sysctl.get('name')}")
    if dig(pod_sc, "windowsOptions", "hostProcess"):
        out.append("windows hostProcess")
    out += _selinux("pod", pod_sc)
    out += _apparmor("pod", pod_sc)
    for key, value in (annotations or {}).items():
        if key.startswith("container.apparmor.security.beta.kubernetes.io/") and not (
            value == "runtime/default" or value.startswith("localhost/")
        ):
            out.append(f"AppArmor annotation {key}={value}")

    pod_seccomp = dig(pod_sc, "seccompProfile", "type")  # the containers' default, below
    if pod_sc.get("runAsUser") == 0:
        out.append("pod runAsUser 0")

    for c in containers(spec):
        name, sc = c.get("name"), c.get("securityContext") or {}
        where = f"container {name}"
        if sc.get("privileged"):
            out.append(f"{where} is privileged")
        if sc.get("allowPrivilegeEscalation") is not False:
            out.append(f"{where} does not set allowPrivilegeEscalation: false")
        run_as_non_root = sc.get("runAsNonRoot", pod_sc.get("runAsNonRoot"))
        if run_as_non_root is not True:
            out.append(f"{where} runAsNonRoot is not true (pod or container)")
        if sc.get("runAsUser") == 0:
            out.append(f"{where} runAsUser 0")
        seccomp = dig(sc, "seccompProfile", "type") or pod_seccomp
        if seccomp not in ("RuntimeDefault", "Localhost"):
            out.append(f"{where} seccompProfile is {seccomp!r}, not RuntimeDefault/Localhost")
        caps = sc.get("capabilities") or {}
        if "ALL" not in (caps.get("drop") or []):
            out.append(f"{where} does not drop ALL capabilities")
        added = set(caps.get("add") or []) - {"NET_BIND_SERVICE"}
        if added:
            out.append(f"{where} adds capabilities {sorted(added)}")
        for port in c.get("ports") or []:
            if port.get("hostPort"):
                out.append(f"{where} uses hostPort {port['hostPort']}")
        if sc.get("procMount") not in (None, "Default"):
            out.append(f"{where} procMount {sc['procMount']}")
        if dig(sc, "windowsOptions", "hostProcess"):
            out.append(f"{where} windows hostProcess")
        out += _selinux(where, sc)
        out += _apparmor(where, sc)
    return out


def _selinux(where: str, sc: dict) -> list[str]:
    opts = sc.get("seLinuxOptions") or {}
    out = []
    if opts.get("type") not in SELINUX_TYPES:
        out.append(f"{where} SELinux type {opts.get('type')}")
    if opts.get("user") or opts.get("role"):
        out.append(f"{where} sets SELinux user/role")
    return out


def _apparmor(where: str, sc: dict) -> list[str]:
    kind = dig(sc, "appArmorProfile", "type")
    return [] if kind in (None, "RuntimeDefault", "Localhost") else [f"{where} AppArmor {kind}"]


def rendered(stack: str, out: Path) -> list[dict]:
    render.render(stack, out)
    docs = []
    for path in sorted((out / "manifests").glob("*.yaml")):
        if path.name != "all.yaml":
            docs.extend(d for d in yaml.safe_load_all(path.read_text()) if d)
    return docs


@pytest.fixture(scope="module", params=STACKS)
def manifests(request, tmp_path_factory) -> tuple[str, list[dict]]:
    stack = request.param
    return stack, rendered(stack, tmp_path_factory.mktemp(f"render-{stack}"))


@pytest.mark.slow  # renders with helm, fetching the chart when it can
def test_the_stacks_namespace_enforces_restricted(manifests):
    _, docs = manifests
    (namespace,) = [d for d in docs if d["kind"] == "Namespace"]
    labels = namespace["metadata"]["labels"]
    assert labels["pod-security.kubernetes.io/enforce"] == "restricted"
    assert labels.get("pod-security.kubernetes.io/warn", "restricted") == "restricted"


@pytest.mark.slow  # renders with helm, fetching the chart when it can
def test_every_pod_the_stack_creates_is_admitted_by_restricted(manifests):
    _, docs = manifests
    (namespace,) = [d["metadata"]["name"] for d in docs if d["kind"] == "Namespace"]
    workloads = [d for d in docs if d["kind"] in POD_SPEC_PATHS]
    # Both pod sources the issue names are there, so this cannot pass on an empty list.
    names = {(d["kind"], dig(d, "metadata", "labels", "app.kubernetes.io/name")) for d in workloads}
    assert {("Deployment", "articles"), ("Job", "fortio")} <= names
    problems = {}
    for doc in workloads:
        assert doc["metadata"]["namespace"] == namespace  # so the namespace's PSS applies
        path = POD_SPEC_PATHS[doc["kind"]]
        template_meta = dig(doc, *path[:-1], "metadata") if len(path) > 1 else doc["metadata"]
        found = restricted_violations(dig(doc, *path), (template_meta or {}).get("annotations"))
        if found:
            problems[f"{doc['kind']}/{doc['metadata']['name']}"] = found
    assert problems == {}


# The checker itself must catch what the admission controller rejects.
COMPLIANT = {
    "securityContext": {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}},
    "containers": [{
        "name": "c",
        "securityContext": {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}},
    }],
    "volumes": [{"name": "tmp", "emptyDir": {}}],
}


def variant(path: tuple, value: Any) -> dict:
    doc = yaml.safe_load(yaml.safe_dump(COMPLIANT))
    node = doc
    for key in path[:-1]:
        node = node[key] if isinstance(key, int) else node.setdefault(key, {})
    node[path[-1]] = value
    return doc


C = ("containers", 0, "securityContext")


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        (variant(("hostNetwork",), True), "hostNetwork"),
        (variant(("hostPID",), True), "hostPID"),
        (variant(("hostIPC",), True), "hostIPC"),
        (variant(("volumes",), [{"name": "h", "hostPath": {"path": "/"}}]), "hostPath"),
        (variant(("volumes",), [{"name": "n", "nfs": {"server": "x", "path": "/"}}]), "outside"),
        (variant((*C, "privileged"), True), "privileged"),
        (variant((*C, "allowPrivilegeEscalation"), True), "allowPrivilegeEscalation"),
        (variant((*C, "runAsNonRoot"), False), "runAsNonRoot"),
        (variant((*C, "runAsUser"), 0), "runAsUser 0"),
        (variant(("securityContext", "seccompProfile"), {"type": "Unconfined"}), "Unconfined"),
        (variant(("securityContext", "seccompProfile"), None), "seccompProfile is None"),
        (variant((*C, "capabilities"), {"drop": ["NET_RAW"]}), "drop ALL"),
        (variant((*C, "capabilities"), {"drop": ["ALL"], "add": ["SYS_ADMIN"]}), "SYS_ADMIN"),
        (variant(("containers", 0, "ports"), [{"containerPort": 80, "hostPort": 80}]), "hostPort"),
        (variant((*C, "procMount"), "Unmasked"), "procMount"),
        (variant(("securityContext", "sysctls"), [{"name": "kernel.msgmax", "value": "1"}]),
         "unsafe sysctl"),
        (variant((*C, "seLinuxOptions"), {"type": "spc_t"}), "SELinux type"),
    ],
)
def test_the_checker_rejects_each_restricted_violation(spec, expected):
    found = restricted_violations(spec)
    assert len(found) == 1 and expected in found[0], found


def test_the_checker_admits_the_minimal_restricted_pod_and_net_bind_service():
    assert restricted_violations(COMPLIANT) == []
    caps = {"drop": ["ALL"], "add": ["NET_BIND_SERVICE"]}
    assert restricted_violations(variant((*C, "capabilities"), caps)) == []
