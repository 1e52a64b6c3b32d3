"""The local cluster's LoadBalancer status writer: which address each Service gets."""

from __future__ import annotations

from kubernetes import client

from cluster.lb_status import choose, pool_addresses, reconcile

POOL = pool_addresses("10.199.1.0/29")  # .1 .. .6


def svc(
    name: str, *, type_: str = "LoadBalancer", ip: str | None = None, wanted: str | None = None
) -> client.V1Service:
    ingress = [client.V1LoadBalancerIngress(ip=ip)] if ip else None
    return client.V1Service(
        metadata=client.V1ObjectMeta(name=name, namespace="ns"),
        spec=client.V1ServiceSpec(type=type_, load_balancer_ip=wanted),
        status=client.V1ServiceStatus(load_balancer=client.V1LoadBalancerStatus(ingress=ingress)),
    )


class RecordingApi:
    def __init__(self) -> None:
        self.patched: dict[str, str] = {}

    def patch_namespaced_service_status(self, name: str, namespace: str, body: dict) -> None:
        self.patched[name] = body["status"]["loadBalancer"]["ingress"][0]["ip"]


def test_pool_excludes_network_and_broadcast():
    assert [f"10.199.1.{i}" for i in range(1, 7)] == POOL


def test_new_services_get_the_lowest_free_addresses_and_keep_them():
    api = RecordingApi()
    reconcile(api, [svc("a", ip="10.199.1.1"), svc("b"), svc("c")], POOL)
    assert api.patched == {"b": "10.199.1.2", "c": "10.199.1.3"}


def test_other_service_types_are_left_alone():
    api = RecordingApi()
    reconcile(api, [svc("a", type_="ClusterIP"), svc("b", type_="NodePort")], POOL)
    assert api.patched == {}


def test_a_requested_free_address_is_honoured_a_taken_one_is_not():
    assert choose(svc("x", wanted="10.199.1.5"), POOL, set()) == "10.199.1.5"
    assert choose(svc("x", wanted="10.199.1.5"), POOL, {"10.199.1.5"}) == "10.199.1.1"


def test_an_address_outside_the_pool_is_replaced():
    api = RecordingApi()
    reconcile(api, [svc("a", ip="192.0.2.7")], POOL)
    assert api.patched == {"a": "10.199.1.1"}


def test_a_full_pool_assigns_nothing():
    api = RecordingApi()
    full = [svc(f"s{i}", ip=ip) for i, ip in enumerate(POOL)]
    reconcile(api, [*full, svc("late")], POOL)
    assert api.patched == {}
