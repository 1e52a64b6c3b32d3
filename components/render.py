"""`make render`: the stack's Kubernetes objects as YAML, with no cluster and no Pulumi CLI.

Runs the real program (__main__.py) under Pulumi mocks with the stack's real config
(Pulumi.yaml defaults + Pulumi.<stack>.yaml), as `pulumi preview` would evaluate it, and writes

  build/manifests/<kind>-<namespace>-<name>.yaml   one file per Kubernetes object
  build/manifests/all.yaml                         all of them, one multi-document file
  build/summary.yaml                               what is not a Kubernetes object: the image
                                                   build, Helm charts with their values, the
                                                   verification commands, the provider, outputs

The summary sits outside build/manifests/ so manifest scanners only see Kubernetes objects.
Objects a Helm chart creates are rendered by the provider at deploy time; the summary lists
the chart, its pinned version and values instead.

Usage: python -m components.render [--stack dev] [--out build]
A config mistake prints the same one-line error `pulumi up` shows and exits 1.
"""

from __future__ import annotations

import argparse
import re
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from components import offline

K8S_PREFIX = "kubernetes:"
CHART_TYPES = ("kubernetes:helm.sh/v4:Chart", "kubernetes:helm.sh/v3:Release")
SECRET_MARKERS = ("password", "token", "secret")
REDACTED = "<secret>"
# all.yaml in an order `kubectl apply -f` can follow: namespaces and policies first.
APPLY_ORDER = ("Namespace", "NetworkPolicy", "Service", "Deployment", "PodDisruptionBudget")


class _Dumper(yaml.SafeDumper):
    """Block-style YAML; multi-line strings as literal blocks."""


def _str_representer(dumper: yaml.SafeDumper, value: str) -> yaml.Node:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _str_representer)


def dump(doc: Any) -> str:
    return yaml.dump(doc, Dumper=_Dumper, sort_keys=False, default_flow_style=False)


def _plain(value: Any, reveal: bool = False) -> Any:
    """Mock inputs as plain YAML data: secrets redacted (unless `reveal`), values unknown in a
    preview marked."""
    secret, plaintext = offline.secret_value(value)
    if secret and reveal:
        return _plain(plaintext, reveal)
    if secret:
        # A secret mapping (a Secret's stringData) keeps its keys, so the object stays valid.
        return {k: REDACTED for k in plaintext} if isinstance(plaintext, dict) else REDACTED
    if isinstance(value, dict):
        return {k: _plain(v, reveal) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v, reveal) for v in value]
    if offline.is_unknown(value):
        return "<computed>"
    if isinstance(value, float) and value.is_integer():
        return int(value)  # the mocks see every number as a double; Kubernetes wants integers
    return value


def k8s_object(
    rec: offline.RecordedResource, *, reveal_secrets: bool = False
) -> dict[str, Any] | None:
    """The Kubernetes object a recorded resource declares, as the provider would send it.

    Secret values are redacted unless `reveal_secrets` (for applying the object, e.g. the
    state store's Secret in make e2e; never for files written to disk)."""
    if not (rec.custom and rec.type.startswith(K8S_PREFIX)) or "kind" not in rec.inputs:
        return None
    obj = _plain(rec.inputs, reveal_secrets)
    metadata = dict(obj.get("metadata") or {})
    # Auto-named objects get their name from the provider: use the same stand-in the
    # program saw.
    metadata.setdefault("name", f"{rec.name}-{offline.fake_suffix(rec.urn)}")
    ordered = {"apiVersion": obj.pop("apiVersion"), "kind": obj.pop("kind")}
    obj.pop("metadata", None)
    return {**ordered, "metadata": metadata, **obj}


def k8s_objects(run: offline.ProgramRun) -> list[dict[str, Any]]:
    """Every Kubernetes object the program declares, as the provider would send it."""
    objects = [obj for rec in run.resources if (obj := k8s_object(rec)) is not None]
    # Registration order varies run to run (the SDK registers concurrently): sort, so that a
    # render is byte-for-byte reproducible.
    return sorted(objects, key=_apply_position)


def _apply_position(obj: dict[str, Any]) -> tuple[int, str]:
    kind = obj["kind"]
    rank = APPLY_ORDER.index(kind) if kind in APPLY_ORDER else len(APPLY_ORDER)
    return rank, file_name(obj)


def file_name(obj: dict[str, Any]) -> str:
    metadata = obj["metadata"]
    parts = [obj["kind"], metadata.get("namespace") or "cluster", metadata["name"]]
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", "-".join(parts)).lower() + ".yaml"


def _redact(value: Any, key: str = "") -> Any:
    if isinstance(value, dict):
        return {k: _redact(v, k) for k, v in value.items()}
    if isinstance(value, list):
        return [_redact(v) for v in value]
    if value not in (None, "") and any(m in key.lower() for m in SECRET_MARKERS):
        return REDACTED
    return value


def summary(run: offline.ProgramRun, stack: str, project: str) -> dict[str, Any]:
    """The non-Kubernetes side of the stack: image, charts, commands, providers, outputs."""
    doc: dict[str, Any] = {"project": project, "stack": stack}
    images, charts, commands, providers, components = [], [], [], [], []
    for rec in run.resources:
        inputs = _redact(_plain(rec.inputs))
        if rec.type == "docker:index/image:Image":
            images.append({"name": rec.name, **inputs})
        elif rec.type in CHART_TYPES:
            charts.append({"name": rec.name, **inputs})
        elif rec.type == "command:local:Command":
            commands.append({"name": rec.name, **inputs})
        elif rec.type.startswith("pulumi:providers:"):
            providers.append({"name": rec.name, "type": rec.type, **inputs})
        elif not rec.custom and not rec.type.startswith(K8S_PREFIX):
            components.append({"name": rec.name, "type": rec.type, "parent": rec.parent_name})
    for key, items in (
        ("images", images),
        ("charts", charts),
        ("commands", commands),
        ("providers", providers),
        ("components", components),
    ):
        doc[key] = sorted(items, key=lambda item: item["name"])
    doc["outputs"] = _redact(_plain(run.outputs))
    return doc


def render(stack: str, out_dir: Path, project_dir: Path = offline.PROJECT_DIR) -> list[Path]:
    """Evaluate the program for `stack` and write the files; returns the manifest paths."""
    config = offline.stack_config(stack, project_dir)
    run = offline.run_program(config, stack=stack, preview=True, project_dir=project_dir)
    objects = k8s_objects(run)
    manifests = out_dir / "manifests"
    if manifests.exists():
        shutil.rmtree(manifests)  # no stale objects from an earlier render
    manifests.mkdir(parents=True)
    written = []
    for obj in objects:
        path = manifests / file_name(obj)
        if path in written:
            raise RuntimeError(f"two objects render to {path.name}")
        path.write_text(dump(obj))
        written.append(path)
    (manifests / "all.yaml").write_text("---\n".join(dump(obj) for obj in objects))
    project = offline.project_name(project_dir)
    (out_dir / "summary.yaml").write_text(dump(summary(run, stack, project)))
    return written


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m components.render", description=__doc__)
    parser.add_argument("--stack", default="dev")
    parser.add_argument("--out", type=Path, default=offline.PROJECT_DIR / "build")
    args = parser.parse_args(argv)
    try:
        written = render(args.stack, args.out)
    except offline.ProgramFailed as failed:
        for line in failed.errors or [str(failed)]:
            print(f"error: {line}", file=sys.stderr)
        return 1
    except FileNotFoundError as missing:
        print(f"error: {missing}", file=sys.stderr)
        return 1
    print(
        f"render: {len(written)} Kubernetes objects for stack '{args.stack}' in "
        f"{args.out / 'manifests'}; summary in {args.out / 'summary.yaml'}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
