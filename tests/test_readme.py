"""The README stays true: its quick start is the two set-up commands, its config table is
Pulumi.yaml's keys with their types and defaults, its outputs table is what the program exports.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import yaml

from components import offline

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()


def section(title: str) -> str:
    match = re.search(rf"^## {re.escape(title)}\n(.*?)(?=^## )", README, re.S | re.M)
    assert match, f"README has no section '{title}'"
    return match.group(1)


def table_rows(text: str) -> dict[str, list[str]]:
    """First-column `code` key -> the row's other cells."""
    rows = {}
    for line in text.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split(" | ")]
        key = re.fullmatch(r"`([A-Za-z]+)`", cells[0])
        if line.startswith("| `") and key:
            rows[key.group(1)] = cells[1:]
    return rows


def shown_default(value: object) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, list):
        return json.dumps(value)
    return '""' if value == "" else str(value)


def test_quick_start_is_make_up_and_make_test() -> None:
    block = re.search(r"```sh\n(.*?)```", section("Quick start"), re.S)
    assert block
    commands = [line.split("#")[0].strip() for line in block.group(1).splitlines()]
    assert [c for c in commands if c] == ["make up", "make test"]


def test_config_table_is_pulumi_yaml() -> None:
    declared = yaml.safe_load((ROOT / "Pulumi.yaml").read_text())["config"]
    rows = table_rows(section("Config"))
    assert set(rows) == set(declared), "README config table and Pulumi.yaml differ"
    for key, spec in declared.items():
        type_cell, default_cell = rows[key][0], rows[key][1]
        assert type_cell.startswith(spec["type"]), key
        assert default_cell == f"`{shown_default(spec['default'])}`", key


def test_outputs_table_is_what_the_program_exports() -> None:
    run = offline.run_program(offline.stack_config("dev"), preview=True)
    assert set(table_rows(section("Outputs"))) == set(run.outputs)


def test_every_make_target_the_readme_names_exists() -> None:
    makefile = (ROOT / "Makefile").read_text()
    targets = set(re.findall(r"^([a-z][a-z0-9-]*):", makefile, re.M))
    named = set(re.findall(r"`make ([a-z][a-z0-9-]*)", README))
    assert named, "the README names make targets"
    assert named <= targets, f"README names missing targets: {sorted(named - targets)}"
