"""Shared fixtures: small Pulumi programs evaluated under mocks (helpers: stack_fixtures)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from stack_fixtures import PROJECT

from components import offline

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
