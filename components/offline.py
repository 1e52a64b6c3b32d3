"""Run the real Pulumi program in-process under the SDK's mocks, without a CLI or a cluster.

Used by the tests and by `make render`. The program (`__main__.py`) runs exactly as
`pulumi up`/`pulumi preview` would run it, with the config the CLI would hand it: the
project defaults from Pulumi.yaml overlaid by Pulumi.<stack>.yaml (or an explicit dict).
Every resource it registers is recorded with its type, name, inputs and parent.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import runpy
import threading
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

from components import helm_template, metrics_plan
from components.metrics_api import CLUSTER_ADDON, MetricsApiState
from components.settings import Settings, load_settings

PROJECT_DIR = Path(__file__).resolve().parent.parent
# What the mocks see for a value that is unknown during a preview.
UNKNOWN = pulumi.runtime.rpc.UNKNOWN
_SIG_KEY = "4dabf18193072939515e22adb298388d"  # pulumi.runtime.rpc._special_sig_key
_SECRET_SIG = "1b47061264138c4ac30d75fd1eb44270"  # pulumi.runtime.rpc._special_secret_sig
HELM_TEMPLATE_INVOKE = "kubernetes:helm:template"


def is_unknown(value: Any) -> bool:
    """A value not known during a preview (as the mocks receive it, or as resolved here)."""
    return isinstance(value, pulumi.output.Unknown) or (isinstance(value, str) and value == UNKNOWN)


def secret_value(value: Any) -> tuple[bool, Any]:
    """(True, plaintext) for an input the program marked secret, else (False, value)."""
    if isinstance(value, dict) and value.get(_SIG_KEY) == _SECRET_SIG:
        return True, value.get("value")
    return False, value


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
    dependencies: tuple[str, ...] = ()  # URNs this registration waited for (depends_on, inputs)
    provider: str = ""  # provider reference "<urn>::<id>" ("" = the default provider)
    retain_on_delete: bool = False
    delete_before_replace: bool = False  # the resource option, as the engine receives it
    replace_on_changes: tuple[str, ...] = ()
    # URNs this resource had before (its `aliases` option and those inherited from its parent's),
    # as the engine computes them: the step is planned against the state found under any of them.
    aliases: tuple[str, ...] = ()
    ignore_changes: tuple[str, ...] = ()  # input paths the engine leaves as they are live

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
    errors: list[str] = field(default_factory=list)  # pulumi.log.error messages
    warnings: list[str] = field(default_factory=list)  # pulumi.log.warn messages

    def named(self, name: str) -> RecordedResource:
        found = [r for r in self.resources if r.name == name]
        if len(found) != 1:
            raise AssertionError(f"expected one resource named {name}, found {len(found)}")
        return found[0]

    def children_of(self, parent: RecordedResource) -> list[RecordedResource]:
        return [r for r in self.resources if r.parent_urn == parent.urn]

    def of_type(self, type_: str) -> list[RecordedResource]:
        return [r for r in self.resources if r.type == type_]

    def one(self, type_: str) -> RecordedResource:
        found = self.of_type(type_)
        if len(found) != 1:
            raise AssertionError(f"expected one {type_}, found {len(found)}")
        return found[0]


class ProgramFailed(Exception):
    """The program stopped itself (sys.exit) after reporting errors, as on a config mistake.

    str() is the reported error lines: what `pulumi up` would show, without a traceback.
    """

    def __init__(self, code: int, errors: list[str]) -> None:
        super().__init__("\n".join(errors) or f"the program exited with code {code}")
        self.code = code
        self.errors = errors


class _RecordingMonitor(pulumi_mocks.MockMonitor):
    """MockMonitor that also remembers each registration's parent, dependencies and provider.

    The SDK registers resources from several threads at once; MockMonitor calls
    `new_resource` on the registering thread, so the request is handed over per thread.
    """

    def __init__(self, mocks: _RecordingMocks) -> None:
        super().__init__(mocks)
        self._recorder = mocks

    def make_urn(self, parent: str, type_: str, name: str) -> str:
        """The URN as the engine makes it: the parent's whole type chain, not only its own type
        (MockMonitor keeps only the last link), so moving a component moves its children too.
        The stack itself is left out, as the engine leaves it out."""
        parent_type = parent.split("::")[2] if parent else ""
        if parent_type and parent_type != "pulumi:pulumi:Stack":
            type_ = parent_type + "$" + type_
        return "urn:pulumi:" + "::".join([pulumi.get_stack(), pulumi.get_project(), type_, name])

    def _alias_urns(self, request: Any) -> tuple[str, ...]:
        """The engine's alias URNs for a registration: each alias spec with the resource's own
        name, type and parent filling what it leaves out, plus one per alias of the parent (a
        moved component's children keep their identity without aliases of their own)."""
        parent_aliases = self._recorder.aliases_of.get(request.parent, ())
        urns: list[str] = []
        for alias in request.aliases:
            if alias.urn:
                urns.append(alias.urn)
                continue
            spec = alias.spec
            name, type_ = spec.name or request.name, spec.type or request.type
            if spec.noParent:
                parents = [""]
            elif spec.parentUrn:
                parents = [spec.parentUrn]
            else:
                parents = [request.parent, *parent_aliases]
            urns += [self.make_urn(p, type_, name) for p in parents]
        urns += [self.make_urn(p, request.type, request.name) for p in parent_aliases]
        return tuple(dict.fromkeys(urns))

    def RegisterResource(self, request):  # the gRPC method's name
        pending = self._recorder.pending
        pending.request = request
        pending.urn = self.make_urn(request.parent, request.type, request.name)
        pending.aliases = self._alias_urns(request)
        with self._recorder.lock:
            self._recorder.aliases_of[pending.urn] = pending.aliases
        try:
            return super().RegisterResource(request)
        finally:
            pending.request = None


class _RecordingMocks(pulumi.runtime.Mocks):
    def __init__(self, fake_outputs: OutputFaker | None) -> None:
        self.fake_outputs = fake_outputs
        self.recorded: list[RecordedResource] = []
        self.pending = threading.local()  # the registration being handled on this thread
        self.lock = threading.Lock()
        self.aliases_of: dict[str, tuple[str, ...]] = {}  # URN -> its alias URNs

    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str | None, dict]:
        request = getattr(self.pending, "request", None)
        rec = RecordedResource(
            type=args.typ,
            name=args.name,
            inputs=dict(args.inputs),
            custom=bool(args.custom),
            parent_urn=request.parent if request is not None else "",
            urn=self.pending.urn if request is not None else "",
            dependencies=tuple(request.dependencies) if request is not None else (),
            provider=request.provider if request is not None else "",
            retain_on_delete=bool(request.retainOnDelete) if request is not None else False,
            delete_before_replace=request is not None and bool(request.deleteBeforeReplace),
            replace_on_changes=tuple(request.replaceOnChanges) if request is not None else (),
            aliases=self.pending.aliases if request is not None else (),
            ignore_changes=tuple(request.ignoreChanges) if request is not None else (),
        )
        with self.lock:
            self.recorded.append(rec)
        outputs = dict(args.inputs)
        if self.fake_outputs is not None:
            outputs.update(self.fake_outputs(rec))
        return f"{args.name}-id", outputs

    def call(self, args: pulumi.runtime.MockCallArgs) -> tuple[dict, list | None]:
        if args.token == HELM_TEMPLATE_INVOKE:
            # helm.v3.Chart asks the provider to render the chart: the pinned helm does it here.
            opts = json.loads(args.args["jsonOpts"])
            return {"result": helm_template.template(opts)}, []
        return {}, None


class _LogCollector(logging.Handler):
    def __init__(self, errors: list[str], warnings: list[str]) -> None:
        super().__init__(level=logging.WARNING)
        self.errors = errors
        self.warnings = warnings

    def emit(self, record: logging.LogRecord) -> None:
        target = self.errors if record.levelno >= logging.ERROR else self.warnings
        target.append(record.getMessage())


def fake_suffix(urn: str) -> str:
    """Stands in for pulumi-kubernetes' random auto-name suffix: 8 characters, deterministic."""
    return hashlib.sha256(urn.encode()).hexdigest()[:8]


def realistic_outputs(rec: RecordedResource, *, preview: bool) -> dict[str, Any]:
    """What the real providers add to a resource's inputs, as far as the program reads it.

    Kubernetes objects without metadata.name get `<name>-<suffix>` (auto-naming), docker
    images report a digest, random passwords a stand-in value, and commands print nothing
    during a preview (their stdout is unknown there) — leaving stdout out makes the SDK treat
    it as unknown, as the engine does.
    """
    if rec.type.startswith("kubernetes:") and rec.custom and "metadata" in rec.inputs:
        metadata = dict(rec.inputs.get("metadata") or {})
        metadata.setdefault("name", f"{rec.name}-{fake_suffix(rec.urn)}")
        return {"metadata": metadata}
    if rec.type == "random:index/randomPassword:RandomPassword":
        # A stand-in of the requested length (the real one is random, and secret).
        length = int(rec.inputs.get("length") or 16)
        return {"result": hashlib.sha256(rec.urn.encode()).hexdigest()[:length]}
    if rec.type == "random:index/randomBytes:RandomBytes":
        # A stand-in salt of the requested length (hex), deterministic per resource.
        length = int(rec.inputs.get("length") or 32)
        stand_in = hashlib.sha256(b"bytes:" + rec.urn.encode()).digest() * (length // 32 + 1)
        raw = stand_in[:length]
        return {"hex": raw.hex(), "base64": base64.b64encode(raw).decode()}
    if rec.type == "docker:index/image:Image":
        digest = hashlib.sha256(rec.urn.encode()).hexdigest()
        return {"repoDigest": f"{rec.inputs.get('imageName', '').split(':')[0]}@sha256:{digest}"}
    return {}


async def _resolve(value: Any) -> Any:
    """One stack output's value; UNKNOWN when it is unknown (during a preview)."""
    output = pulumi.Output.from_input(value)
    if not await output.is_known():
        return UNKNOWN
    return await output.future()


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
    metrics_api: MetricsApiState = CLUSTER_ADDON,
    chart: Path | None = None,
    chart_problem: str = "",
    render_without_chart: bool = False,
) -> ProgramRun:
    """Evaluate the program under mocks with `config` (fully-qualified keys) and record it.

    What the real program learns outside its config is given instead: `metrics_api`, the
    cluster's metrics.k8s.io as the probe would report it (default: served by a cluster addon,
    as on minikube with the walkthrough's addon: the stack installs nothing), and `chart`, the
    verified metrics-server archive for the cases that install it (None: not to be had, with
    `chart_problem` as the reason; `render_without_chart` makes that a warning).

    A program that reports an error and exits (a config mistake) raises ProgramFailed with
    the reported lines; other exceptions raised by the program propagate unchanged.
    """
    program = program or project_dir / "__main__.py"
    if fake_outputs is None:

        def fake_outputs(rec: RecordedResource) -> Mapping[str, Any]:
            return realistic_outputs(rec, preview=preview)

    mocks = _RecordingMocks(fake_outputs)
    errors: list[str] = []
    warnings: list[str] = []
    logger = logging.getLogger(f"selfheal-lb.offline.{id(mocks)}")
    logger.propagate = False
    logger.addHandler(_LogCollector(errors, warnings))
    pulumi.runtime.set_all_config(_as_config_strings(config), secret_keys=[])
    pulumi_settings.SETTINGS.rpc_manager.clear()
    pulumi_settings.SETTINGS.outputs.clear()
    pulumi_settings.ROOT.set(None)
    pulumi_mocks.set_mocks(
        mocks,
        project=project_name(project_dir),
        stack=stack,
        preview=preview,
        logger=logger,
        monitor=_RecordingMonitor(mocks),
    )
    root = pulumi_settings.get_root_resource()
    run = ProgramRun(resources=mocks.recorded, errors=errors, warnings=warnings)
    metrics_plan.OFFLINE = metrics_plan.OfflineFacts(
        metrics_api=metrics_api,
        chart=chart,
        chart_problem=chart_problem or "no metrics-server chart archive was given",
        render_without_chart=render_without_chart,
    )

    def body() -> None:
        runpy.run_path(str(program), run_name="__main__")
        exported = getattr(root, "outputs", {}) or {}
        run.outputs = {key: _sync_await(_resolve(value)) for key, value in exported.items()}

    try:
        _sync_await(run_pulumi_func(body))
    except SystemExit as exit_:
        code = exit_.code if isinstance(exit_.code, int) else 1
        if code != 0:
            raise ProgramFailed(code, errors) from None
    finally:
        metrics_plan.OFFLINE = None
    return run


def settings_for(stack: str, project_dir: Path = PROJECT_DIR) -> Settings:
    """The stack's parsed Settings (raises ConfigError / FileNotFoundError), without a program."""
    config = stack_config(stack, project_dir)
    project = project_name(project_dir)
    pulumi.runtime.set_all_config(_as_config_strings(config), secret_keys=[])
    return load_settings(
        pulumi.Config(project),
        project=project,
        stack=stack,
        app_dir=Path("app"),
        present_keys=config.keys(),
    )
