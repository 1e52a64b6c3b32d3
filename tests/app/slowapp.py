"""Test-only app factory: the real app plus /slow?ms=N, to hold requests in flight.

Loaded by the real server via ARTICLES_APP_FACTORY=slowapp:create_app in the shutdown
test; never part of the image.
"""

from __future__ import annotations

import asyncio
from typing import Any

from articles import create_app as create_articles_app


def create_app() -> Any:
    app = create_articles_app()

    async def slow_or_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["path"] == "/slow":
            query = scope["query_string"].decode()
            ms = int(query.removeprefix("ms=")) if query.startswith("ms=") else 1000
            await asyncio.sleep(min(ms, 5000) / 1000)
            headers = [(b"content-type", b"text/plain"), (b"content-length", b"5")]
            await send({"type": "http.response.start", "status": 200, "headers": headers})
            await send({"type": "http.response.body", "body": b"slow\n"})
            return
        await app(scope, receive, send)

    return slow_or_app
