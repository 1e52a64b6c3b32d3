"""Shared fixtures: the stack's real config and the whole program evaluated under mocks."""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pytest

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


RunStack = Callable[..., offline.ProgramRun]


@pytest.fixture
def run_stack() -> RunStack:
    """run_stack(preview=False, fake_outputs=None, stack="dev", **config overrides)."""

    def run(
        *,
        preview: bool = False,
        fake_outputs: offline.OutputFaker | None = None,
        stack: str = "dev",
        **overrides: Any,
    ) -> offline.ProgramRun:
        return offline.run_program(
            dev_config(**overrides), stack=stack, preview=preview, fake_outputs=fake_outputs
        )

    return run


RunSnippet = Callable[..., offline.ProgramRun]


@pytest.fixture
def run_snippet(tmp_path: Path) -> RunSnippet:
    """run_snippet(code, preview=False, fake_outputs=None): a small program under mocks.

    `code` is the body of a Pulumi program (it may import from components/).
    """

    def run(
        code: str, *, preview: bool = False, fake_outputs: offline.OutputFaker | None = None
    ) -> offline.ProgramRun:
        project = tmp_path / "snippet"
        project.mkdir(exist_ok=True)
        (project / "Pulumi.yaml").write_text(f"name: {PROJECT}\nruntime: python\n")
        program = project / "__main__.py"
        program.write_text(code)
        return offline.run_program(
            {}, preview=preview, fake_outputs=fake_outputs, program=program, project_dir=project
        )

    return run
