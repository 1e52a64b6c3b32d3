"""The pages people read: the index, one page per article and the error pages."""

from __future__ import annotations

from flask import Blueprint, Flask, Response, current_app, render_template, request
from werkzeug.exceptions import HTTPException, NotFound

from .pages import HTML, PageCache
from .visits import ArticlePages

bp = Blueprint("views", __name__)


def _pages() -> PageCache:
    return current_app.extensions["articles.pages"]


@bp.get("/")
def index() -> Response:
    return Response(_pages().index, content_type=HTML)


@bp.get("/article/<int:article_id>")
def article(article_id: int) -> Response:
    pages: ArticlePages = current_app.extensions["articles.article_pages"]
    if article_id not in pages:
        raise NotFound()
    headers, body = pages.respond(article_id, request.environ)
    return Response(body, headers=headers)


# The original Spring Boot site's path (/article1); same page, same metrics route family.
@bp.get("/article<int:article_id>")
def legacy_article(article_id: int) -> Response:
    return article(article_id)


def register_error_handlers(app: Flask) -> None:
    @app.errorhandler(404)
    def not_found(_e: HTTPException) -> tuple[bytes, int, dict[str, str]]:
        return _pages().not_found, 404, {"Content-Type": HTML}

    @app.errorhandler(HTTPException)
    def http_error(e: HTTPException) -> Response:
        # Keep the exception's own headers (e.g. Allow on 405), swap in our page.
        response = e.get_response()
        response.set_data(
            render_template(
                "error.html", code=e.code, name=e.name, settings=current_app.config["SETTINGS"]
            )
        )
        response.content_type = HTML
        return response

    @app.errorhandler(Exception)
    def internal_error(e: Exception) -> tuple[str, int, dict[str, str]]:
        current_app.logger.exception("unhandled error", exc_info=e)
        page = render_template(
            "error.html",
            code=500,
            name="Internal Server Error",
            settings=current_app.config["SETTINGS"],
        )
        return page, 500, {"Content-Type": HTML}
