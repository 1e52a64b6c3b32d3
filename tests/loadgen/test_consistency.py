"""loadgen.consistency: the exact views-vs-fortio check on /metrics texts as the app writes them."""

from __future__ import annotations

import pytest

from loadgen import consistency


def metrics(
    pod: str, recorded: int, failed: int = 0, stored: int | None = None, store: str = "redis"
) -> str:
    lines = [
        "# TYPE articles_views_total counter",
        f'articles_views_total{{article="1",outcome="recorded",pod="{pod}"}} {recorded}.0',
    ]
    if failed:
        lines.append(f'articles_views_total{{article="1",outcome="failed",pod="{pod}"}} {failed}.0')
    up = 0 if stored is None else 1
    lines.append(f'articles_state_store_up{{pod="{pod}",store="{store}"}} {up}.0')
    if stored is not None:
        lines.append(f'articles_views_stored{{article="1",pod="{pod}",store="{store}"}} {stored}.0')
        lines.append(f'articles_views_stored{{article="2",pod="{pod}",store="{store}"}} 7.0')
    return "\n".join(lines) + "\n"


def views(**pods: tuple) -> dict:  # type: ignore[type-arg]
    return consistency.summarize({name: metrics(name, *args) for name, args in pods.items()})


FORTIO = {"url": "http://articles.ns.svc.cluster.local:8080/article1", "ret_codes": {"200": 300}}
BEFORE = views(a=(10, 0, 40), b=(20, 0, 40), c=(10, 0, 40))


def test_consistent_when_every_success_is_one_view_in_the_shared_store() -> None:
    after = views(a=(110, 0, 340), b=(120, 0, 340), c=(110, 0, 340))
    report = consistency.check(BEFORE, after, FORTIO)
    assert report["verdict"] == "consistent", report
    assert report["recorded_by_pod"] == {"a": 100, "b": 100, "c": 100}
    assert report["stored_increase"] == report["recorded"] == report["fortio_successes"] == 300


def test_lost_updates_in_the_store_are_inconsistent_even_when_the_pods_counted_right() -> None:
    after = views(a=(110, 0, 339), b=(120, 0, 339), c=(110, 0, 339))
    report = consistency.check(BEFORE, after, FORTIO)
    assert report["verdict"] == "inconsistent"
    assert report["reason"] == "the shared counter rose by 299, fortio got 300 pages"


def test_one_view_too_many_is_inconsistent() -> None:
    after = views(a=(111, 0, 341), b=(120, 0, 341), c=(110, 0, 341))
    report = consistency.check(BEFORE, after, FORTIO)
    assert report["verdict"] == "inconsistent"
    assert "rose by 301" in report["reason"] and "recorded 301 views" in report["reason"]


def test_views_the_store_could_not_take_are_reported() -> None:
    after = views(a=(100, 10, 330), b=(120, 0, 330), c=(110, 0, 330))
    report = consistency.check(BEFORE, after, FORTIO)
    assert report["verdict"] == "inconsistent"
    assert report["failed"] == 10
    assert report["reason"].endswith(
        "10 views could not be counted (store unreachable or too slow)"
    )


def test_per_pod_store_compares_the_pods_counts_only() -> None:
    before = consistency.summarize({n: metrics(n, 0, 0, 0, store="pod") for n in ("a", "b", "c")})
    after = consistency.summarize(
        {n: metrics(n, v, 0, v, store="pod") for n, v in (("a", 90), ("b", 110), ("c", 100))}
    )
    report = consistency.check(before, after, FORTIO)
    assert report["verdict"] == "consistent" and report["store"] == "pod"
    assert "stored_increase" not in report


@pytest.mark.parametrize(
    ("before", "after", "fortio", "verdict", "reason"),
    [
        (BEFORE, {"pods": {}}, FORTIO, "unverifiable", "expose no view counters"),
        (BEFORE, BEFORE, None, "unverifiable", "no fortio result"),
        (None, BEFORE, FORTIO, "unverifiable", "no baseline"),
        (BEFORE, BEFORE, {**FORTIO, "url": "http://svc:8080/"}, "skipped", "not an article"),
        (BEFORE, views(a=(110, 0, 340), b=(120, 0, 340)), FORTIO, "unverifiable", "pods gone"),
        (BEFORE, views(a=(110, 0), b=(120, 0), c=(110, 0)), FORTIO, "unverifiable", "store's"),
    ],
)
def test_what_cannot_be_checked_says_why(before, after, fortio, verdict, reason) -> None:  # type: ignore[no-untyped-def]
    report = consistency.check(before, after, fortio)
    assert report["verdict"] == verdict and reason in report["reason"], report


def test_a_restarted_pod_counts_from_zero_and_is_noted() -> None:
    after = views(a=(5, 0, 340), b=(120, 0, 340), c=(110, 0, 340))  # a restarted: 10 -> 5
    report = consistency.check(BEFORE, after, {**FORTIO, "ret_codes": {"200": 205}})
    assert report["recorded_by_pod"]["a"] == 5
    assert any("a: new or restarted" in n for n in report["notes"])


def test_an_old_app_without_view_metrics_is_not_a_pod_with_zero_views() -> None:
    text = 'articles_http_requests_total{pod="a",route="/",method="GET",status="200"} 3.0\n'
    assert consistency.summarize({"a": text}) == {"pods": {}}


def test_the_app_article_paths_are_recognised() -> None:
    for url in ("http://x:8080/article1", "http://x/article/3", "/article12?x=1"):
        assert consistency.ARTICLE_PATH.match(url), url
    for url in ("http://x:8080/", "http://x/articles", "http://x/article/1/edit", "/healthz"):
        assert not consistency.ARTICLE_PATH.match(url), url
