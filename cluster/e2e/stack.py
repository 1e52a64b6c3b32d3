"""The stack, deployed without the Pulumi engine: what `pulumi up` would do, step by step.

The real program (__main__.py) is evaluated under the SDK's mocks with a stack's real config
(components/offline.py, as `make render` does). Every resource it registers is then carried
out the way the engine would (the rules, taken from the providers' source, are in engine.py):

- every resource whose dependencies are done starts at once, several at a time, as the engine
  runs independent steps concurrently: a dependency the program forgot to declare shows here
  as it would under the engine, instead of hiding behind a one-at-a-time order;
- a Kubernetes object is created (a plain create: a name still taken fails it), updated
  server-side (as pulumi-kubernetes v4 does) or replaced as the provider's diff decides, and
  awaited as the provider awaits it (Deployment rolled out, Job complete, LoadBalancer address
  assigned) unless it carries pulumi.com/skipAwait; an object without a name is auto-named,
  keeps its name on update and gets a new one on replacement;
- a docker Image is built with the program's own build inputs;
- a command's `create` string runs in the project directory with its stdin, exactly as the
  program wrote it; one command's stdout that feeds another's stdin (the verification's
  baseline) is passed on, and so is an auto-named object's name.

So the commands and objects cannot drift from what the program declares. `destroy` deletes in
reverse order. Why not the engine: it cannot be installed on this machine by the project's own
means (docs/verified.md).
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from cluster.e2e import engine
from cluster.e2e.engine import COMMAND, SKIP_AWAIT
from cluster.e2e.objects import ObjectError, Objects
from components import offline, render
from components.metrics_api import CLUSTER_ADDON, MetricsApiState

PROJECT_DIR = offline.PROJECT_DIR
IMAGE = "docker:index/image:Image"
STDOUT_MARK = "@@stdout-of:"  # stands in for a command's stdout in the program's run
# Steps carried out at once at most (the engine's default is unbounded; the stack has few).
PARALLEL_STEPS = 8
# pulumi-kubernetes counts a Service's endpoints settled 10 s after their last change.
SETTLE_S = 10.0


class DeployError(RuntimeError):
    """One step failed; the message names the resource and says why in one line."""


def run_script(name: str, *args: str, timeout: float = 900) -> str:
    """Runs scripts/NAME (the offline build base, the Redis image) and returns the last line it
    prints: the image reference it made."""
    try:
        proc = subprocess.run(
            [str(PROJECT_DIR / "scripts" / name), *args],
            capture_output=True,
            text=True,
            env={**os.environ, "PYTHON": sys.executable},
            timeout=timeout,
        )
    except subprocess.TimeoutExpired as exc:
        raise DeployError(f"scripts/{name} did not finish within {timeout:.0f} s") from exc
    if proc.returncode != 0:
        raise DeployError(f"scripts/{name}: {proc.stderr.strip().splitlines()[-1:]}")
    return proc.stdout.strip().splitlines()[-1]


def _stdout_token(rec: offline.RecordedResource) -> str:
    return f"{STDOUT_MARK}{rec.urn}@@"


def outputs_with(
    stdout: Mapping[str, str], names: Mapping[str, str] | None = None
) -> offline.OutputFaker:
    """Provider outputs for the program's run: a command that has run returns its real stdout
    (as the engine hands it to what depends on it); one that has not, a token. An auto-named
    object that exists has its real name (`names`, by URN)."""
    names = names or {}

    def fake(rec: offline.RecordedResource) -> Mapping[str, Any]:
        outputs = offline.realistic_outputs(rec, preview=False)
        if rec.type == COMMAND:
            return {**outputs, "stdout": stdout.get(rec.urn, _stdout_token(rec))}
        if rec.urn in names and "metadata" in outputs:
            return {**outputs, "metadata": {**outputs["metadata"], "name": names[rec.urn]}}
        return outputs

    return fake


# The program, evaluated given the real outputs so far: commands' stdout and auto-names.
Evaluate = Callable[[Mapping[str, str], Mapping[str, str]], offline.ProgramRun]


def evaluator(
    stack: str, metrics_api: MetricsApiState = CLUSTER_ADDON, **overrides: Any
) -> Evaluate:
    """The program for `stack`, evaluated given the commands' real outputs so far.

    `metrics_api` is what the program's own probe (components/metrics_api.py) reported for the
    cluster; `overrides` are config keys set on top of the stack's file (`pulumi config set`).
    """
    config = offline.stack_config(stack)
    project = offline.project_name()
    config.update({f"{project}:{key}": value for key, value in overrides.items()})

    def run(stdout: Mapping[str, str], names: Mapping[str, str]) -> offline.ProgramRun:
        return offline.run_program(
            config,
            stack=stack,
            preview=False,
            fake_outputs=outputs_with(stdout, names),
            metrics_api=metrics_api,
        )

    return run


def evaluate(
    stack: str, metrics_api: MetricsApiState = CLUSTER_ADDON, **overrides: Any
) -> offline.ProgramRun:
    """The program's resources for `stack` before anything has run."""
    return evaluator(stack, metrics_api, **overrides)({}, {})


@dataclass
class StepResult:
    detail: str  # "" = nothing was done (unchanged)
    outputs_changed: bool = False  # the program must be evaluated again to see new outputs
    replaced: dict[str, Any] | None = None  # an old object to delete at the end of `up`


@dataclass
class Deployer:
    """Carries out a program run against the cluster of `kubectl` + `kubeconfig`/`context`."""

    kubectl: str
    kubeconfig: str
    context: str
    timeout: float = 300.0
    log: Callable[[str], None] = print
    stdout: dict[str, str] = field(default_factory=dict)  # URN -> a command's real stdout
    names: dict[str, str] = field(default_factory=dict)  # URN -> an auto-named object's name
    applied: dict[str, dict[str, Any]] = field(default_factory=dict)  # URN -> object, in order
    # Where commands run and images build: this checkout, or an older commit's tree while its
    # program is deployed (cluster/e2e/upgrade.py).
    project_dir: Path = PROJECT_DIR
    _objects: Objects | None = field(default=None, init=False, repr=False)

    # --- kubectl ---------------------------------------------------------------------------
    def kc(
        self, *args: str, stdin: str | None = None, timeout: float | None = None, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        cmd = [self.kubectl, "--kubeconfig", self.kubeconfig, "--context", self.context, *args]
        try:
            proc = subprocess.run(
                cmd, input=stdin, capture_output=True, text=True, timeout=timeout or self.timeout
            )
        except subprocess.TimeoutExpired as exc:
            raise DeployError(f"kubectl {' '.join(args[:3])} timed out") from exc
        if check and proc.returncode != 0:
            last = (proc.stderr.strip().splitlines() or ["(no output)"])[-1]
            raise DeployError(f"kubectl {' '.join(args[:3])}: {last}")
        return proc

    def env(self) -> dict[str, str]:
        return {**os.environ, "KUBECONFIG": self.kubeconfig}

    # --- one resource ----------------------------------------------------------------------
    def create(self, rec: offline.RecordedResource) -> str:
        """Creates the resource afresh (a Kubernetes object: a plain create, auto-named if it
        has no name); returns a line saying what was done."""
        return self._carry_out(rec, update=False)

    def _carry_out(self, rec: offline.RecordedResource, *, update: bool) -> str:
        if rec.type == COMMAND:
            return self._command(rec)
        if rec.type == IMAGE:
            return self._image(rec)
        if rec.type.startswith("random:"):
            # Generated by the provider under the engine; under the mocks a stand-in value has
            # already reached what uses it. Runs that care set the value in config instead.
            return "value from the program's evaluation"
        obj = render.k8s_object(rec, reveal_secrets=True)  # a Secret is applied with its data
        if obj is None:
            raise DeployError(f"{rec.name}: no way to deploy a {rec.type} without the engine")
        meta = obj["metadata"]
        if not (rec.inputs.get("metadata") or {}).get("name"):
            # Auto-naming as the provider does it: <name>-<8 hex>, kept on update.
            live = self.applied.get(rec.urn) if update else None
            fresh = f"{rec.name}-{secrets.token_hex(4)}"
            meta["name"] = live["metadata"]["name"] if live else fresh
            meta["annotations"] = {**(meta.get("annotations") or {}), engine.AUTONAMED: "true"}
            self.names[rec.urn] = meta["name"]
        if update and rec.ignore_changes:
            self._keep_live(obj, rec.ignore_changes)
        if update:
            self.kc(
                "apply", "--server-side", "--field-manager", "pulumi-kubernetes",
                "--force-conflicts", "-f", "-", stdin=yaml.safe_dump(obj),
            )  # fmt: skip
        else:
            self._create_object(obj)
        self.applied[rec.urn] = obj
        return self._await(obj)

    def _keep_live(self, obj: dict[str, Any], paths: tuple[str, ...]) -> None:
        """`ignoreChanges` under server-side apply: the ignored fields are sent as they are live
        (pulumi-kubernetes re-sends the live value, or leaves the field to the manager that owns
        it), so an HPA's replica count is never reset by an update."""
        meta = obj["metadata"]
        got = self.kc("get", obj["kind"], meta["name"], "-n", meta.get("namespace", ""),
                      "-o", "json", check=False)  # fmt: skip
        live = json.loads(got.stdout) if got.returncode == 0 else {}
        for path in paths:
            *parents, last = path.split(".")
            source, target = live, obj
            for part in parents:
                source = source.get(part) if isinstance(source, dict) else None
                target = target.setdefault(part, {}) if isinstance(target, dict) else None
            if isinstance(source, dict) and last in source and isinstance(target, dict):
                target[last] = source[last]

    @property
    def objects(self) -> Objects:
        """The API client that creates and deletes objects as the provider does (objects.py)."""
        if self._objects is None:
            self._objects = Objects(self.kubeconfig, self.context)
        return self._objects

    def _create_object(self, obj: dict[str, Any]) -> None:
        try:
            self.objects.create(obj)
        except ObjectError as err:
            raise DeployError(str(err)) from None

    def _substitute(self, text: str) -> str:
        for urn, out in self.stdout.items():
            text = text.replace(f"{STDOUT_MARK}{urn}@@", out)
        if STDOUT_MARK in text:
            raise DeployError("a command's input refers to the output of one that has not run")
        return text

    def _command(self, rec: offline.RecordedResource) -> str:
        inputs = rec.inputs
        script = self._substitute(str(inputs["create"]))
        stdin = self._substitute(str(inputs["stdin"])) if inputs.get("stdin") else None
        env = {**self.env(), **{k: str(v) for k, v in (inputs.get("environment") or {}).items()}}
        cwd = self.project_dir / inputs["dir"] if inputs.get("dir") else self.project_dir
        try:
            proc = subprocess.run(
                ["/bin/sh", "-c", script],
                input=stdin,
                capture_output=True,
                text=True,
                cwd=cwd,
                env=env,
                timeout=self.timeout,
            )
        except subprocess.TimeoutExpired as exc:
            raise DeployError(f"command {rec.name} timed out after {self.timeout:.0f} s") from exc
        # local.Command strips one trailing newline from stdout; so does the report parser.
        self.stdout[rec.urn] = proc.stdout.rstrip("\n")
        if proc.returncode != 0:
            last = (proc.stderr.strip().splitlines() or ["(no output)"])[-1]
            raise DeployError(f"command {rec.name} exited {proc.returncode}: {last}")
        return f"exit 0, {len(proc.stdout)} bytes of output"

    def _image(self, rec: offline.RecordedResource) -> str:
        build = rec.inputs.get("build") or {}
        name = rec.inputs["imageName"]
        cmd = ["docker", "build", "-q", "-t", name, "-f", build.get("dockerfile", "Dockerfile")]
        for key, value in (build.get("args") or {}).items():
            cmd += ["--build-arg", f"{key}={value}"]
        cmd.append(build.get("context", "."))
        proc = subprocess.run(
            cmd, capture_output=True, text=True, cwd=self.project_dir, timeout=self.timeout
        )
        if proc.returncode != 0:
            last = (proc.stderr.strip().splitlines() or ["(no output)"])[-1]
            raise DeployError(f"docker build of {name} failed: {last}")
        return name

    def _await(self, obj: dict[str, Any]) -> str:
        """Waits as pulumi-kubernetes does for the kinds this stack creates."""
        meta = obj["metadata"]
        if (meta.get("annotations") or {}).get(SKIP_AWAIT) == "true":
            return "applied (skipAwait)"
        kind, name, ns = obj["kind"], meta["name"], meta.get("namespace")
        where = ["-n", ns] if ns else []
        wait = f"--timeout={int(self.timeout)}s"
        if kind == "Deployment":
            self.kc(
                "rollout", "status", f"deployment/{name}", *where, wait, timeout=self.timeout + 10
            )
            return "rolled out"
        if kind == "Job":
            self._await_job(name, ns)
            return "complete"
        spec = obj.get("spec") or {}
        if kind == "Service" and spec.get("selector") and spec.get("clusterIP") != "None":
            self._await_endpoints(name, ns)
        if kind == "Service" and spec.get("type") == "LoadBalancer":
            self.kc(
                "wait",
                f"service/{name}",
                *where,
                wait,
                "--for=jsonpath={.status.loadBalancer.ingress[0].ip}",
                timeout=self.timeout + 10,
            )
            ip = self.kc(
                "get",
                f"service/{name}",
                *where,
                "-o",
                "jsonpath={.status.loadBalancer.ingress[0].ip}",
            ).stdout
            return f"load balancer {ip}"
        return "endpoints settled" if kind == "Service" and spec.get("selector") else "applied"

    def _await_endpoints(self, service: str, ns: str) -> None:
        """pulumi-kubernetes' Service awaiter: ready once its Endpoints have gone SETTLE_S
        without a change and list no pod that is not ready. No pod at all passes (a store
        whose pods wait for a Secret that waits for this Service must not deadlock); a pod
        that exists but is not ready yet holds it (up to the timeout)."""
        deadline = time.monotonic() + self.timeout
        version, since, pending = None, time.monotonic(), True
        while time.monotonic() < deadline:
            proc = self.kc("get", "endpoints", service, "-n", ns, "-o", "json", check=False)
            doc = json.loads(proc.stdout) if proc.returncode == 0 else {}
            current = (doc.get("metadata") or {}).get("resourceVersion")
            if current != version:
                version, since = current, time.monotonic()
            subsets = doc.get("subsets") or []
            pending = any(sub.get("notReadyAddresses") for sub in subsets)
            if current is not None and not pending and time.monotonic() - since >= SETTLE_S:
                return
            time.sleep(1)
        if pending:
            raise DeployError(f"service {service}: pods not ready within {self.timeout:.0f} s")

    def _await_job(self, name: str, ns: str) -> None:
        deadline = time.monotonic() + self.timeout
        while time.monotonic() < deadline:
            job = json.loads(self.kc("get", "job", name, "-n", ns, "-o", "json").stdout)
            for cond in (job.get("status") or {}).get("conditions") or []:
                if cond.get("status") == "True" and cond["type"] == "Complete":
                    return
                if cond.get("status") == "True" and cond["type"] == "Failed":
                    raise DeployError(f"job {name} failed: {cond.get('message', '')}")
            time.sleep(1)
        raise DeployError(f"job {name} did not complete within {self.timeout:.0f} s")

    # --- the whole stack -------------------------------------------------------------------
    def up(
        self,
        program: Evaluate | offline.ProgramRun,
        previous: Mapping[str, offline.RecordedResource] | None = None,
    ) -> tuple[offline.ProgramRun, list[str]]:
        """Brings the cluster to the program; returns its final run and the names acted on.

        As the engine does: every resource whose dependencies are done starts at once (at
        most PARALLEL_STEPS together); a command's real stdout and an auto-named object's name
        go back into the program (it is evaluated again with them), so what depends on them
        sees the real value — e.g. the fortio Job stamped with the baseline's digest. With
        `previous` (the last run's resources by URN) it is an update: each resource gets the
        step engine.plan gives (same, update, replace), and at the end the objects replaced
        create-first and those the program no longer declares are deleted, newest first. A
        fixed ProgramRun (no re-evaluation) also works. The first failure stops new steps;
        those under way finish, then it is raised (as the engine does).
        """
        evaluate: Evaluate = program if callable(program) else (lambda _s, _n: program)
        run = evaluate(self.stdout, self.names)
        previous, moved = self._follow_aliases(run, previous or {})
        if moved:  # the moved commands' stdout and objects' names now reach the program
            run = evaluate(self.stdout, self.names)
        done: set[str] = set()
        acted: list[str] = []
        leftovers: list[dict[str, Any]] = []  # old objects of create-first replacements
        failures: list[DeployError] = []
        running: dict[Future[StepResult], offline.RecordedResource] = {}
        with ThreadPoolExecutor(max_workers=PARALLEL_STEPS) as pool:
            while True:
                if not failures:
                    for rec in self._startable(run, done, running.values()):
                        running[pool.submit(self._step, rec, previous.get(rec.urn))] = rec
                if not running:
                    break
                finished, _ = wait(list(running), return_when=FIRST_COMPLETED)
                evaluate_again = False
                for future in finished:
                    rec = running.pop(future)
                    try:
                        result = future.result()
                    except DeployError as err:
                        failures.append(err)
                        continue
                    done.add(rec.urn)
                    if result.detail:
                        acted.append(rec.name)
                    if result.replaced is not None:
                        leftovers.append(result.replaced)
                    evaluate_again |= result.outputs_changed
                if evaluate_again:
                    run = evaluate(self.stdout, self.names)  # the rest sees the new outputs
        if failures:
            raise failures[0]
        waiting = [r.name for r in _custom(run) if r.urn not in done]
        if waiting:
            raise DeployError(f"dependency cycle among {', '.join(waiting)}")
        declared = {r.urn for r in _custom(run)}
        gone = [u for u in reversed(list(self.applied)) if previous and u not in declared]
        for obj in [*reversed(leftovers), *(self.applied.pop(u) for u in gone)]:
            self._delete(obj)
        return run, acted

    def _follow_aliases(
        self, run: offline.ProgramRun, previous: Mapping[str, offline.RecordedResource]
    ) -> tuple[dict[str, offline.RecordedResource], bool]:
        """As the engine does with `aliases`: a resource declared under a new URN whose alias
        names one in the state takes that state over (an update, not a create and a delete)."""
        moved = {
            alias: rec.urn
            for rec in _custom(run)
            if rec.urn not in previous
            for alias in rec.aliases
            if alias in previous
        }
        for table in (self.applied, self.stdout, self.names):
            rekeyed = {moved.get(urn, urn): value for urn, value in table.items()}
            table.clear()
            table.update(rekeyed)
        return {moved.get(urn, urn): rec for urn, rec in previous.items()}, bool(moved)

    def _startable(
        self,
        run: offline.ProgramRun,
        done: set[str],
        running: Any,
    ) -> list[offline.RecordedResource]:
        """Resources not yet started whose dependencies (among this run's) are all done."""
        custom = _custom(run)
        declared = {r.urn for r in custom}
        busy = {r.urn for r in running}
        return [
            r
            for r in custom
            if r.urn not in done
            and r.urn not in busy
            and all(d in done or d not in declared for d in r.dependencies)
        ]

    def _step(
        self, rec: offline.RecordedResource, old: offline.RecordedResource | None
    ) -> StepResult:
        """One resource's step, as engine.plan decides it; runs on a worker thread."""
        step = engine.plan(old, rec)
        if step.step == engine.SAME:
            return StepResult("")
        replaced = None
        if step.step == engine.REPLACE and rec.urn in self.applied:
            if step.delete_first:
                self._delete(self.applied.pop(rec.urn))
            else:
                replaced = self.applied.pop(rec.urn)  # deleted once the update is done
        t0 = time.monotonic()
        before = (self.stdout.get(rec.urn), self.names.get(rec.urn))
        detail = self._carry_out(rec, update=step.step == engine.UPDATE)
        if step.step == engine.REPLACE:
            how = "deleted first" if step.delete_first else "created first"
            detail = f"replaced ({how}; {', '.join(step.reasons)}): {detail}"
        kind = rec.type.split(":")[-1]
        self.log(f"e2e:   {kind} {rec.name}: {detail} ({time.monotonic() - t0:.1f} s)")
        after = (self.stdout.get(rec.urn), self.names.get(rec.urn))
        return StepResult(detail, outputs_changed=after != before, replaced=replaced)

    def destroy(self) -> None:
        """Deletes what `up` applied, newest first, each deletion awaited as the provider does."""
        for urn in reversed(list(self.applied)):
            self._delete(self.applied.pop(urn))

    def _delete(self, obj: Mapping[str, Any]) -> None:
        """Deletes as the provider does: cascading in the foreground (unless the object says
        otherwise), awaited until gone, except where skipAwait leaves its deletion unawaited."""
        wait_s = self.timeout if engine.awaits_deletion(obj) else 0.0
        try:
            self.objects.delete(obj, propagation=engine.propagation(obj), wait_s=wait_s)
        except ObjectError as err:
            raise DeployError(str(err)) from None


def _custom(run: offline.ProgramRun) -> list[offline.RecordedResource]:
    """The resources the engine carries out steps for (not components, not providers)."""
    return [r for r in run.resources if r.custom and not r.type.startswith("pulumi:providers:")]


def write_report(path: Path, report: Mapping[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2, sort_keys=True) + "\n")
