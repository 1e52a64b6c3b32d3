"""A Pulumi program written inline by a test, evaluated under the mocks as make e2e's executor
evaluates the stack (commands' real stdout and auto-names handed back in)."""

from __future__ import annotations

import textwrap
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from cluster.e2e import stack
from components import offline


def write_project(tmp_path: Path, body: str) -> Path:
    project = tmp_path / "p"
    project.mkdir(exist_ok=True)
    (project / "Pulumi.yaml").write_text("name: selfheal-lb\nruntime: python\n")
    (project / "__main__.py").write_text(textwrap.dedent(body))
    return project


def evaluate(
    project: Path,
    config: Mapping[str, Any] | None = None,
    stdout: Mapping[str, str] | None = None,
    names: Mapping[str, str] | None = None,
) -> offline.ProgramRun:
    return offline.run_program(
        dict(config or {}),
        fake_outputs=stack.outputs_with(stdout or {}, names),
        program=project / "__main__.py",
        project_dir=project,
    )


def run_inline(tmp_path: Path, body: str) -> offline.ProgramRun:
    """The program `body`, evaluated once, before anything ran."""
    return evaluate(write_project(tmp_path, body))
