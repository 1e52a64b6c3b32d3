"""What `pulumi up` would do to a stack deployed from an older commit: the older program is
evaluated under mocks in a process of its own (its `components` package is not this one), and
each of its resources is matched with this program's by URN or alias, then given the step the
engine would take (engine.py). Used by tests/cluster/test_upgrade.py and by
`python -m cluster.e2e.upgrade BASE` (a preview of the upgrade without a cluster).

The older tree's own mocks keep only the parent's last type in a URN; the engine keeps the
whole chain, so URNs are rebuilt here from the parents, as the engine makes them.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cluster.e2e import engine
from components import offline

PROJECT_DIR = Path(__file__).resolve().parents[2]
STACK_TYPE = "pulumi:pulumi:Stack"
PROJECT_NAME = "selfheal-lb"

# Run inside the older tree: its program under its own mocks, printed as JSON.
_RECORD = """
import json, sys
from cluster.e2e import engine
from components import offline
config = {**offline.stack_config(sys.argv[1]), **json.loads(sys.argv[2])}
run = offline.run_program(config, stack=sys.argv[1])
print(json.dumps([
    {"type": r.type, "name": r.name, "inputs": r.inputs, "custom": r.custom,
     "parent_urn": r.parent_urn, "urn": r.urn,
     "delete_before_replace": r.delete_before_replace,
     "replace_on_changes": list(r.replace_on_changes)}
    for r in run.resources
], default=str))
"""


class UpgradeUnavailable(RuntimeError):
    """The older commit cannot be had or evaluated here (one line saying why)."""


def export_tree(ref: str, into: Path, repo: Path = PROJECT_DIR) -> None:
    """The files of commit `ref` (git archive), without touching the checkout."""
    proc = subprocess.run(
        ["git", "-C", str(repo), "archive", "--format=tar", ref],
        capture_output=True,
        timeout=120,
        check=False,
    )
    if proc.returncode != 0:
        line = (proc.stderr.decode().strip().splitlines() or ["git archive failed"])[-1]
        raise UpgradeUnavailable(f"cannot read commit {ref}: {line}")
    with tempfile.TemporaryFile() as tar:
        tar.write(proc.stdout)
        tar.seek(0)
        with tarfile.open(fileobj=tar) as archive:
            archive.extractall(into, filter="data")


def engine_urn(records: Mapping[str, Mapping[str, Any]], urn: str, stack: str) -> str:
    """The engine's URN for the resource the older mocks recorded as `urn`: its parents' types
    chained, the stack's left out."""
    rec = records[urn]
    chain = [rec["type"]]
    parent = records.get(rec["parent_urn"])
    while parent is not None and parent["type"] != STACK_TYPE:
        chain.insert(0, parent["type"])
        parent = records.get(parent["parent_urn"])
    project = urn.split("::")[1]
    return f"urn:pulumi:{stack}::{project}::{'$'.join(chain)}::{rec['name']}"


def record_commit(
    ref: str, stack: str, repo: Path = PROJECT_DIR, overrides: Mapping[str, Any] | None = None
) -> list[offline.RecordedResource]:
    """The resources the program of commit `ref` declares for `stack` (its config with
    `overrides`, short keys), with engine URNs."""
    config = {f"{PROJECT_NAME}:{k}": v for k, v in (overrides or {}).items()}
    with tempfile.TemporaryDirectory(prefix="selfheal-lb-base-") as tmp:
        tree = Path(tmp)
        export_tree(ref, tree, repo)
        proc = subprocess.run(
            [sys.executable, "-c", _RECORD, stack, json.dumps(config)],
            cwd=tree,
            env={"PYTHONPATH": str(tree), "PATH": "/usr/bin:/bin", "HOME": str(Path.home())},
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
    if proc.returncode != 0:
        line = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        raise UpgradeUnavailable(f"the program of {ref} did not evaluate: {line}")
    raw = json.loads(proc.stdout.strip().splitlines()[-1])
    records = {r["urn"]: r for r in raw}
    return [
        offline.RecordedResource(
            type=r["type"],
            name=r["name"],
            inputs=r["inputs"],
            custom=r["custom"],
            parent_urn=r["parent_urn"],
            urn=engine_urn(records, r["urn"], stack),
            delete_before_replace=r["delete_before_replace"],
            replace_on_changes=tuple(r["replace_on_changes"]),
        )
        for r in raw
    ]


@dataclass(frozen=True)
class Step:
    name: str
    kind: str
    step: str  # create, same, update, replace or delete
    moved: bool  # found under an alias


def plan_upgrade(
    old: list[offline.RecordedResource], new: list[offline.RecordedResource]
) -> list[Step]:
    """The engine's step for every custom resource of either program."""
    before = {r.urn: r for r in old if r.custom}
    steps: list[Step] = []
    matched: set[str] = set()
    for rec in (r for r in new if r.custom):
        urn = rec.urn if rec.urn in before else next((a for a in rec.aliases if a in before), "")
        matched.add(urn)
        plan = engine.plan(before.get(urn), rec)
        steps.append(Step(rec.name, rec.type, plan.step, bool(urn) and urn != rec.urn))
    steps += [Step(r.name, r.type, "delete", False) for u, r in before.items() if u not in matched]
    return steps


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m cluster.e2e.upgrade",
        description="what pulumi up would do to a stack deployed from BASE (no cluster needed)",
    )
    parser.add_argument("base", help="the commit the stack was deployed from")
    parser.add_argument("--stack", default="dev")
    args = parser.parse_args(argv)
    try:
        old = record_commit(args.base, args.stack)
    except UpgradeUnavailable as err:
        print(f"upgrade: {err}", file=sys.stderr)
        return 2
    new = offline.run_program(offline.stack_config(args.stack), stack=args.stack).resources
    steps = plan_upgrade(old, new)
    for s in steps:
        if s.step != "same" or s.moved:
            print(f"{s.step:8} {s.kind} {s.name}{' (moved: alias)' if s.moved else ''}")
    changed = [s for s in steps if s.step in ("replace", "delete", "create")]
    print(
        f"upgrade from {args.base}: {len(steps)} resources, {len(changed)} created/replaced/deleted"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
