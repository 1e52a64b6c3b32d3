"""Test-only WSGI factory: the real app plus /slow?ms=N, to hold requests in flight.

Loaded by the real server via ARTICLES_WSGI_FACTORY=slowapp:create_app in the shutdown
test; never part of the image.
"""

from __future__ import annotations

import time
from typing import Any

from articles import create_app as create_articles_app


def create_app() -> Any:
    app = create_articles_app()
    inner = app.wsgi_app

    def wsgi(environ: dict[str, Any], start_response: Any) -> Any:
        if environ.get("PATH_INFO") == "/slow":
            query = environ.get("QUERY_STRING", "")
            ms = int(query.removeprefix("ms=")) if query.startswith("ms=") else 1000
            time.sleep(min(ms, 5000) / 1000)
            start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "5")])
            return [b"slow\n"]
        return inner(environ, start_response)

    app.wsgi_app = wsgi  # type: ignore[method-assign]
    return app
