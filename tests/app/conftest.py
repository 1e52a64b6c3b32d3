"""Shared fixtures for the article app's tests: import path, the app and a client for it."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

APP_DIR = Path(__file__).resolve().parents[2] / "app"
if str(APP_DIR) not in sys.path:
    sys.path.insert(0, str(APP_DIR))

from appsettings import make_settings  # noqa: E402
from articles.lifecycle import DrainFlag  # noqa: E402
from asgiclient import Client  # noqa: E402


@pytest.fixture
def drain() -> DrainFlag:
    return DrainFlag()


@pytest.fixture
def app(drain: DrainFlag):  # type: ignore[no-untyped-def]
    from articles import create_app

    return create_app(make_settings(), drain=drain)


@pytest.fixture
def client(app) -> Iterator[Client]:  # type: ignore[no-untyped-def]
    with Client(app) as c:
        yield c
