"""docs/configuration.md's table is Pulumi.yaml's config, as scripts/config_table.py writes it:
the schema is described once, and a description changed in one place only fails here."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "scripts" / "config_table.py"


def load_generator():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location("config_table", SCRIPT)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


generator = load_generator()
PROJECT = yaml.safe_load((ROOT / "Pulumi.yaml").read_text())


def test_the_committed_table_is_what_the_generator_writes() -> None:
    page = generator.PAGE.read_text()
    assert page == generator.page_with_table(page, PROJECT), (
        "docs/configuration.md differs from Pulumi.yaml: run `make config-table`"
    )


def test_every_key_is_a_row_with_its_type_default_and_description() -> None:
    page = generator.PAGE.read_text()
    for key, spec in PROJECT["config"].items():
        row = next(line for line in page.splitlines() if line.startswith(f"| `{key}` |"))
        cells = [c.strip() for c in row.strip("|").split(" | ")]
        assert cells[1] == generator.shown_type(spec), key
        assert cells[2] == f"`{generator.shown_default(spec['default'])}`", key
        assert cells[3].startswith(spec["description"].split()[0]), key


def test_every_key_says_what_it_does() -> None:
    # A description of a few words is a name repeated, not an explanation.
    thin = {k: s.get("description", "") for k, s in PROJECT["config"].items()}
    assert {k: d for k, d in thin.items() if len(d.split()) < 4} == {}


def test_check_fails_in_one_line_when_a_description_changes_and_make_rewrites_it(
    tmp_path: Path,
) -> None:
    copy = tmp_path / "repo"
    (copy / "scripts").mkdir(parents=True)
    (copy / "docs").mkdir()
    (copy / "scripts" / "config_table.py").write_text(SCRIPT.read_text())
    (copy / "docs" / "configuration.md").write_text(generator.PAGE.read_text())
    project = (ROOT / "Pulumi.yaml").read_text()
    edited = project.replace("App pods behind the Service, 1..50.", "App pods, 1 to 50.")
    assert edited != project
    (copy / "Pulumi.yaml").write_text(edited)

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, str(copy / "scripts" / "config_table.py"), *args],
            capture_output=True, text=True, timeout=60, check=False,
        )

    stale = run("--check")
    assert stale.returncode == 1
    assert stale.stderr.strip().splitlines() == [
        "config-table: docs/configuration.md differs from Pulumi.yaml: run `make config-table`"
    ]
    assert run().returncode == 0
    assert "| App pods, 1 to 50. |" in (copy / "docs" / "configuration.md").read_text()
    assert run("--check").returncode == 0


@pytest.mark.parametrize("field", ["type", "default", "description"])
def test_a_key_without_its_type_default_or_description_is_refused_in_one_line(
    field: str,
) -> None:
    project = yaml.safe_load((ROOT / "Pulumi.yaml").read_text())
    del project["config"]["appReplicas"][field]
    with pytest.raises(ValueError, match=f"config key 'appReplicas' has no {field}$"):
        generator.table(project)


def test_a_pipe_or_a_tag_in_a_description_cannot_break_the_table() -> None:
    project = {"config": {"k": {"type": "string", "default": "", "description": "a|b <x> `<y>`"}}}
    assert generator.table(project).splitlines()[-1] == (
        '| `k` | string | `""` | a\\|b &lt;x&gt; `<y>` |'
    )
