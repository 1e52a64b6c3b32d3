"""Helpers shared by the stack tests (a module of its own: `conftest` names are ambiguous when
tests/ and tests/components/ both have one)."""

from __future__ import annotations

import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from components import offline  # noqa: E402

PROJECT = "selfheal-lb"


def qualified(overrides: Mapping[str, Any]) -> dict[str, Any]:
    return {k if ":" in k else f"{PROJECT}:{k}": v for k, v in overrides.items()}


def dev_config(**overrides: Any) -> dict[str, Any]:
    """The dev stack's config as the CLI would hand it over, with `overrides` (short keys)."""
    return {**offline.stack_config("dev"), **qualified(overrides)}
