"""The README and docs/ stay true: the quick start is the two commands, the README stays short
and reaches every docs page, every relative link resolves (file and heading), every `make`
target named exists, the outputs table is what the program exports, and the config table lives
only in docs/configuration.md (generated: tests/test_config_table.py).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from components import offline

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
DOCS = sorted((ROOT / "docs").glob("*.md"))
# The Markdown a reader follows from the README: the README, docs/, and the two package pages.
PAGES = [README, *DOCS, ROOT / "loadgen" / "README.md", ROOT / "app" / "README.md"]
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")
CODE_BLOCK = re.compile(r"^```.*?^```", re.S | re.M)


def section(text: str, title: str) -> str:
    match = re.search(rf"^## {re.escape(title)}\n(.*?)(?=^## |\Z)", text, re.S | re.M)
    assert match, f"README has no section '{title}'"
    return match.group(1)


def table_keys(text: str) -> set[str]:
    """The `code` keys in the first column of a Markdown table."""
    return set(re.findall(r"^\| `([A-Za-z]+)` \|", text, re.M))


def anchors(page: Path) -> set[str]:
    """GitHub's heading anchors: lower case, punctuation dropped, spaces to hyphens."""
    seen: dict[str, int] = {}
    for title in re.findall(r"^#{1,6} (.+)$", CODE_BLOCK.sub("", page.read_text()), re.M):
        slug = re.sub(r"[^\w\- ]", "", title.strip().lower()).replace(" ", "-")
        count = seen.get(slug, 0)
        seen[slug] = count + 1
        if count:
            seen[f"{slug}-{count}"] = 1
    return set(seen)


def test_quick_start_is_make_up_and_make_test() -> None:
    block = re.search(r"```sh\n(.*?)```", section(README.read_text(), "Quick start"), re.S)
    assert block
    commands = [line.split("#")[0].strip() for line in block.group(1).splitlines()]
    assert [c for c in commands if c] == ["make up", "make test"]


def test_the_readme_is_short_and_reaches_every_docs_page() -> None:
    text = README.read_text()
    assert len(text.splitlines()) <= 250
    linked = {target.split("#")[0] for target in LINK.findall(text)}
    assert {f"docs/{page.name}" for page in DOCS} <= linked, "a docs page the README never links"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_resolves_to_a_file_and_heading(page: Path) -> None:
    broken = []
    for target in LINK.findall(CODE_BLOCK.sub("", page.read_text())):
        if re.match(r"[a-z]+:", target):  # https:, mailto:
            continue
        path, _, fragment = target.partition("#")
        linked = (page.parent / path).resolve() if path else page
        missing_heading = bool(fragment) and linked.suffix == ".md" and linked.exists() and (
            fragment not in anchors(linked)
        )
        if not linked.exists() or missing_heading:
            broken.append(target)
    assert broken == [], f"{page.relative_to(ROOT)}: broken links"


def test_every_make_target_the_docs_name_exists() -> None:
    makefile = (ROOT / "Makefile").read_text()
    targets = set(re.findall(r"^([a-z][a-z0-9-]*):", makefile, re.M))
    named = set()
    for page in PAGES:
        text = page.read_text()
        named |= set(re.findall(r"`make ([a-z][a-z0-9-]*)", text))  # in prose: `make up`
        for block in CODE_BLOCK.findall(text):  # a command line: [VAR=value ...] make target
            named |= set(re.findall(r"^(?:[A-Z_]+=\S+ +)*make ([a-z][a-z0-9-]*)", block, re.M))
    assert {"up", "test", "test-unit", "config-table"} <= named
    assert named <= targets, f"the docs name missing make targets: {sorted(named - targets)}"


def test_outputs_table_is_what_the_program_exports() -> None:
    run = offline.run_program(offline.stack_config("dev"), preview=True)
    assert table_keys(section(README.read_text(), "Outputs")) == set(run.outputs)


def test_the_config_table_is_written_once() -> None:
    # A row "| `key` | type | ..." anywhere else would be a second copy of the schema.
    row = re.compile(r"^\| `[A-Za-z]+` \| (?:string|integer|boolean|array)", re.M)
    restated = [
        str(page.relative_to(ROOT))
        for page in PAGES
        if page.name != "configuration.md" and row.search(page.read_text())
    ]
    assert restated == []
    assert row.search((ROOT / "docs" / "configuration.md").read_text())
