"""Where `make cluster` keeps the local cluster, as cluster/lib.sh computes it: the one place the
Python side (make e2e, the tests that use the cluster) reads it from."""

from __future__ import annotations

import os
from pathlib import Path

CACHE = Path(
    os.environ.get("SELFHEAL_LB_CACHE")
    or Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "selfheal-lb"
)
KUBECONFIG = CACHE / "cluster" / "kubeconfig"
KUBECTL = CACHE / "cluster" / "bin" / "kubectl"
CONTEXT = "selfheal-lb"  # the kubeconfig's context (cluster/lib.sh)
