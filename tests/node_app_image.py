"""The app image of this checkout on the real cluster's node, put there the way the local stack
(Pulumi.local.yaml) does it: the offline base (scripts/docker-base.sh --wheels), then the
program's own docker build and `image-load` command, run by make e2e's Deployer. make e2e does
the same, but a fresh machine runs make test first, and an image left on the node by an older
checkout is not this one's."""

from __future__ import annotations

import functools
import shutil

import pytest
from stack_fixtures import ROOT, dev_config

from cluster.paths import CONTEXT, KUBECONFIG, KUBECTL
from components import offline

# How the local cluster's stack gets its image onto the node.
LOCAL_IMAGE_KEYS = (
    "imageRepository",
    "imageBase",
    "imageLoadCommand",
    "imagePush",
    "imagePullPolicy",
)


@functools.cache  # once per test process: the tests that need it share one worker
def app_image_on_node() -> str:
    """Builds and loads the image (quick when both are already done); returns its reference."""
    from cluster.e2e.stack import COMMAND, IMAGE, Deployer, run_script

    if shutil.which("docker") is None:
        pytest.skip("docker is not installed: the app image cannot be built for the node")
    run_script("docker-base.sh", "--wheels", str(ROOT / "app" / "requirements.txt"))
    local = offline.stack_config("local")
    image = {key: local[f"selfheal-lb:{key}"] for key in LOCAL_IMAGE_KEYS}
    run = offline.run_program(dev_config(namespace="t-image", kubeContext=CONTEXT, **image))
    deployer = Deployer(kubectl=str(KUBECTL), kubeconfig=str(KUBECONFIG), context=CONTEXT)
    (build,) = run.of_type(IMAGE)
    deployer.create(build)
    (load,) = [r for r in run.of_type(COMMAND) if r.name == "image-load"]
    deployer.create(load)
    return str(build.inputs["imageName"])
