"""LoadVerification: the post-deploy check that the load was spread across the app's pods.

Two pulumi-command `local.Command`s run `python -m loadgen` (the code in loadgen/):

1. `snapshot` waits until `expected_pods` app pods are Ready, then reads every app pod's
   request counters (and idle CPU/memory) before the load. The fortio Job depends on it, so
   the baseline is taken before the first request.
2. `verify` runs once the Job exists (the Job is not awaited: see components/loadgen.py),
   waits for the fortio pods while sampling CPU/memory, reads the counters again plus fortio's
   JSON from the Job's pods, and prints the report as JSON: it becomes the stack outputs
   `loadDistribution` and `loadTest`.

Re-runs are coupled through data: each snapshot prints a new document; the Job's pod template
carries its digest (`run_stamp`) and verify reads it on stdin and is triggered by the digest.
So whatever re-runs the snapshot (a changed input, `pulumi up --replace` of `snapshot_urn`)
replaces the Job and re-runs verify, and no list of config keys can fall out of step.

A Command runs on create and on update only, never during `pulumi preview` (its stdout is
unknown there, so the outputs are too), and it appears in the preview as a resource. Why not a
Python dynamic provider: the engine pickles a dynamic provider and unpickles it in a separate
provider process, where the project's modules must be importable (pulumi/pulumi#7453, #7795);
a Command is plain process execution with no such coupling.

The command strings hold no absolute path and nothing machine-specific, so previews made on
different machines (e.g. for a pull request) show no spurious diff. Commands run in the project
directory (found from wherever pulumi was started); the project's venv python when present.
"""

from __future__ import annotations

import hashlib
import json
import math
import shlex
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pulumi
from pulumi_command import local

from components.settings import LoadSettings, VerifySettings

TYPE = "selfheal-lb:verification:LoadVerification"
# Providers run in the directory pulumi was started from (pulumi/pulumi#17763): normally the
# project dir (`make up`), but pulumi also finds Pulumi.yaml from a subdirectory, so climb to
# it. Then the venv python when the checkout has one (Pulumi.yaml: virtualenv venv), else
# PATH's.
PYTHON = (
    'while [ ! -f Pulumi.yaml ] && [ "$PWD" != / ]; do cd ..; done; '
    'PY=python3; if [ -x venv/bin/python ]; then PY=venv/bin/python; fi; exec "$PY"'
)
JOB_NAME_LABEL = "batch.kubernetes.io/job-name"
IDLE_WAIT_SECONDS = 60


@dataclass(frozen=True)
class LoadVerificationArgs:
    verify: VerifySettings
    load: LoadSettings
    namespace: str  # known at config time (the app's namespace name), keeps the command plain
    selector: str  # label selector of the app pods
    expected_pods: int
    kube_context: str = ""
    # The Service's sessionAffinity: ClientIP switches verify to the sticky-sessions check.
    session_affinity: str = "None"
    # Values whose change must re-run the check (image ref, the app's and the load's
    # settings, …). The component adds its own inputs (verify settings, namespace, selector,
    # context) so that the check never re-runs alone against an old baseline.
    triggers: Sequence[pulumi.Input[Any]] = ()
    # What the baseline reads the live state of (the app, the metrics-server in use, the state
    # store): the snapshot command depends on each. Not the component's own depends_on, which
    # its children do not inherit: with it the engine ran the snapshot as soon as the image
    # was loaded, before the store was up (the first `up` with Redis reported unverifiable).
    reads: pulumi.Input[Sequence[pulumi.Input[pulumi.Resource]]] = ()
    # The pods count views in a shared store: the baseline waits until each reaches it.
    expect_store: bool = False

    def own_inputs(self) -> str:
        """Everything of this component that shapes the snapshot or the verify command."""
        return repr(
            (self.verify, self.load, self.namespace, self.selector, self.expected_pods,
             self.kube_context, self.session_affinity, self.expect_store)
        )  # fmt: skip


def _cmd(*words: str) -> str:
    return f"{PYTHON} -m loadgen " + " ".join(shlex.quote(w) for w in words)


def snapshot_command(args: LoadVerificationArgs) -> str:
    words = ["snapshot", "--namespace", args.namespace, "--selector", args.selector]
    if args.kube_context:
        words += ["--context", args.kube_context]
    # Wait (within the timeout) for the pods the stack expects: with the HPA on, Pulumi does
    # not wait for pods added by an appReplicas change.
    words += ["--expect-ready", str(args.expected_pods)]
    # Just after a rollout metrics-server has no figure for the new pods yet: give it time
    # for one scrape, so the report's idle column is a reading and not a blank.
    words += ["--idle-wait", str(IDLE_WAIT_SECONDS)]
    if args.expect_store:
        words.append("--expect-store")
    words += ["--timeout", str(args.verify.timeout_seconds)]
    return _cmd(*words)


def planned_load_seconds(load: LoadSettings) -> int:
    """How long one fortio pod's run is paced to last (0 = as fast as it can)."""
    return math.ceil(load.requests / load.qps) if load.qps > 0 else 0


def verify_command(args: LoadVerificationArgs, job_name: str) -> str:
    load = args.load
    words = [
        "verify",
        "--in-cluster",
        "--namespace",
        args.namespace,
        "--selector",
        args.selector,
        "--loadgen-selector",
        f"{JOB_NAME_LABEL}={job_name}",
        "--baseline",
        "-",
        "--connections",
        str(load.pods * load.connections),
        "--keepalive" if load.keepalive else "--no-keepalive",
        "--expect-pods",
        str(args.expected_pods),
        "--alpha",
        format(args.verify.significance, "g"),
        "--timeout",
        # verify starts when the Job is created and samples CPU/memory while it runs.
        str(args.verify.timeout_seconds + planned_load_seconds(load)),
    ]
    if args.session_affinity != "None":
        words += ["--session-affinity", args.session_affinity]
    if args.kube_context:
        words += ["--context", args.kube_context]
    words.append("--json")
    if not args.verify.fail_on_imbalance:
        words.append("--report-only")
    return _cmd(*words)


def parse_report(stdout: str | None) -> dict[str, Any]:
    """The verify report; a stdout that is not a JSON object is reported, not raised."""
    stdout = stdout or ""
    try:
        report = json.loads(stdout)
    except ValueError:
        report = None
    if not isinstance(report, dict):
        return {
            "verdict": "unparsed",
            "reason": "verify printed no JSON report",
            "raw": stdout[:500],
        }
    return report


def load_test_summary(report: dict[str, Any]) -> dict[str, Any]:
    """fortio's figures from the report: qps, p50/p90/p99 in ms, errors (and total)."""
    fortio = report.get("fortio") or report.get("load") or {}
    latency = fortio.get("latency_ms") or report.get("latency_ms") or {}
    return {
        "qps": fortio.get("qps"),
        "p50_ms": latency.get("p50"),
        "p90_ms": latency.get("p90"),
        "p99_ms": latency.get("p99"),
        "errors": fortio.get("errors", report.get("errors")),
        "total": fortio.get("total", report.get("total")),
    }


def run_stamp(snapshot_stdout: str | None) -> str:
    """The load generator's re-run stamp: a digest of the baseline document.

    Every run of `loadgen snapshot` prints a new document (it carries a fresh `run_id`), so
    whatever re-runs the snapshot (a changed input, `pulumi up --replace` of its URN) changes
    the stamp, which replaces the fortio Job, which re-runs verify (its stdin and triggers are
    the same document). One data path, so no list of config keys can fall out of step."""
    return hashlib.sha256((snapshot_stdout or "").encode()).hexdigest()[:16]


def snapshot_urn(stack: str, project: str, name: str = "verification") -> str:
    """The URN of the snapshot command: what `scripts/stack.sh reverify` replaces."""
    return f"urn:pulumi:{stack}::{project}::{TYPE}$command:local:Command::{name}-snapshot"


class LoadVerification(pulumi.ComponentResource):
    """Create it before the load generator (it takes the baseline), then call `after_load`."""

    snapshot: local.Command
    verify: local.Command | None
    # Changes whenever the triggers do: the load generator stamps its Job with it, so the
    # load runs again whenever the check must (or the check would read the old run's logs).
    run_stamp: pulumi.Output[str]
    report: pulumi.Output[dict[str, Any]]
    load_test: pulumi.Output[dict[str, Any]]

    def __init__(
        self, name: str, args: LoadVerificationArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__(TYPE, name, None, opts)
        self._name = name
        self._args = args
        self.verify = None
        self.snapshot = local.Command(
            f"{name}-snapshot",
            create=snapshot_command(args),
            triggers=[*args.triggers, args.own_inputs()],
            opts=pulumi.ResourceOptions(parent=self, depends_on=args.reads),
        )
        self.run_stamp = self.snapshot.stdout.apply(run_stamp)

    def after_load(self, job: pulumi.Resource, job_name: pulumi.Input[str]) -> LoadVerification:
        """Register the check that runs once `job` (the fortio Job) has completed."""
        self.verify = local.Command(
            f"{self._name}-verify",
            create=pulumi.Output.from_input(job_name).apply(
                lambda n: verify_command(self._args, n)
            ),
            stdin=self.snapshot.stdout,
            # Replaced whenever the baseline is new (not only updated on a stdin diff).
            triggers=[self.run_stamp],
            opts=pulumi.ResourceOptions(parent=self, depends_on=[job]),
        )
        self.report = self.verify.stdout.apply(parse_report)
        self.load_test = self.report.apply(load_test_summary)
        self.register_outputs({"report": self.report, "load_test": self.load_test})
        return self
