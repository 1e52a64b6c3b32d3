"""The argument parser of `python -m loadgen` (its commands and flags; cli.py runs them)."""

from __future__ import annotations

import argparse

from loadgen import cli_node
from loadgen.argtypes import positive_float as _positive_float
from loadgen.argtypes import positive_int as _positive_int
from loadgen.verdict import DEFAULT_ALPHA

DEFAULT_TIMEOUT = 30.0
DESCRIPTION = (
    "verify, snapshot, top, drill, rollout-check, html. Exit codes: 0 ok (balanced, sticky, "
    "recovered, no failed request), 1 failed verdict (imbalanced, not-sticky, not recovered, "
    "requests failed), 2 could not verify; always a one-line reason on stderr."
)


def _alpha(text: str) -> float:
    value = float(text)
    if not 0 < value < 0.5:
        raise argparse.ArgumentTypeError("alpha must be between 0 and 0.5")
    return value


def _kube_args(p: argparse.ArgumentParser, selector_required: bool = True) -> None:
    p.add_argument("--namespace", "-n", required=True)
    p.add_argument(
        "--selector",
        "-l",
        required=selector_required,
        help="label selector of the app pods, e.g. app.kubernetes.io/name=articles",
    )
    p.add_argument("--context", default="", help="kubeconfig context (default: current)")
    p.add_argument("--kubeconfig", default="", help="default: $KUBECONFIG or ~/.kube/config")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m loadgen", description=DESCRIPTION)
    sub = parser.add_subparsers(dest="command", required=True)

    v = sub.add_parser("verify", help="is the load spread evenly across the pods?")
    where = v.add_mutually_exclusive_group(required=True)
    where.add_argument("--url", help="send the load to this URL and count X-Served-By")
    where.add_argument(
        "--in-cluster",
        action="store_true",
        help="read pod counters and fortio results through the Kubernetes API",
    )
    v.add_argument("--requests", type=_positive_int, default=1000)
    v.add_argument("--concurrency", type=_positive_int, default=10)
    ka = v.add_mutually_exclusive_group()
    ka.add_argument(
        "--keepalive",
        dest="keepalive",
        action="store_true",
        default=None,
        help="connections carry many requests (then connections are the tested unit); "
        "default: off for --url, fortio's setting for --in-cluster",
    )
    ka.add_argument("--no-keepalive", dest="keepalive", action="store_false")
    v.add_argument("--expect-pods", type=_positive_int, default=None)
    v.add_argument(
        "--alpha",
        type=_alpha,
        default=DEFAULT_ALPHA,
        help=f"significance of the uniformity test (default {DEFAULT_ALPHA})",
    )
    v.add_argument(
        "--timeout",
        type=_positive_float,
        default=DEFAULT_TIMEOUT,
        help="bound on the whole run, seconds",
    )
    v.add_argument("--request-timeout", type=_positive_float, default=5.0)
    v.add_argument("--max-error-rate", type=float, default=0.05)
    v.add_argument("--json", action="store_true", help="print the whole report as JSON")
    v.add_argument(
        "--html",
        default="",
        metavar="FILE",
        help="also write the report as a page: per-pod shares with the accepted band, "
        "CPU/memory under load beside idle",
    )
    v.add_argument(
        "--report-only",
        action="store_true",
        help="exit 0 on any verdict (balanced or imbalanced); 2 still means could not verify",
    )
    v.add_argument("--namespace", "-n")
    v.add_argument("--selector", "-l")
    v.add_argument("--context", default="")
    v.add_argument("--kubeconfig", default="")
    v.add_argument(
        "--loadgen-selector",
        default="",
        help="label selector of the fortio pods whose JSON result to read",
    )
    v.add_argument(
        "--baseline",
        default="",
        help="`snapshot` JSON taken before the load (file, or - for stdin); "
        "without it counters count from zero",
    )
    v.add_argument(
        "--connections",
        type=_positive_int,
        default=None,
        help="total keep-alive connections of the load (fortio -c x pods), used "
        "when fortio's own socket count is not available",
    )
    v.add_argument(
        "--session-affinity",
        choices=("None", "ClientIP"),
        default="None",
        help="the Service's sessionAffinity: ClientIP checks what sticky sessions promise "
        "(each client served by one pod, clients spread as far as their number allows) "
        "instead of a uniform split; in-cluster with --loadgen-selector, or --url (one client)",
    )
    v.add_argument(
        "--window",
        type=float,
        default=0.0,
        help="in-cluster without --baseline: snapshot, watch the running load for "
        "this many seconds, and count the difference",
    )

    s = sub.add_parser("snapshot", help="print every app pod's served-request counter (JSON)")
    _kube_args(s)
    s.add_argument("--timeout", type=_positive_float, default=DEFAULT_TIMEOUT)
    s.add_argument(
        "--expect-ready",
        type=int,
        default=0,
        help="first wait (within --timeout) until this many pods are Ready; exit 2 naming "
        "the pods that are not, if they never are",
    )
    s.add_argument(
        "--idle-wait",
        type=float,
        default=0.0,
        help="wait up to this many seconds for metrics-server's first figure of each pod "
        "(the idle baseline; new pods have none for 15-30 s)",
    )
    s.add_argument(
        "--expect-store",
        action="store_true",
        help="the pods count views in a shared store: wait (up to 60 s) until every pod's "
        "/metrics shows it answering, so the consistency check has a baseline",
    )

    h = sub.add_parser(
        "html", help="draw a verify report (JSON, e.g. the stack's output) as a page"
    )
    h.add_argument("report", help="the report JSON file, or - for stdin")
    h.add_argument("--out", required=True, metavar="FILE")

    t = sub.add_parser("top", help="per-pod CPU and memory from the metrics API")
    _kube_args(t)
    t.add_argument("--samples", type=_positive_int, default=1)
    t.add_argument("--interval", type=_positive_float, default=5.0)
    t.add_argument("--timeout", type=_positive_float, default=DEFAULT_TIMEOUT)
    t.add_argument(
        "--baseline",
        default="",
        help="`snapshot` JSON taken before the load: its idle CPU/memory per pod shown beside",
    )
    t.add_argument("--json", action="store_true")

    d = sub.add_parser("drill", help="delete pods under traffic and time the recovery")
    _kube_args(d)
    d.add_argument("--kill", type=_positive_int, default=None, help="pods to delete (default 1)")
    d.add_argument("--url", default=None, help="send traffic here during the drill")
    cli_node.add_args(d)
    d.add_argument(
        "--timeout",
        type=_positive_float,
        default=120.0,
        help="seconds the Deployment gets to be fully ready again (default 120)",
    )
    d.add_argument(
        "--grace-period",
        type=int,
        default=None,
        help="deletion grace period, seconds (default: the pod's own)",
    )
    d.add_argument("--api-timeout", type=_positive_float, default=DEFAULT_TIMEOUT)
    d.add_argument("--json", action="store_true")
    _rollout_check(sub)
    return parser


def _rollout_check(sub: argparse._SubParsersAction) -> None:
    r = sub.add_parser(
        "rollout-check",
        help="steady load of fresh connections during a rollout; every failure with its time",
    )
    r.add_argument("--url", required=True, help="e.g. http://LB_IP:8080/article1")
    r.add_argument(
        "--namespace",
        "-n",
        default=None,
        help="watch this namespace's Deployment; without it, load for --duration seconds only",
    )
    r.add_argument("--deployment", default="articles")
    r.add_argument(
        "--service", default="", help="whose EndpointSlices to watch (default: --deployment)"
    )
    r.add_argument(
        "--restart",
        action="store_true",
        help="start the rollout (patch the pod template, as `kubectl rollout restart`); "
        "default: wait for one someone else starts, e.g. `pulumi up`",
    )
    r.add_argument("--clients", type=_positive_int, default=8, help="concurrent clients")
    r.add_argument(
        "--timeout",
        type=_positive_float,
        default=300.0,
        help="seconds for the rollout to begin and complete (default 300)",
    )
    r.add_argument(
        "--duration",
        type=_positive_float,
        default=30.0,
        help="without --namespace: seconds of load (default 30)",
    )
    r.add_argument(
        "--settle",
        type=float,
        default=3.0,
        help="seconds of load before the rollout and after it (default 3)",
    )
    r.add_argument("--request-timeout", type=_positive_float, default=2.0)
    r.add_argument(
        "--max-failures",
        type=int,
        default=0,
        help="exit 1 when more requests than this fail (default 0)",
    )
    r.add_argument("--context", default="", help="kubeconfig context (default: current)")
    r.add_argument("--kubeconfig", default="", help="default: $KUBECONFIG or ~/.kube/config")
    r.add_argument("--api-timeout", type=_positive_float, default=DEFAULT_TIMEOUT)
    r.add_argument("--json", action="store_true", help="print the whole report as JSON")
