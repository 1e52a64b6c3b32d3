"""The article service: a Flask app factory (``articles:create_app``).

The factory is imported lazily: ``python -m articles`` must point prometheus-client at its
multiprocess directory before anything imports prometheus_client.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from flask import Flask

__all__ = ["create_app"]


def create_app(test_config: Mapping[str, Any] | None = None) -> Flask:
    from .factory import create_app as _create_app

    return _create_app(test_config)
