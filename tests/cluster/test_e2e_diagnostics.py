"""make e2e's failure output picks the app's warning lines out of a running pod's log (CI shows
only that output): lines as the app's own JSON formatter writes them, among request lines."""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

from cluster.e2e.__main__ import _is_warning

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "app"))
from articles.logs import JSONFormatter


def _line(level: int, msg: str) -> str:
    record = logging.LogRecord("articles.store", level, __file__, 1, msg, None, None)
    return JSONFormatter().format(record)


def test_warnings_and_errors_are_picked_and_requests_and_info_are_not() -> None:
    warning = _line(logging.WARNING, "redis unreachable (TimeoutError: Timeout connecting)")
    error = _line(logging.ERROR, "worker died")
    info = _line(logging.INFO, "draining")
    request = json.dumps({"pod": "p", "method": "GET", "path": "/warning", "status": 200})
    assert [ln for ln in (request, warning, info, error) if _is_warning(ln)] == [warning, error]
