"""Pre-rendered pages: rendering the templates once per process, not once per request."""

from __future__ import annotations

from dataclasses import dataclass

from flask import Flask, render_template
from markupsafe import Markup

from .config import Settings
from .content import Article

HTML = "text/html; charset=utf-8"
# Where an article page's live part (views, recently read) goes; see visits.py.
STATE_SLOT = "<!--articles:state-->"


def _split(page: bytes) -> tuple[bytes, bytes]:
    head, slot, tail = page.partition(STATE_SLOT.encode())
    if not slot:
        raise ValueError("article.html has no {{ state_slot }}")
    return head, tail


@dataclass(frozen=True)
class PageCache:
    index: bytes
    articles: dict[int, tuple[bytes, bytes]]  # the page before and after the state slot
    not_found: bytes

    @classmethod
    def build(cls, app: Flask) -> PageCache:
        settings: Settings = app.config["SETTINGS"]
        articles: dict[int, Article] = app.config["ARTICLES"]
        # A request context lets url_for build relative links without SERVER_NAME.
        with app.test_request_context("/"):
            common = {"settings": settings, "articles": articles}
            return cls(
                index=render_template("index.html", **common).encode(),
                articles={
                    aid: _split(
                        render_template(
                            "article.html", article=a, state_slot=Markup(STATE_SLOT), **common
                        ).encode()
                    )
                    for aid, a in articles.items()
                },
                not_found=render_template("404.html", **common).encode(),
            )
