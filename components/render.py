"""`make render`: the stack's Kubernetes objects as YAML, with no cluster and no Pulumi CLI.

Runs the real program (__main__.py) under Pulumi mocks with the stack's real config
(Pulumi.yaml defaults + Pulumi.<stack>.yaml), as `pulumi preview` would evaluate it, and writes

  build/manifests/<kind>-<namespace>-<name>.yaml   one file per Kubernetes object
  build/manifests/all.yaml                         all of them, one multi-document file
  build/summary.yaml                               what is not a Kubernetes object: the image
                                                   build, Helm charts with their values, the
                                                   verification commands, the provider, outputs
  build/dashboards/<uid>.json                      the Grafana dashboard the stack ships (its
                                                   ConfigMap's content), ready to import

The summary sits outside build/manifests/ so manifest scanners only see Kubernetes objects.
metrics-server's chart objects are among the manifests: rendered from the verified archive
in the cache (fetched once, components/chart_cache.py) by the pinned helm
(components/helm_template.py). Where the archive or helm cannot be had, one line says so and
the rest is rendered.

The render assumes a cluster without a metrics API (the stack then installs the chart);
`--metrics-api available` renders what the stack applies on a cluster that has one (minikube's
addon): no metrics-server objects.

Usage: python -m components.render [--stack dev] [--out build] [--metrics-api absent|available]
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

from components import chart_cache, helm_template, metrics_plan, offline
from components.metrics_api import ABSENT, CLUSTER_ADDON, MetricsApiState
from components.monitoring import DASHBOARD_LABEL

K8S_PREFIX = "kubernetes:"
V3_CHART = "kubernetes:helm.sh/v3:Chart"
CHART_TYPES = (
    "kubernetes:helm.sh/v4:Chart",
    "kubernetes:helm.sh/v3:Release",
)
SECRET_MARKERS = ("password", "token", "secret")
REDACTED = "<secret>"
last_warnings: list[str] = []  # the program's warnings during the last render()
# all.yaml in an order `kubectl apply -f` can follow: namespaces, quota/limits and policies first.
APPLY_ORDER = (
    "Namespace", "LimitRange", "ResourceQuota", "NetworkPolicy", "Service", "Deployment",
    "PodDisruptionBudget",
)  # fmt: skip


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
    # Registration order varies run to run (the SDK registers concurrently): sort, so that a
    # render is byte-for-byte reproducible.
    return sorted(_objects_of(run.resources), key=_apply_position)


def _objects_of(records: list[offline.RecordedResource]) -> list[dict[str, Any]]:
    return [obj for rec in records if (obj := k8s_object(rec)) is not None]


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
        elif rec.type == V3_CHART:
            # Its objects are among the manifests; here the pinned archive they came from.
            children = [r for r in run.resources if r.parent_urn == rec.urn]
            pin = metrics_plan.CHART
            charts.append(
                {
                    "name": rec.name,
                    "chart": pin.name,
                    "version": pin.version,
                    "sha256": pin.sha256,
                    "objects": sorted(file_name(obj) for obj in _objects_of(children)),
                    "retainOnDelete": all(r.retain_on_delete for r in children),
                }
            )
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
    doc["warnings"] = list(run.warnings)  # e.g. the chart that could not be had
    return doc


def chart_for_render(cache_dir: Path | None = None) -> tuple[Path | None, str]:
    """(verified archive, "") or (None, one line saying why its objects cannot be rendered)."""
    pin = metrics_plan.CHART
    try:
        helm_template.helm_binary()
    except helm_template.HelmUnavailable as missing:
        return None, f"{pin.name} chart {pin.version} cannot be rendered: {missing}"
    try:
        return chart_cache.ensure(pin, cache_dir, timeout=15), ""
    except chart_cache.ChartUnavailable as missing:
        return None, str(missing)


# The fortio Job is stamped with the digest of the baseline document, which only exists once
# `loadgen snapshot` has run; the manifests get the digest of this stand-in, so they hold a
# plain string where the cluster will see the real digest.
SNAPSHOT_STAND_IN = "<the baseline document `python -m loadgen snapshot` prints>"


def _outputs(rec: offline.RecordedResource) -> dict[str, Any]:
    out = offline.realistic_outputs(rec, preview=True)
    if rec.type == "command:local:Command" and rec.name.endswith("-snapshot"):
        out["stdout"] = SNAPSHOT_STAND_IN
    return out


def render(
    stack: str,
    out_dir: Path,
    project_dir: Path = offline.PROJECT_DIR,
    *,
    metrics_api: MetricsApiState = ABSENT,
    chart: tuple[Path | None, str] | None = None,
) -> list[Path]:
    """Evaluate the program for `stack` and write the files; returns the manifest paths.

    `chart` is (archive, why-not) as `chart_for_render()` returns it (looked up when None).
    The program's warnings (e.g. the chart left out) are in `last_warnings` afterwards.
    """
    config = offline.stack_config(stack, project_dir)
    archive, problem = chart if chart is not None else chart_for_render()
    run = offline.run_program(
        config,
        stack=stack,
        preview=True,
        project_dir=project_dir,
        metrics_api=metrics_api,
        chart=archive,
        chart_problem=problem,
        render_without_chart=True,
        fake_outputs=_outputs,
    )
    last_warnings[:] = run.warnings
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
    write_dashboards(objects, out_dir / "dashboards")
    return written


def write_dashboards(objects: list[dict[str, Any]], out: Path) -> list[Path]:
    """The content of every ConfigMap that carries the Grafana sidecar's dashboard label."""
    if out.exists():
        shutil.rmtree(out)
    written = []
    for obj in objects:
        obj_labels = obj["metadata"].get("labels") or {}
        if obj["kind"] != "ConfigMap" or DASHBOARD_LABEL[0] not in obj_labels:
            continue
        out.mkdir(parents=True, exist_ok=True)
        for key, text in (obj.get("data") or {}).items():
            path = out / key
            path.write_text(text)
            written.append(path)
    return written


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m components.render", description=__doc__)
    parser.add_argument("--stack", default="dev")
    parser.add_argument("--out", type=Path, default=offline.PROJECT_DIR / "build")
    parser.add_argument("--metrics-api", choices=("absent", "available"), default="absent")
    args = parser.parse_args(argv)
    state = CLUSTER_ADDON if args.metrics_api == "available" else ABSENT
    try:
        written = render(args.stack, args.out, metrics_api=state)
    except offline.ProgramFailed as failed:
        for line in failed.errors or [str(failed)]:
            print(f"error: {line}", file=sys.stderr)
        return 1
    except FileNotFoundError as missing:
        print(f"error: {missing}", file=sys.stderr)
        return 1
    for warning in last_warnings:
        print(f"render: {warning}", file=sys.stderr)
    print(
        f"render: {len(written)} Kubernetes objects for stack '{args.stack}' in "
        f"{args.out / 'manifests'}; summary in {args.out / 'summary.yaml'}; Grafana dashboard "
        f"(when monitoring is on) in {args.out / 'dashboards'}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
