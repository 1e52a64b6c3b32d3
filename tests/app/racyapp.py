"""The real app with a deliberately wrong store: read-modify-write instead of INCR.

Loaded by the real server via ARTICLES_WSGI_FACTORY=racyapp:create_app (both the Flask app's
store and the one the server's event loop uses, articles/asgi.py), so the consistency
test can show that its check catches the lost updates this pattern causes under load.
"""

from __future__ import annotations

import asyncio
import time

import redis.asyncio as aredis
from articles import create_app as real_create_app
from articles.redis_async import AsyncRedisStore
from articles.redis_store import RedisStore
from articles.store import VIEWS_KEY, Visit
from flask import Flask


class RacyRedisStore(RedisStore):
    def visit(self, article_id: int, session_id: str | None, *, count: bool) -> Visit:
        key = VIEWS_KEY.format(article_id)
        views = int(self.client.get(key) or 0) + 1
        time.sleep(0.001)  # the window another worker's read falls into
        self.client.set(key, views)
        return Visit(views, None, None, True)


class RacyAsyncRedisStore(AsyncRedisStore):
    """The same mistake on the production server's event loop (articles/asgi.py)."""

    racy_client: aredis.Redis | None = None

    async def visit(self, article_id: int, session_id: str | None, *, count: bool) -> Visit:
        if self.racy_client is None:
            self.racy_client = aredis.Redis.from_url(**self._options)
        key = VIEWS_KEY.format(article_id)
        views = int(await self.racy_client.get(key) or 0) + 1
        await asyncio.sleep(0.001)  # the window other requests' reads fall into
        await self.racy_client.set(key, views)
        return Visit(views, None, None, True)


def create_app() -> Flask:
    app = real_create_app()
    pages = app.extensions["articles.article_pages"]
    settings = app.config["SETTINGS"]
    racy = RacyRedisStore(
        settings.store_url, settings.store_password, settings.store_timeout_ms, pages.articles
    )
    pages.store = racy
    app.extensions["articles.metrics"].attach_store(racy)
    app.extensions["articles.async_store"] = RacyAsyncRedisStore(
        settings.store_url, settings.store_password, settings.store_timeout_ms
    )
    return app
