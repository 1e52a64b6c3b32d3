"""Articles are data: one TOML file each under data/articles/, loaded once at start."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path

DATA_DIR = Path(__file__).parent / "data" / "articles"


@dataclass(frozen=True)
class Article:
    id: int
    title: str
    summary: str
    published: str
    paragraphs: tuple[str, ...]


def _parse(path: Path) -> Article:
    with path.open("rb") as f:
        raw = tomllib.load(f)
    # Blank lines separate paragraphs; single newlines are just wrapping.
    paragraphs = tuple(
        " ".join(block.split()) for block in raw["body"].split("\n\n") if block.strip()
    )
    return Article(
        id=int(raw["id"]),
        title=str(raw["title"]),
        summary=str(raw["summary"]),
        published=str(raw["published"]),
        paragraphs=paragraphs,
    )


def load_articles(data_dir: Path = DATA_DIR) -> dict[int, Article]:
    articles: dict[int, Article] = {}
    for path in sorted(data_dir.glob("*.toml")):
        article = _parse(path)
        if article.id in articles:
            raise ValueError(f"duplicate article id {article.id} in {path}")
        articles[article.id] = article
    if not articles:
        raise ValueError(f"no articles found in {data_dir}")
    return dict(sorted(articles.items()))
