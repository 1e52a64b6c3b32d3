"""The app factory proper (imported lazily by the package, see its docstring)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from flask import Flask, request

from .config import Settings
from .content import load_articles
from .fastpath import FastPages, cached_pages
from .lifecycle import DRAIN
from .observability import ROUTE_KEY, Metrics, ObservabilityMiddleware
from .pages import PageCache
from .podcounter import POD_COUNTERS
from .redis_store import RedisStore
from .store import PodStore, Store
from .visits import ArticlePages


def create_app(test_config: Mapping[str, Any] | None = None) -> Flask:
    app = Flask("articles")
    app.config.from_mapping(SETTINGS=None, DRAIN_FLAG=DRAIN, ARTICLES=None, STORE=None)
    if test_config:
        app.config.from_mapping(test_config)
    settings: Settings = app.config["SETTINGS"] or Settings.from_env()
    app.config["SETTINGS"] = settings
    if app.config["ARTICLES"] is None:
        app.config["ARTICLES"] = load_articles()

    from . import health, views

    app.register_blueprint(views.bp)
    app.register_blueprint(health.bp)
    views.register_error_handlers(app)

    @app.before_request
    def _record_route() -> None:
        # The rule string (not the raw path) keeps the metrics' route label bounded.
        rule = request.url_rule
        if rule is not None:
            request.environ[ROUTE_KEY] = rule.rule

    # Pages only depend on the article and the pod, so each process renders them once.
    pages = PageCache.build(app)
    app.extensions["articles.pages"] = pages
    metrics = Metrics(settings.pod_name)
    app.extensions["articles.metrics"] = metrics
    store: Store = app.config["STORE"] or make_store(settings, app.config["ARTICLES"])
    app.extensions["articles.store"] = store
    metrics.attach_store(store)
    article_pages = ArticlePages(
        pages.articles, app.config["ARTICLES"], store, metrics, settings.pod_name
    )
    app.extensions["articles.article_pages"] = article_pages
    # The exact paths answered from the cache: by FastPages here, by asgi.py under the server.
    app.extensions["articles.cached_pages"] = cached_pages(app, pages)
    app.wsgi_app = ObservabilityMiddleware(  # type: ignore[method-assign]
        FastPages(app.wsgi_app, app.extensions["articles.cached_pages"], article_pages),
        metrics,
        settings.pod_name,
        app.config["DRAIN_FLAG"],
    )
    return app


def make_store(settings: Settings, articles: Mapping[int, Any]) -> Store:
    """Redis when REDIS_URL is set (no connection yet: the app starts while Redis is down)."""
    if settings.store_url:
        return RedisStore(
            settings.store_url, settings.store_password, settings.store_timeout_ms, articles
        )
    return PodStore(POD_COUNTERS, articles)
