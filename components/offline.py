"""Run the real Pulumi program in-process under the SDK's mocks, without a CLI or a cluster.

Used by the tests and by `make render`. The program (`__main__.py`) runs exactly as
`pulumi up`/`pulumi preview` would run it, with the config the CLI would hand it: the
project defaults from Pulumi.yaml overlaid by Pulumi.<stack>.yaml (or an explicit dict).
Every resource it registers is recorded with its type, name, inputs and parent.
"""

from __future__ import annotations

import json
import runpy
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pulumi
import yaml
from pulumi.runtime import mocks as pulumi_mocks
from pulumi.runtime import settings as pulumi_settings
from pulumi.runtime.stack import run_pulumi_func
from pulumi.runtime.sync_await import _sync_await

PROJECT_DIR = Path(__file__).resolve().parent.parent

# Fake provider outputs: given a recorded resource, return extra outputs the real provider
# would have filled in (status fields, generated names, command stdout, …).
OutputFaker = Callable[["RecordedResource"], Mapping[str, Any]]


@dataclass
class RecordedResource:
    type: str
    name: str
    inputs: dict[str, Any]
    custom: bool
    parent_urn: str
    urn: str

    @property
    def parent_name(self) -> str:
        """Logical name of the parent resource ('' for the stack itself)."""
        return self.parent_urn.rsplit("::", 1)[-1] if self.parent_urn else ""

    @property
    def parent_type(self) -> str:
        if not self.parent_urn:
            return ""
        return self.parent_urn.rsplit("::", 2)[-2].split("$")[-1]


@dataclass
class ProgramRun:
    resources: list[RecordedResource] = field(default_factory=list)
    outputs: dict[str, Any] = field(default_factory=dict)

    def of_type(self, type_: str) -> list[RecordedResource]:
        return [r for r in self.resources if r.type == type_]

    def one(self, type_: str) -> RecordedResource:
        found = self.of_type(type_)
        if len(found) != 1:
            raise AssertionError(f"expected one {type_}, found {len(found)}")
        return found[0]


class _RecordingMonitor(pulumi_mocks.MockMonitor):
    """MockMonitor that also remembers each registration's parent URN."""

    def __init__(self, mocks: _RecordingMocks) -> None:
        super().__init__(mocks)
        self._recorder = mocks

    def RegisterResource(self, request):  # noqa: N802 (gRPC method name)
        self._recorder.pending_parent = request.parent
        self._recorder.pending_urn = self.make_urn(request.parent, request.type, request.name)
        return super().RegisterResource(request)


class _RecordingMocks(pulumi.runtime.Mocks):
    def __init__(self, fake_outputs: OutputFaker | None) -> None:
        self.fake_outputs = fake_outputs
        self.recorded: list[RecordedResource] = []
        self.pending_parent = ""
        self.pending_urn = ""

    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str | None, dict]:
        rec = RecordedResource(
            type=args.typ,
            name=args.name,
            inputs=dict(args.inputs),
            custom=bool(args.custom),
            parent_urn=self.pending_parent,
            urn=self.pending_urn,
        )
        self.recorded.append(rec)
        outputs = dict(args.inputs)
        if self.fake_outputs is not None:
            outputs.update(self.fake_outputs(rec))
        return f"{args.name}-id", outputs

    def call(self, args: pulumi.runtime.MockCallArgs) -> tuple[dict, list | None]:
        return {}, None


def project_name(project_dir: Path = PROJECT_DIR) -> str:
    return yaml.safe_load((project_dir / "Pulumi.yaml").read_text())["name"]


def stack_config(stack: str, project_dir: Path = PROJECT_DIR) -> dict[str, Any]:
    """The config the CLI would give the program: Pulumi.yaml defaults, then the stack file.

    Raises FileNotFoundError with the missing file's name when the stack has no config file.
    """
    project = yaml.safe_load((project_dir / "Pulumi.yaml").read_text())
    name = project["name"]
    merged: dict[str, Any] = {}
    for key, spec in (project.get("config") or {}).items():
        full = key if ":" in key else f"{name}:{key}"
        if isinstance(spec, dict) and "default" in spec:
            merged[full] = spec["default"]
        elif not isinstance(spec, dict):
            merged[full] = spec
    stack_file = project_dir / f"Pulumi.{stack}.yaml"
    if not stack_file.exists():
        raise FileNotFoundError(f"no config file {stack_file.name} for stack '{stack}'")
    stack_doc = yaml.safe_load(stack_file.read_text()) or {}
    for key, value in (stack_doc.get("config") or {}).items():
        merged[key if ":" in key else f"{name}:{key}"] = value
    return merged


def _as_config_strings(config: Mapping[str, Any]) -> dict[str, str]:
    # The engine hands config to the program as strings; structured values as JSON.
    out = {}
    for key, value in config.items():
        if isinstance(value, dict) and "secure" in value:
            value = "<secret>"  # an encrypted value: its plaintext is not needed offline
        out[key] = value if isinstance(value, str) else json.dumps(value)
    return out


def run_program(
    config: Mapping[str, Any],
    *,
    stack: str = "dev",
    preview: bool = False,
    fake_outputs: OutputFaker | None = None,
    program: Path | None = None,
    project_dir: Path = PROJECT_DIR,
) -> ProgramRun:
    """Evaluate the program under mocks with `config` (fully-qualified keys) and record it.

    Exceptions raised by the program (e.g. a ConfigError) propagate unchanged.
    """
    program = program or project_dir / "__main__.py"
    mocks = _RecordingMocks(fake_outputs)
    pulumi.runtime.set_all_config(_as_config_strings(config), secret_keys=[])
    pulumi_settings.SETTINGS.rpc_manager.clear()
    pulumi_settings.SETTINGS.outputs.clear()
    pulumi_settings.ROOT.set(None)
    pulumi_mocks.set_mocks(
        mocks,
        project=project_name(project_dir),
        stack=stack,
        preview=preview,
        monitor=_RecordingMonitor(mocks),
    )
    root = pulumi_settings.get_root_resource()
    run = ProgramRun(resources=mocks.recorded)

    def body() -> None:
        runpy.run_path(str(program), run_name="__main__")
        exported = getattr(root, "outputs", {})
        resolved = pulumi.Output.from_input(exported).future()
        run.outputs = _sync_await(resolved) or {}

    _sync_await(run_pulumi_func(body))
    return run
