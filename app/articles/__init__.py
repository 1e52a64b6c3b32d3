"""The article service: an ASGI app factory (``articles:create_app``, in app.py).

The factory is imported lazily: ``python -m articles`` must point prometheus-client at its
multiprocess directory before anything imports prometheus_client.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .app import ArticlesApp

__all__ = ["create_app"]


def create_app(*args: Any, **kwargs: Any) -> ArticlesApp:
    from .app import create_app as _create_app

    return _create_app(*args, **kwargs)
