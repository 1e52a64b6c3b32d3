"""The real app with a deliberately wrong store: read-modify-write instead of INCR.

Loaded by the real server via ARTICLES_WSGI_FACTORY=racyapp:create_app, so the consistency
test can show that its check catches the lost updates this pattern causes under load.
"""

from __future__ import annotations

import time

from articles import create_app as real_create_app
from articles.store import VIEWS_KEY, RedisStore, Visit
from flask import Flask


class RacyRedisStore(RedisStore):
    def visit(self, article_id: int, session_id: str | None, *, count: bool) -> Visit:
        key = VIEWS_KEY.format(article_id)
        views = int(self.client.get(key) or 0) + 1
        time.sleep(0.001)  # the window another worker's read falls into
        self.client.set(key, views)
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
    return app
