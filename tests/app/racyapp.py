"""The real app with a deliberately wrong store: read-modify-write instead of INCR.

Loaded by the real server via ARTICLES_APP_FACTORY=racyapp:create_app, so the consistency
test can show that its check catches the lost updates this pattern causes under load.
"""

from __future__ import annotations

import asyncio

import redis.asyncio as aredis
from articles import create_app as real_create_app
from articles.app import ArticlesApp
from articles.config import Settings
from articles.content import load_articles
from articles.redis_store import VIEWS_KEY, RedisStore
from articles.store import Visit


class RacyRedisStore(RedisStore):
    racy_client: aredis.Redis | None = None

    async def visit(self, article_id: int, session_id: str | None, *, count: bool) -> Visit:
        if self.racy_client is None:
            self.racy_client = aredis.Redis.from_url(**self._options)
        key = VIEWS_KEY.format(article_id)
        views = int(await self.racy_client.get(key) or 0) + 1
        await asyncio.sleep(0.001)  # the window other requests' reads fall into
        await self.racy_client.set(key, views)
        return Visit(views, None, None, True)


def create_app() -> ArticlesApp:
    settings = Settings.from_env()
    articles = load_articles()
    racy = RacyRedisStore(
        settings.store_url, settings.store_password, settings.store_timeout_ms, articles
    )
    return real_create_app(settings, store=racy, articles=articles)
