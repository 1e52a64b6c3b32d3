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
import dataclasses
import json
import os
import re
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cluster.e2e import engine
from cluster.e2e.checks import CheckFailed
from cluster.e2e.stack import STDOUT_MARK, Deployer, evaluate
from components import offline
from components.metrics_api import CLUSTER_ADDON, MetricsApiState

PROJECT_DIR = Path(__file__).resolve().parents[2]
STACK_TYPE = "pulumi:pulumi:Stack"
PROJECT_NAME = "selfheal-lb"

# Run inside the older tree: its own make-e2e evaluator (its program under its mocks, given the
# real outputs so far), printed as JSON.
_EVALUATE = """
import json, sys
from cluster.e2e.stack import evaluator
from components.metrics_api import MetricsApiState
a = json.loads(sys.stdin.read())
run = evaluator(a["stack"], MetricsApiState(**a["metrics_api"]), **a["overrides"])(
    a["stdout"], a["names"])
print(json.dumps({"outputs": run.outputs, "resources": [
    {"type": r.type, "name": r.name, "inputs": r.inputs, "custom": r.custom,
     "parent_urn": r.parent_urn, "urn": r.urn, "dependencies": list(r.dependencies),
     "provider": r.provider, "delete_before_replace": r.delete_before_replace,
     "replace_on_changes": list(r.replace_on_changes)}
    for r in run.resources]}, default=str))
"""
STDOUT_TOKEN = re.compile(re.escape(STDOUT_MARK) + r"(urn:pulumi:[^@]*)@@")


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


class CommitProgram:
    """The program of an older commit's tree as make e2e's executor takes a program: called with
    the real outputs so far (by this engine's URNs), it returns the run, by this engine's URNs."""

    def __init__(
        self,
        tree: Path,
        stack: str,
        metrics_api: MetricsApiState = CLUSTER_ADDON,
        **overrides: Any,
    ) -> None:
        self.tree, self.stack, self.metrics_api = tree, stack, metrics_api
        self.config = {f"{PROJECT_NAME}:{k}": v for k, v in overrides.items()}
        self.older_urn: dict[str, str] = {}  # this engine's URN -> the older mocks' URN

    def __call__(self, stdout: Mapping[str, str], names: Mapping[str, str]) -> offline.ProgramRun:
        def older(by_urn: Mapping[str, str]) -> dict[str, str]:
            return {self.older_urn.get(urn, urn): value for urn, value in by_urn.items()}

        request = {
            "stack": self.stack,
            "metrics_api": dataclasses.asdict(self.metrics_api),
            "overrides": {k.split(":", 1)[1]: v for k, v in self.config.items()},
            "stdout": older(stdout),
            "names": older(names),
        }
        proc = subprocess.run(
            [sys.executable, "-c", _EVALUATE],
            input=json.dumps(request),
            cwd=self.tree,
            env={**os.environ, "PYTHONPATH": str(self.tree)},
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        if proc.returncode != 0:
            line = (proc.stderr.strip().splitlines() or ["no output"])[-1]
            raise UpgradeUnavailable(f"the program of {self.tree.name} did not evaluate: {line}")
        text = proc.stdout.strip().splitlines()[-1]
        raw = json.loads(text)["resources"]
        records = {r["urn"]: r for r in raw}
        newer = {urn: engine_urn(records, urn, self.stack) for urn in records}
        self.older_urn = {engine: old for old, engine in newer.items()}
        # The stdout tokens in the inputs name the older URNs: name this engine's instead.
        doc = json.loads(
            STDOUT_TOKEN.sub(lambda m: f"{STDOUT_MARK}{newer.get(m[1], m[1])}@@", text)
        )
        return offline.ProgramRun(
            resources=[
                offline.RecordedResource(
                    type=r["type"],
                    name=r["name"],
                    inputs=r["inputs"],
                    custom=r["custom"],
                    parent_urn=newer.get(r["parent_urn"], r["parent_urn"]),
                    urn=newer[old["urn"]],
                    dependencies=tuple(newer.get(d, d) for d in r["dependencies"]),
                    provider=r["provider"],
                    delete_before_replace=r["delete_before_replace"],
                    replace_on_changes=tuple(r["replace_on_changes"]),
                )
                for r, old in zip(doc["resources"], raw, strict=True)
            ],
            outputs=doc["outputs"],
        )


def record_commit(
    ref: str, stack: str, repo: Path = PROJECT_DIR, overrides: Mapping[str, Any] | None = None
) -> list[offline.RecordedResource]:
    """The resources the program of commit `ref` declares for `stack` (its config with
    `overrides`, short keys) before anything ran, by this engine's URNs."""
    with tempfile.TemporaryDirectory(prefix="selfheal-lb-base-") as tmp:
        export_tree(ref, Path(tmp), repo)
        return CommitProgram(Path(tmp), stack, **(overrides or {}))({}, {}).resources


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


def live_uids(d: Deployer) -> dict[str, str]:
    """URN -> the live object's UID, for every Kubernetes object the executor applied."""
    uids = {}
    for urn, obj in d.applied.items():
        meta = obj["metadata"]
        where = ["-n", meta["namespace"]] if meta.get("namespace") else []
        got = d.kc("get", obj["kind"], meta["name"], *where, "-o", "jsonpath={.metadata.uid}",
                   check=False)  # fmt: skip
        uids[urn] = got.stdout.strip()
    return uids


def kept_identity(
    steps: list[Step],
    before: Mapping[str, str],
    after: Mapping[str, str],
    moved_urns: Mapping[str, str],
) -> str:
    """Every object of the older deploy is the same live object after the upgrade (same UID),
    except those the engine's plan replaces (the fortio Job when the load runs again); one line,
    or CheckFailed naming what lost its identity. `moved_urns`: older URN -> URN now."""
    created_or_deleted = [f"{s.step} {s.name}" for s in steps if s.step in ("create", "delete")]
    if created_or_deleted:
        raise CheckFailed(f"the upgrade's plan would {', '.join(created_or_deleted)}")
    replaced = {s.name for s in steps if s.step == "replace"}
    kept, lost = [], []
    for urn, uid in before.items():
        name = urn.rsplit("::", 1)[-1]
        if after.get(moved_urns.get(urn, urn)) == uid:
            kept.append(name)
        elif name not in replaced:
            lost.append(name)
    if lost or not kept:
        raise CheckFailed(f"the upgrade deleted and created again: {', '.join(lost) or 'all'}")
    moved = sorted(s.name for s in steps if s.moved)
    return (
        f"{len(kept)} of {len(before)} objects kept their UID (moved by alias: "
        f"{', '.join(moved)}); replaced as planned: {', '.join(sorted(replaced)) or 'nothing'}"
    )


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
    new = evaluate(args.stack).resources
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
