"""`pulumi destroy` of a stack whose cluster is gone, as make e2e's executor carries it out.

pulumi-kubernetes, asked to delete an object of a cluster it cannot reach, fails, unless
deleteUnreachable is on (the provider input, or PULUMI_K8S_DELETE_UNREACHABLE, which
scripts/stack.sh sets for `make destroy` once it found the cluster unreachable): then each object
is dropped from the state without a call, and the stack ends up empty. Kept apart from
cluster/e2e/stack.py (a self-contained addition): it works on a Deployer's `applied` state.
"""

from __future__ import annotations

from pathlib import Path

import yaml

from cluster.e2e.stack import Deployer, DeployError

# A loopback port nothing listens on: connections are refused at once (no traffic leaves).
GONE_SERVER = "https://127.0.0.1:9"


def reachable(d: Deployer) -> bool:
    return d.kc("get", "--raw", "/readyz", check=False, timeout=15).returncode == 0


def destroy(d: Deployer, *, delete_unreachable: bool) -> list[str]:
    """Destroys what `d` applied; on a gone cluster, drops it from the state (returns the
    names dropped) when `delete_unreachable`, else fails with one line as the provider does."""
    if reachable(d):
        d.destroy()
        return []
    if not delete_unreachable:
        raise DeployError(
            "the cluster is unreachable and deleteUnreachable is off: nothing can be deleted "
            "(make destroy sets PULUMI_K8S_DELETE_UNREACHABLE when it finds the cluster gone)"
        )
    dropped = [str(obj["metadata"]["name"]) for obj in reversed(list(d.applied.values()))]
    d.applied.clear()
    return dropped


def gone_kubeconfig(kubeconfig: Path, out: Path) -> Path:
    """A copy of `kubeconfig` whose clusters' API servers no longer answer (the cluster gone)."""
    config = yaml.safe_load(kubeconfig.read_text())
    for cluster in config.get("clusters") or []:
        cluster["cluster"]["server"] = GONE_SERVER
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(yaml.safe_dump(config))
    out.chmod(0o600)
    return out
