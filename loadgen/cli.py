"""`python -m loadgen`: verify, snapshot, top, drill, rollout-check, html. Exit codes: 0 ok
(balanced, sticky, recovered, no failed request), 1 failed verdict (imbalanced, not-sticky,
not recovered, requests failed), 2 could not verify; always a one-line reason on stderr. The
flags are in cli_parser.py."""

from __future__ import annotations

import argparse
import os
import sys
import traceback
from collections.abc import Sequence

from loadgen import report
from loadgen.cli_parser import build_parser


def _run_verify(args: argparse.Namespace) -> dict:
    if args.url:
        from loadgen.verify import verify_url

        return verify_url(
            args.url,
            requests=args.requests,
            concurrency=args.concurrency,
            keepalive=bool(args.keepalive),
            expected_pods=args.expect_pods,
            alpha=args.alpha,
            timeout=args.timeout,
            request_timeout=min(args.request_timeout, args.timeout),
            max_error_rate=args.max_error_rate,
            session_affinity=args.session_affinity,
        )
    if not args.namespace or not args.selector:
        raise ValueError("--in-cluster needs --namespace and --selector")
    from loadgen import incluster, kube
    from loadgen.baseline import load_baseline

    baseline = load_baseline(args.baseline) if args.baseline else None
    # The observation window comes on top of the API budget.
    with kube.client(args.kubeconfig, args.context, args.timeout + args.window) as client:
        try:
            return incluster.verify_in_cluster(
                client,
                namespace=args.namespace,
                selector=args.selector,
                loadgen_selector=args.loadgen_selector,
                baseline=baseline,
                window=args.window,
                keepalive=args.keepalive,
                connections=args.connections,
                expected_pods=args.expect_pods,
                alpha=args.alpha,
                max_error_rate=args.max_error_rate,
                session_affinity=args.session_affinity,
            )
        except kube.KubeError as exc:
            return report.unverifiable("in-cluster", str(exc))


def _run_snapshot(args: argparse.Namespace) -> int:
    from loadgen import incluster, kube

    with kube.client(args.kubeconfig, args.context, args.timeout) as client:
        doc = incluster.snapshot(
            client, args.namespace, args.selector, args.expect_ready, args.idle_wait,
            expect_store=args.expect_store,
        )  # fmt: skip
    print(report.dumps(doc))
    pods = doc["pods"]
    print(
        f"loadgen snapshot: {len(pods)} pods, {sum(p['served'] for p in pods.values()):.0f} "
        "requests served so far",
        file=sys.stderr,
    )
    return 0


def _run_top(args: argparse.Namespace) -> int:
    from loadgen import kube, top

    budget = args.timeout + (args.samples - 1) * args.interval
    with kube.client(args.kubeconfig, args.context, budget) as client:
        rep = top.top(client, args.namespace, args.selector, args.samples, args.interval)
    if args.baseline:
        from loadgen.baseline import load_baseline

        idle = (load_baseline(args.baseline).get("resources_idle") or {}).get("pods")
        for row in rep["pods"]:
            row["resources_idle"] = (idle or {}).get(row["name"])
    print(report.dumps(rep) if args.json else top.render(rep))
    if not rep["available"]:
        print(f"loadgen top: {rep['note']}", file=sys.stderr)
        return 2
    return 0


def _run_drill(args: argparse.Namespace) -> int:
    from loadgen import drill, kube

    if args.node:
        from loadgen import cli_node

        return cli_node.run(args)
    if args.drain or args.fault_cmd or args.restore_cmd:
        raise ValueError("--drain, --fault-cmd and --restore-cmd need --node NODE|auto")
    with kube.client(args.kubeconfig, args.context, args.api_timeout) as client:
        rep = drill.drill(
            client,
            namespace=args.namespace,
            selector=args.selector,
            kill=args.kill or 1,
            url=args.url,
            timeout=args.timeout,
            grace_seconds=args.grace_period,
        )
    if args.json:
        print(report.dumps(rep))
    else:
        for item in rep["timeline"]:
            print(f"{item['t']:>7.2f}s  {item['event']}")
        if rep["traffic"]:
            tr = rep["traffic"]
            print(f"traffic: {tr['total']} requests, {tr['failed']} failed, per pod {tr['pods']}")
        for note in rep["notes"]:
            print(f"note: {note}")
    print(f"loadgen drill: {rep['verdict']}: {rep['reason']}", file=sys.stderr)
    return int(rep["exit_code"])


def _run_rollout_check(args: argparse.Namespace) -> int:
    import contextlib

    from loadgen import kube, rollout

    with contextlib.ExitStack() as stack:
        client = None
        if args.namespace:
            client = stack.enter_context(
                kube.client(args.kubeconfig, args.context, args.api_timeout)
            )
        elif args.restart:
            raise ValueError("--restart needs --namespace")
        rep = rollout.rollout_check(
            args.url,
            client=client,
            namespace=args.namespace,
            deployment=args.deployment,
            service=args.service or args.deployment,
            trigger=(
                (lambda: rollout.restart(client, args.namespace, args.deployment))
                if args.restart and client is not None
                else None
            ),
            clients=args.clients,
            request_timeout=args.request_timeout,
            timeout=args.timeout,
            duration=args.duration,
            settle=max(0.0, args.settle),
            max_failures=args.max_failures,
        )
    print(report.dumps(rep) if args.json else rollout.render(rep))
    print(f"loadgen rollout-check: {rep['verdict']}: {rep['reason']}", file=sys.stderr)
    return int(rep["exit_code"])


def _run_html(args: argparse.Namespace) -> int:
    import json

    from loadgen import html_report

    if args.report == "-":
        text = sys.stdin.read()
    else:
        with open(args.report, encoding="utf-8") as fh:
            text = fh.read()
    try:
        rep = json.loads(text)
    except ValueError as exc:
        raise ValueError(f"{args.report} is not a JSON verify report") from exc
    if not isinstance(rep, dict) or "verdict" not in rep:
        raise ValueError(f"{args.report} is not a verify report (no verdict)")
    html_report.write(rep, args.out)
    print(f"loadgen html: {rep['verdict']}: wrote {args.out}", file=sys.stderr)
    return 0


def _finish_verify(args: argparse.Namespace, rep: dict) -> int:
    if args.json:
        print(report.dumps(rep))
    else:
        print(report.render_table(rep))
    if getattr(args, "html", ""):
        from loadgen import html_report

        html_report.write(rep, args.html)
    code = int(rep["exit_code"])
    label = {
        "sticky": "sticky",
        "not-sticky": "not sticky",
        "balanced": "balanced",
        "imbalanced": "imbalanced",
    }.get(str(rep.get("verdict")), {0: "balanced", 1: "imbalanced", 2: "could not verify"}[code])
    if code == 2:
        label = "could not verify"
    served_from = rep.get("nodes_served") or 0  # in-cluster only: the API names the nodes
    where = f" ({served_from} node{'s' * (served_from != 1)} served traffic)" if served_from else ""
    print(f"loadgen verify: {label}: {rep['reason']}{where}", file=sys.stderr)
    if args.report_only and code == 1:
        return 0
    return code


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        if args.command == "verify":
            return _finish_verify(args, _run_verify(args))
        if args.command == "snapshot":
            return _run_snapshot(args)
        if args.command == "top":
            return _run_top(args)
        if args.command == "html":
            return _run_html(args)
        if args.command == "drill":
            return _run_drill(args)
        if args.command == "rollout-check":
            return _run_rollout_check(args)
        parser.error(f"unknown command {args.command}")
    except KeyboardInterrupt:
        print(f"loadgen {args.command}: interrupted", file=sys.stderr)
        return 2
    except Exception as exc:  # one line, never a traceback, for whoever runs us
        if os.environ.get("LOADGEN_DEBUG"):
            traceback.print_exc()
        msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        if args.command == "verify":
            # Whoever parses --json (the stack) still gets a report saying why.
            mode = "url" if args.url else "in-cluster"
            return _finish_verify(args, report.unverifiable(mode, msg))
        print(f"loadgen {args.command}: error: {msg}", file=sys.stderr)
        return 2
    return 2
