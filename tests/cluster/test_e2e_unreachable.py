"""make e2e's `pulumi destroy` of a stack whose cluster is gone (cluster/e2e/unreachable.py):
with deleteUnreachable the state is emptied without a call to the cluster; without it the
destroy fails in one line and the state is kept. A real kubectl against a loopback port that
refuses connections stands for the deleted cluster."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from cluster.e2e import unreachable
from cluster.e2e.stack import Deployer, DeployError
from cluster.paths import KUBECTL

pytestmark = pytest.mark.slow  # runs kubectl


def _kubectl() -> str:
    found = str(KUBECTL) if KUBECTL.exists() else shutil.which("kubectl")
    if not found:
        pytest.skip("no kubectl here (make cluster builds one)")
    return found


def _gone_deployer(tmp_path: Path) -> Deployer:
    real = tmp_path / "kubeconfig"
    real.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "c", "cluster": {"server": "https://10.0.0.1:6443"}}],
                "users": [{"name": "u", "user": {"token": "t"}}],
                "contexts": [{"name": "ctx", "context": {"cluster": "c", "user": "u"}}],
                "current-context": "ctx",
            }
        )
    )
    gone = unreachable.gone_kubeconfig(real, tmp_path / "gone" / "kubeconfig")
    assert yaml.safe_load(gone.read_text())["clusters"][0]["cluster"]["server"] == (
        unreachable.GONE_SERVER
    )
    d = Deployer(kubectl=_kubectl(), kubeconfig=str(gone), context="ctx", timeout=20,
                 log=lambda _: None)  # fmt: skip
    d.applied = {
        "urn:ns": {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "ns"}},
        "urn:deploy": {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "articles", "namespace": "ns"},
        },
    }
    return d


def test_destroy_with_the_cluster_gone_empties_the_state(tmp_path):
    d = _gone_deployer(tmp_path)
    assert unreachable.destroy(d, delete_unreachable=True) == ["articles", "ns"]
    assert d.applied == {}


def test_without_delete_unreachable_the_destroy_fails_and_keeps_the_state(tmp_path):
    d = _gone_deployer(tmp_path)
    with pytest.raises(DeployError, match="deleteUnreachable is off"):
        unreachable.destroy(d, delete_unreachable=False)
    assert len(d.applied) == 2
