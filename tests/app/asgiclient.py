"""Call the app in-process, as the server does: ASGI messages on an event loop of the client's
own (kept for its lifetime, since the Redis store's connections belong to one loop), with the
store opened first (lifespan startup) and closed at the end, and the visitor's cookie kept."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from articles.app import ArticlesApp
from articles.observability import StoreCollector
from prometheus_client import CollectorRegistry, generate_latest


class Headers(dict[str, str]):
    """Response headers by name, any case (HTTP names are case-insensitive)."""

    def __getitem__(self, name: str) -> str:
        return super().__getitem__(name.lower())

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and super().__contains__(name.lower())

    def get(self, name: str, default: Any = None) -> Any:  # type: ignore[override]
        return super().get(name.lower(), default)


@dataclass
class Answer:
    status_code: int
    headers: Headers
    header_list: list[tuple[str, str]]  # as sent, in order
    data: bytes

    @property
    def text(self) -> str:
        return self.data.decode()

    @property
    def content_type(self) -> str:
        return self.headers["content-type"]


class Client:
    def __init__(self, app: ArticlesApp) -> None:
        self.app = app
        self.cookie = ""  # the sid cookie the visitor sends (set from Set-Cookie, as a browser)
        self.loop = asyncio.new_event_loop()
        # The app's lifespan task runs for the client's lifetime, as under the server.
        self._inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self._events: list[str] = []
        self._lifespan = self.loop.create_task(
            app({"type": "lifespan"}, self._inbox.get, self._record)
        )
        self._inbox.put_nowait({"type": "lifespan.startup"})
        self.loop.run_until_complete(self._wait_for("lifespan.startup.complete"))

    async def _record(self, message: dict[str, Any]) -> None:
        self._events.append(message["type"])

    async def _wait_for(self, event: str) -> None:
        for _ in range(1000):  # bounded: 10 s
            if event in self._events:
                return
            await asyncio.sleep(0.01)
        raise AssertionError(f"no {event}: {self._events}")

    def close(self) -> None:
        self._inbox.put_nowait({"type": "lifespan.shutdown"})
        self.loop.run_until_complete(asyncio.wait_for(self._lifespan, 10))
        self.loop.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def open(self, path: str, method: str = "GET", headers: dict[str, str] | None = None) -> Answer:
        sent: list[dict[str, Any]] = []
        path, _, query = path.partition("?")
        raw = [(k.lower().encode(), v.encode("latin-1")) for k, v in (headers or {}).items()]
        if self.cookie:
            raw.append((b"cookie", f"sid={self.cookie}".encode()))
        scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": method,
            "scheme": "http",
            "path": path,
            "raw_path": path.encode("utf-8", "surrogateescape"),
            "query_string": query.encode(),
            "root_path": "",
            "headers": [(b"host", b"localhost"), *raw],
            "client": ("127.0.0.1", 50000),
            "server": ("127.0.0.1", 8080),
        }

        async def receive() -> dict[str, Any]:
            return {"type": "http.request", "body": b"", "more_body": False}

        async def send(message: dict[str, Any]) -> None:
            sent.append(message)

        self.loop.run_until_complete(self.app(scope, receive, send))
        start = sent[0]
        assert start["type"] == "http.response.start"
        pairs = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in start["headers"]]
        answer = Answer(
            start["status"],
            Headers({k.lower(): v for k, v in pairs}),
            pairs,
            b"".join(m.get("body", b"") for m in sent[1:]),
        )
        cookie = answer.headers.get("set-cookie", "")
        if cookie.startswith("sid="):
            self.cookie = cookie.split(";")[0].removeprefix("sid=")
        return answer

    def get(self, path: str, **kw: Any) -> Answer:
        return self.open(path, "GET", **kw)

    def head(self, path: str, **kw: Any) -> Answer:
        return self.open(path, "HEAD", **kw)

    def metrics(self) -> str:
        """This process's figures plus the store's, as the metrics port shows them."""
        store = self.app.store

        def read() -> dict[int, int] | None:
            return self.loop.run_until_complete(store.stored_views())

        registry = CollectorRegistry()
        registry.register(StoreCollector(read, store.kind, self.app.pod))  # type: ignore[arg-type]
        return (self.app.metrics.exposition() + generate_latest(registry)).decode()
