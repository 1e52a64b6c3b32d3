"""Shared fixtures for the loadgen tests: the project root on sys.path, and a fake
Kubernetes API (namespace selfheal-lb-dev) with a kubeconfig pointing at it."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import pytest  # noqa: E402  (after the sys.path set-up above)
from fake_kube import FakeKube, running, write_kubeconfig  # noqa: E402

NS = "selfheal-lb-dev"


@pytest.fixture
def fake() -> Iterator[FakeKube]:
    with running(FakeKube(namespace=NS)) as f:
        yield f


@pytest.fixture
def kubeconfig(tmp_path: Path, fake: FakeKube) -> str:
    return write_kubeconfig(str(tmp_path / "config"), fake.url, fake.token)
