"""`drill --node NODE|auto [--drain]`: its flags and its run (loadgen/nodedrill.py does the
work). Kept apart from cli_parser.py/cli.py, which stay about the other commands."""

from __future__ import annotations

import argparse
import sys

from loadgen import nodecmd
from loadgen.argtypes import positive_float as _positive_float
from loadgen.argtypes import positive_int as _positive_int


def add_args(d: argparse.ArgumentParser) -> None:
    g = d.add_argument_group(
        "node drill (--node)",
        "lose a node (or --drain it) under a steady load through --url, the LoadBalancer URL",
    )
    g.add_argument(
        "--node",
        default=None,
        metavar="NODE|auto",
        help="the node to lose; auto: the node outside the control plane hosting the most "
        "ready app pods",
    )
    g.add_argument(
        "--drain",
        action="store_true",
        help="drain the node instead (cordon, evictions honouring the PDB; uncordoned after)",
    )
    g.add_argument(
        "--fault-cmd",
        default=None,
        metavar="CMD",
        help="how to lose {node} (default: cluster/node.sh cut {node}, from this repository); "
        "e.g. 'minikube node stop {node}'",
    )
    g.add_argument(
        "--restore-cmd",
        default=None,
        metavar="CMD",
        help="how to bring {node} back, always run (default: cluster/node.sh restore {node}); "
        "e.g. 'minikube node start {node}'",
    )
    g.add_argument(
        "--service",
        default="",
        help="the Service whose endpoints to watch (default: the Deployment's name)",
    )
    g.add_argument("--clients", type=_positive_int, default=4, help="concurrent clients (4)")
    g.add_argument("--request-timeout", type=_positive_float, default=2.0)
    g.add_argument(
        "--command-timeout",
        type=_positive_float,
        default=180.0,
        help="bound on the fault and restore commands and on the drain (default 180)",
    )
    g.add_argument(
        "--restore-timeout",
        type=_positive_float,
        default=180.0,
        help="seconds the restored node gets to be Ready again (default 180)",
    )
    g.add_argument(
        "--verify-requests",
        type=_positive_int,
        default=600,
        help="requests of the post-recovery balance check (default 600)",
    )
    g.add_argument(
        "--proxy-lag",
        type=float,
        default=2.0,
        help="seconds kube-proxy may take to act on removed endpoints, added to the "
        "detection window (default 2)",
    )


def run(args: argparse.Namespace) -> int:
    from loadgen import kube, nodedrill, nodereport, report

    if not args.url:
        raise ValueError("--node needs --url: the LoadBalancer URL the steady load goes through")
    if args.kill is not None:
        raise ValueError("--kill is the pod drill's; --node loses a node's pods, not N pods")
    if args.drain and (args.fault_cmd or args.restore_cmd):
        raise ValueError("--drain cordons, evicts and uncordons: no --fault-cmd/--restore-cmd")
    settings = nodedrill.Settings(
        namespace=args.namespace,
        selector=args.selector,
        node=args.node,
        url=args.url,
        drain=args.drain,
        fault_cmd=args.fault_cmd or nodecmd.DEFAULT_FAULT,
        restore_cmd=args.restore_cmd or nodecmd.DEFAULT_RESTORE,
        service=args.service,
        clients=args.clients,
        request_timeout=args.request_timeout,
        timeout=args.timeout,
        command_timeout=args.command_timeout,
        restore_timeout=args.restore_timeout,
        proxy_lag=max(0.0, args.proxy_lag),
        verify_requests=args.verify_requests,
    )
    with kube.client(args.kubeconfig, args.context, args.api_timeout) as client:
        rep = nodedrill.node_drill(client, settings)
    print(report.dumps(rep) if args.json else nodereport.render(rep))
    print(f"loadgen drill: {rep['verdict']}: {rep['reason']}", file=sys.stderr)
    return int(rep["exit_code"])
