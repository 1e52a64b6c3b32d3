"""The stack, deployed without the Pulumi engine: what `pulumi up` would do, step by step.

The real program (__main__.py) is evaluated under the SDK's mocks with a stack's real config
(components/offline.py, as `make render` does). Every resource it registers is then carried
out in the order its recorded dependencies give, the way the engine would:

- a Kubernetes object is applied server-side (as pulumi-kubernetes v4 does) and awaited as the
  provider awaits it (Deployment rolled out, Job complete, LoadBalancer address assigned),
  unless it carries pulumi.com/skipAwait;
- a docker Image is built with the program's own build inputs;
- a command's `create` string runs in the project directory with its stdin, exactly as the
  program wrote it; one command's stdout that feeds another's stdin (the verification's
  baseline) is passed on.

So the commands and objects cannot drift from what the program declares. `destroy` deletes in
reverse order. Why not the engine: it cannot be installed on this machine by the project's own
means (README, "What is and is not verified").
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from components import offline, render
from components.metrics_api import CLUSTER_ADDON, MetricsApiState

PROJECT_DIR = offline.PROJECT_DIR
COMMAND = "command:local:Command"
IMAGE = "docker:index/image:Image"
JOB = "kubernetes:batch/v1:Job"
SKIP_AWAIT = "pulumi.com/skipAwait"
STDOUT_MARK = "@@stdout-of:"  # stands in for a command's stdout in the program's run


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


def outputs_with(stdout: Mapping[str, str]) -> offline.OutputFaker:
    """Provider outputs for the program's run: a command that has run returns its real stdout
    (as the engine hands it to what depends on it); one that has not, a token."""

    def fake(rec: offline.RecordedResource) -> Mapping[str, Any]:
        outputs = offline.realistic_outputs(rec, preview=False)
        if rec.type == COMMAND:
            return {**outputs, "stdout": stdout.get(rec.urn, _stdout_token(rec))}
        return outputs

    return fake


Evaluate = Callable[[Mapping[str, str]], offline.ProgramRun]


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

    def run(stdout: Mapping[str, str]) -> offline.ProgramRun:
        return offline.run_program(
            config,
            stack=stack,
            preview=False,
            fake_outputs=outputs_with(stdout),
            metrics_api=metrics_api,
        )

    return run


def evaluate(
    stack: str, metrics_api: MetricsApiState = CLUSTER_ADDON, **overrides: Any
) -> offline.ProgramRun:
    """The program's resources for `stack` before anything has run."""
    return evaluator(stack, metrics_api, **overrides)({})


def ordered(run: offline.ProgramRun) -> list[offline.RecordedResource]:
    """Custom resources in an order that honours every recorded dependency.

    Ties keep registration order. A dependency on a component stands for its children (the SDK
    already expands those into the recorded URNs).
    """
    custom = [r for r in run.resources if r.custom and not r.type.startswith("pulumi:providers:")]
    by_urn = {r.urn: r for r in custom}
    done: set[str] = set()
    out: list[offline.RecordedResource] = []
    pending = list(custom)
    while pending:
        for rec in pending:
            if all(d in done or d not in by_urn for d in rec.dependencies):
                out.append(rec)
                done.add(rec.urn)
                pending.remove(rec)
                break
        else:
            names = ", ".join(r.name for r in pending)
            raise DeployError(f"dependency cycle among {names}")
    return out


@dataclass
class Deployer:
    """Carries out a program run against the cluster of `kubectl` + `kubeconfig`/`context`."""

    kubectl: str
    kubeconfig: str
    context: str
    timeout: float = 300.0
    log: Callable[[str], None] = print
    stdout: dict[str, str] = field(default_factory=dict)  # URN -> a command's real stdout
    applied: dict[str, dict[str, Any]] = field(default_factory=dict)  # URN -> object, in order

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
        self.kc(
            "apply",
            "--server-side",
            "--field-manager",
            "pulumi-kubernetes",
            "--force-conflicts",
            "-f",
            "-",
            stdin=yaml.safe_dump(obj),
        )
        self.applied[rec.urn] = obj
        return self._await(obj)

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
        cwd = PROJECT_DIR / inputs["dir"] if inputs.get("dir") else PROJECT_DIR
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
            cmd, capture_output=True, text=True, cwd=PROJECT_DIR, timeout=self.timeout
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
        if kind == "Service" and obj.get("spec", {}).get("type") == "LoadBalancer":
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
        return "applied"

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

        As the engine does: each resource in dependency order; a command's real stdout goes back
        into the program (it is evaluated again with it), so what depends on that output sees
        the real value — e.g. the fortio Job stamped with the baseline's digest. With `previous`
        (the last run's resources by URN) it is an update: an unchanged resource is left alone,
        a changed one updated (a Job, whose pod template is immutable, replaced), one the
        program no longer declares deleted. A fixed ProgramRun (no re-evaluation) also works.
        """
        evaluate: Evaluate = program if callable(program) else (lambda _stdout: program)
        previous = previous or {}
        run = evaluate(self.stdout)
        acted, seen = [], set()
        for urn in [rec.urn for rec in ordered(run)]:
            rec = next(r for r in run.resources if r.urn == urn)
            seen.add(urn)
            old = previous.get(urn)
            if old is not None and old.inputs == rec.inputs:
                continue
            if old is not None and rec.type == JOB and urn in self.applied:
                self._delete(self.applied.pop(urn))
            t0 = time.monotonic()
            before = self.stdout.get(urn)
            detail = self.create(rec)
            acted.append(rec.name)
            kind = rec.type.split(":")[-1]
            self.log(f"e2e:   {kind} {rec.name}: {detail} ({time.monotonic() - t0:.1f} s)")
            if rec.type == COMMAND and self.stdout.get(urn) != before:
                run = evaluate(self.stdout)  # the rest of the program sees the new output
        for urn in [u for u in reversed(list(self.applied)) if previous and u not in seen]:
            self._delete(self.applied.pop(urn))
        return run, acted

    def destroy(self) -> None:
        """Deletes what `up` applied, newest first, each deletion awaited (bounded)."""
        for urn in reversed(list(self.applied)):
            self._delete(self.applied.pop(urn))

    def _delete(self, obj: Mapping[str, Any]) -> None:
        meta = obj["metadata"]
        where = ["-n", meta["namespace"]] if meta.get("namespace") else []
        self.kc(
            "delete",
            _resource(obj),
            meta["name"],
            *where,
            "--ignore-not-found",
            "--wait=true",
            f"--timeout={int(self.timeout)}s",
            timeout=self.timeout + 10,
        )


def _resource(obj: Mapping[str, Any]) -> str:
    """kubectl's name for the object's type: kind.group ('deployment.apps'), or the core kind."""
    group = obj["apiVersion"].split("/")[0] if "/" in obj["apiVersion"] else ""
    return f"{obj['kind'].lower()}.{group}" if group else obj["kind"].lower()


def write_report(path: Path, report: Mapping[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2, sort_keys=True) + "\n")
