"""Every page rendered once per process from the Jinja templates, not once per request.

A page depends only on the articles and the pod, so rendering per request would be pure cost.
An article page is kept as the bytes before and after its live part (views, recently read),
which visits.py fills in per request.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from jinja2 import Environment, FileSystemLoader, select_autoescape
from markupsafe import Markup

from .config import Settings
from .content import Article

HTML = "text/html; charset=utf-8"
TEMPLATES = Path(__file__).parent / "templates"
# Where an article page's live part goes; see visits.py.
STATE_SLOT = "<!--articles:state-->"


def _split(page: bytes) -> tuple[bytes, bytes]:
    head, slot, tail = page.partition(STATE_SLOT.encode())
    if not slot:
        raise ValueError("article.html has no {{ state_slot }}")
    return head, tail


@dataclass(frozen=True)
class Pages:
    index: bytes
    articles: dict[int, tuple[bytes, bytes]]  # the page before and after the state slot
    not_found: bytes
    not_allowed: bytes  # 405
    server_error: bytes  # 500

    @classmethod
    def render(cls, settings: Settings, articles: Mapping[int, Article]) -> Pages:
        env = Environment(loader=FileSystemLoader(TEMPLATES), autoescape=select_autoescape())
        common = {"settings": settings, "articles": articles}

        def render(template: str, **extra: object) -> bytes:
            return env.get_template(template).render(**common, **extra).encode()

        slot = Markup(STATE_SLOT)
        return cls(
            index=render("index.html"),
            articles={
                aid: _split(render("article.html", article=a, state_slot=slot))
                for aid, a in articles.items()
            },
            not_found=render("404.html"),
            not_allowed=render("error.html", code=405, name="Method Not Allowed"),
            server_error=render("error.html", code=500, name="Internal Server Error"),
        )
