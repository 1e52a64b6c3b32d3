"""How `make test` spreads the tests over pytest-xdist's workers, and shared fixtures: small
Pulumi programs evaluated under mocks (helpers: stack_fixtures)."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from stack_fixtures import PROJECT

from components import offline

RunSnippet = Callable[..., offline.ProgramRun]

# A test not marked slow is a unit test, and tests/unit_guard.py holds it to that.
pytest_plugins = ["unit_guard"]


# How `make test` spreads the tests over pytest-xdist workers (-n N): one work unit per module,
# so a module's fixtures (servers, images, cluster objects) start once. xdist's own loadgroup
# marks cannot do it with pytest 9 (they rewrite a node id attribute pytest no longer reads).
# Modules that put the stack's app pods on the real cluster's one node share a unit and run one
# after the other: they would compete for its 2 CPUs and blur each other's CPU-under-load figures.
ONE_NODE_UNIT = "real-cluster-node"
ONE_NODE = (
    "tests/test_real_cluster_two_stacks.py",
    "tests/monitoring/test_quota_on_cluster.py",
    "tests/monitoring/test_dashboard_on_cluster.py",
)
# Units of a minute or more (measured: 2-3 min, 2 min, 1 min; mostly waiting on metrics-server),
# handed out first so that the run does not end with one worker busy alone.
LONG_UNITS = (
    ONE_NODE_UNIT,
    "tests/test_real_cluster_metrics.py",
    "tests/monitoring/test_dashboard_on_prometheus.py",
)


def work_unit(nodeid: str) -> str:
    module = nodeid.split("::", 1)[0]
    return ONE_NODE_UNIT if module in ONE_NODE else module


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    from xdist.scheduler import LoadScopeScheduling

    class ByModule(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return work_unit(nodeid)

    config.option.loadscopereorder = False  # keep the order below: the long units first
    return ByModule(config, log)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    if os.environ.get("PYTEST_XDIST_WORKER"):  # only under xdist: a plain run keeps file order
        items.sort(key=lambda item: work_unit(item.nodeid) not in LONG_UNITS)


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
