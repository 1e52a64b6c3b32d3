"""The naive baseline for `make bench`: plain Flask, the same templates and article data,
rendered on every request; no caching, no metrics, no logging. Served by gunicorn sync
workers (one per core) from scripts/bench.sh. Not part of the image (Flask is pinned in
requirements-dev.txt).
"""

from __future__ import annotations

from pathlib import Path

from articles.config import Settings
from articles.content import load_articles
from flask import Flask, abort, render_template

TEMPLATES = Path(__file__).resolve().parents[1] / "articles" / "templates"

app = Flask(__name__, template_folder=str(TEMPLATES))
SETTINGS = Settings.from_env()
ARTICLES = load_articles()


@app.get("/")
def index() -> str:
    return render_template("index.html", settings=SETTINGS, articles=ARTICLES)


@app.get("/article/<int:article_id>")
def article(article_id: int) -> str:
    if article_id not in ARTICLES:
        abort(404)
    return render_template(
        "article.html", article=ARTICLES[article_id], settings=SETTINGS, articles=ARTICLES
    )
