"""Pod Security `restricted` contexts shared by every pod the stack creates (app and fortio).

The namespace enforces the `restricted` profile, so a pod without these is rejected at
admission; keeping them in one place keeps both workloads in step with it.
"""

from __future__ import annotations

from typing import Any


def pod_security_context(uid: int, *, fs_group: bool = False) -> dict[str, Any]:
    context: dict[str, Any] = {
        "run_as_non_root": True,
        "run_as_user": uid,
        "run_as_group": uid,
        "seccomp_profile": {"type": "RuntimeDefault"},
    }
    if fs_group:
        context["fs_group"] = uid  # volumes writable by the non-root user
    return context


def container_security_context(uid: int) -> dict[str, Any]:
    return {
        **pod_security_context(uid),
        "allow_privilege_escalation": False,
        "privileged": False,
        "read_only_root_filesystem": True,
        "capabilities": {"drop": ["ALL"]},
    }
