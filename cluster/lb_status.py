"""The local cluster's LoadBalancer implementation: what `minikube tunnel` does for minikube.

It gives every Service of type LoadBalancer an address from a pool (status.loadBalancer.ingress)
and, once a second, deletes stale SYN entries to those addresses (cluster/stale_syns.py: a lost
node's pods would otherwise blackhole a client that reuses source ports); nothing else:
kube-proxy already routes a load-balancer address to the Service's pods on the node, and the
pool is routed to the node's own interface (cluster/up.sh), so the address is reachable from
this machine. Why not MetalLB: on a one-node cluster with no neighbours its speaker (ARP/BGP
announcements) has nobody to announce to, and it would add two more builds, images and CRDs;
assigning the address is the only part this cluster lacks.

Run by cluster/up.sh as a host process with its own client certificate:
    python cluster/lb_status.py --kubeconfig FILE --pool 10.199.1.0/24
"""

from __future__ import annotations

import argparse
import ipaddress
import logging
import signal
import sys
import threading
import time
from collections.abc import Iterable

from kubernetes import client, config, watch
from kubernetes.client.exceptions import ApiException

try:
    from cluster.stale_syns import Pruner
except ImportError:  # run as a script (cluster/up.sh): its own directory is on sys.path
    from stale_syns import Pruner

log = logging.getLogger("lb-status")
WATCH_SECONDS = 30  # each watch ends after this and the loop relists: no event is missed for long
RETRY_SECONDS = 2
PRUNE_EVERY = 1.0  # seconds between looks for stale SYN entries: a blackholed client retries in 1 s


def pool_addresses(cidr: str) -> list[str]:
    """Usable addresses of the pool, lowest first (the network and broadcast ones excluded)."""
    return [str(ip) for ip in ipaddress.ip_network(cidr).hosts()]


def current_ip(svc: client.V1Service) -> str | None:
    ingress = (svc.status.load_balancer.ingress or []) if svc.status.load_balancer else []
    return ingress[0].ip if ingress else None


def choose(svc: client.V1Service, pool: list[str], taken: set[str]) -> str | None:
    """The address this Service should have: its own if it has one of the pool's, the one it
    asks for (spec.loadBalancerIP) if free, else the lowest free one; None when the pool is full."""
    have = current_ip(svc)
    if have in pool:
        return have
    wanted = svc.spec.load_balancer_ip
    if wanted in pool and wanted not in taken:
        return wanted
    return next((ip for ip in pool if ip not in taken), None)


def reconcile(api: client.CoreV1Api, services: Iterable[client.V1Service], pool: list[str]) -> None:
    lbs = [s for s in services if s.spec.type == "LoadBalancer"]
    taken = {ip for s in lbs if (ip := current_ip(s)) in pool}
    for svc in lbs:
        if current_ip(svc) in pool:
            continue
        ip = choose(svc, pool, taken)
        name = f"{svc.metadata.namespace}/{svc.metadata.name}"
        if ip is None:
            log.warning("no free address in the pool for %s", name)
            continue
        taken.add(ip)
        body = {"status": {"loadBalancer": {"ingress": [{"ip": ip, "ipMode": "VIP"}]}}}
        try:
            api.patch_namespaced_service_status(svc.metadata.name, svc.metadata.namespace, body)
            log.info("%s -> %s", name, ip)
        except ApiException as err:
            log.warning("could not set the address of %s: %s", name, err.reason)


def run(api: client.CoreV1Api, pool: list[str]) -> None:
    while True:
        try:
            listing = api.list_service_for_all_namespaces()
            reconcile(api, listing.items, pool)
            stream = watch.Watch().stream(
                api.list_service_for_all_namespaces,
                resource_version=listing.metadata.resource_version,
                timeout_seconds=WATCH_SECONDS,
            )
            for event in stream:
                if event["type"] in ("ADDED", "MODIFIED"):
                    # Relist on each change: the set of taken addresses must be current.
                    reconcile(api, api.list_service_for_all_namespaces().items, pool)
        except Exception as err:  # the API server restarting, a watch expiring: retry
            log.warning("watch interrupted (%s); retrying", type(err).__name__)
            time.sleep(RETRY_SECONDS)


def prune_forever(pruner: Pruner) -> None:
    while True:
        try:
            pruner.once()
        except Exception as err:  # the API server restarting, conntrack slow: next second
            log.warning("stale SYN pass failed (%s: %s)", type(err).__name__, err)
        time.sleep(PRUNE_EVERY)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kubeconfig", required=True)
    parser.add_argument("--pool", required=True, help="CIDR of the load-balancer addresses")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s lb-status: %(message)s")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    config.load_kube_config(config_file=args.kubeconfig)
    pool, core = pool_addresses(args.pool), client.CoreV1Api()
    pruner = Pruner(core, client.DiscoveryV1Api(), pool)
    threading.Thread(target=prune_forever, args=(pruner,), daemon=True).start()
    run(core, pool)
    return 0


if __name__ == "__main__":
    sys.exit(main())
