"""An article page with its live part: the view counter and the visitor's recently read list.

The article itself is pre-rendered once per process (pages.py) around a slot; per request
only the small state fragment is built, with markupsafe's escape rather than a Jinja render,
which would cost more than the rest of the request.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from markupsafe import escape

from .content import Article
from .observability import Metrics
from .pages import HTML
from .store import SESSION_TTL_SECONDS, Store, Visit, valid_session_id

HTML_BYTES = HTML.encode()
COOKIE = "sid"
# The one cookie we read; a regex because a full cookie parse costs more than the page.
_COOKIE = re.compile(r"(?:^|;)\s*sid=([^;\s]*)")


def session_from_cookie(header: str) -> str | None:
    m = _COOKIE.search(header) if header else None
    return valid_session_id(m.group(1)) if m else None


def set_cookie(session_id: str) -> tuple[bytes, bytes]:
    value = f"{COOKIE}={session_id}; Path=/; Max-Age={SESSION_TTL_SECONDS}; HttpOnly; SameSite=Lax"
    return (b"set-cookie", value.encode())


def state_fragment(
    visit: Visit, store: Store, articles: Mapping[int, Article], current: int, pod: str
) -> str:
    if visit.views is None:
        views = (
            '<p class="views">Views: <strong>unavailable</strong> '
            "(the shared store cannot be reached; the article is served all the same)</p>"
        )
    elif store.shared:
        views = (
            f'<p class="views">Views: <strong>{visit.views}</strong> '
            "(counted by every pod in the shared store)</p>"
        )
    else:
        views = (
            f'<p class="views">Views on this pod: <strong>{visit.views}</strong> '
            f"(no shared store: pod {escape(pod)} counts only the views it served)</p>"
        )
    if not store.sessions:
        recent = '<p class="recent">Recently read: not kept (sessions need the shared store)</p>'
    elif visit.recent is None:
        recent = '<p class="recent">Recently read: <strong>unavailable</strong></p>'
    else:
        links = [
            f'<a href="/article/{aid}">{escape(articles[aid].title)}</a>'
            for aid in visit.recent
            if aid != current and aid in articles
        ]
        recent = f'<p class="recent">Recently read: {", ".join(links) or "nothing else yet"}</p>'
    return f'<section class="state">{views}{recent}</section>'


class ArticlePages:
    """Answers GET/HEAD of an article page: the visit from the store, the page around it."""

    def __init__(
        self,
        halves: Mapping[int, tuple[bytes, bytes]],
        articles: Mapping[int, Article],
        store: Store,
        metrics: Metrics,
        pod: str,
    ) -> None:
        self.halves = halves
        self.articles = articles
        self.store = store
        self.metrics = metrics
        self.pod = pod

    async def respond(
        self, article_id: int, method: str, cookie: str
    ) -> tuple[list[tuple[bytes, bytes]], bytes]:
        # HEAD is safe (RFC 9110): it shows the count without adding a view or a session.
        count = method == "GET"
        session = session_from_cookie(cookie) if self.store.sessions else None
        visit = await self.store.visit(article_id, session, count=count)
        if count:
            self.metrics.view(article_id, "recorded" if visit.recorded else "failed")
        head, tail = self.halves[article_id]
        fragment = state_fragment(visit, self.store, self.articles, article_id, self.pod)
        body = head + fragment.encode() + tail
        headers = [
            (b"content-type", HTML_BYTES),
            (b"content-length", str(len(body)).encode()),
            # Personal (the session) and changing (the count): never cached.
            (b"cache-control", b"no-store"),
        ]
        if visit.new_session:
            headers.append(set_cookie(visit.new_session))
        return headers, body
