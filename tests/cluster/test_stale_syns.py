"""The LB's stale-SYN pruning (cluster/stale_syns.py): which conntrack entries it deletes.
The real effect (no request lost after a node came back) is the e2e's rollout after its node
drill; here the choice, against conntrack's own output format."""

from __future__ import annotations

import subprocess

from kubernetes import client

from cluster.stale_syns import Pruner, SynEntry, parse, stale

LB = "10.199.1.1"
# `conntrack -L -p tcp --state SYN_SENT` lines as the local cluster printed them after a node loss,
# plus one to an address outside the pool, and a TIME_WAIT line and conntrack's summary line,
# which parse must skip.
LINES = [
    "tcp      6 57 SYN_SENT src=10.199.0.1 dst=10.199.1.1 sport=45966 dport=8080 [UNREPLIED] "
    "src=10.244.2.13 dst=10.199.0.1 sport=8080 dport=17799 mark=0 use=1",
    "tcp      6 119 SYN_SENT src=10.199.0.1 dst=10.199.1.1 sport=40001 dport=8080 [UNREPLIED] "
    "src=10.244.0.7 dst=10.199.0.1 sport=8080 dport=40001 mark=0 use=1",
    "tcp      6 100 SYN_SENT src=10.199.0.1 dst=10.96.0.10 sport=40002 dport=53 [UNREPLIED] "
    "src=10.244.2.13 dst=10.199.0.1 sport=53 dport=40002 mark=0 use=1",
    "tcp      6 82 TIME_WAIT src=10.199.0.1 dst=10.199.1.1 sport=44030 dport=8080 "
    "src=10.244.2.13 dst=10.199.0.1 sport=8080 dport=50657 [ASSURED] mark=0 use=1",
    "conntrack v1.4.7 (conntrack-tools): 4 flow entries have been shown.",
]


def test_parse_reads_the_original_tuple_and_the_dnat_target_of_syn_sent_entries_only():
    assert parse(LINES) == [
        SynEntry("10.199.0.1", LB, "45966", "8080", "10.244.2.13"),
        SynEntry("10.199.0.1", LB, "40001", "8080", "10.244.0.7"),
        SynEntry("10.199.0.1", "10.96.0.10", "40002", "53", "10.244.2.13"),
    ]


def test_only_entries_to_a_pool_address_whose_pod_no_longer_serves_are_stale():
    entries = parse(LINES)
    # 10.244.0.7 serves; 10.244.2.13 (the lost node's pod) does not; the ClusterIP entry is
    # not the LB's to touch even though its target is the same lost pod.
    assert stale(entries, {LB: {"10.244.0.7", "10.244.1.5"}}) == [entries[0]]
    assert stale(entries, {LB: {"10.244.0.7", "10.244.2.13"}}) == []
    assert stale(entries, {}) == []


def _slice(ns: str, service: str, *eps: tuple[str, bool | None]) -> client.V1EndpointSlice:
    return client.V1EndpointSlice(
        address_type="IPv4",
        metadata=client.V1ObjectMeta(namespace=ns, labels={"kubernetes.io/service-name": service}),
        endpoints=[
            client.V1Endpoint(addresses=[ip], conditions=client.V1EndpointConditions(serving=s))
            for ip, s in eps
        ],
    )


class FakeApi:
    def __init__(self) -> None:
        self.calls = 0
        lb = client.V1LoadBalancerStatus(ingress=[client.V1LoadBalancerIngress(ip=LB)])
        self.services = [
            client.V1Service(
                metadata=client.V1ObjectMeta(name="articles", namespace="app"),
                status=client.V1ServiceStatus(load_balancer=lb),
            ),
            client.V1Service(
                metadata=client.V1ObjectMeta(name="other", namespace="app"),
                status=client.V1ServiceStatus(load_balancer=client.V1LoadBalancerStatus()),
            ),
        ]
        self.slices = [
            # a terminating pod that still serves keeps its entries; a lost one does not
            _slice("app", "articles", ("10.244.0.7", True), ("10.244.2.13", False)),
            _slice("app", "other", ("10.244.9.9", True)),
        ]

    def list_service_for_all_namespaces(self):
        self.calls += 1
        return client.V1ServiceList(items=self.services)

    def list_endpoint_slice_for_all_namespaces(self):
        return client.V1EndpointSliceList(items=self.slices)


class Conntrack:
    def __init__(self, lines: list[str]) -> None:
        self.lines, self.deleted = lines, []

    def __call__(self, argv: list[str]) -> subprocess.CompletedProcess:
        if "-D" in argv:
            self.deleted.append(argv[argv.index("--sport") + 1])
        return subprocess.CompletedProcess(argv, 0, "\n".join(self.lines) if "-L" in argv else "")


def test_a_pass_deletes_exactly_the_stale_tuple():
    api, ct = FakeApi(), Conntrack(LINES)
    pruner = Pruner(api, api, [LB, "10.199.1.2"], run=ct)
    pruner.binary = "conntrack"  # the machine's binary is not needed to choose
    assert pruner.once() == 1
    assert ct.deleted == ["45966"]


def test_a_pass_without_syn_entries_to_the_pool_asks_the_api_nothing():
    api, ct = FakeApi(), Conntrack([LINES[2], LINES[3]])
    pruner = Pruner(api, api, [LB], run=ct)
    pruner.binary = "conntrack"
    assert pruner.once() == 0
    assert api.calls == 0 and ct.deleted == []


def test_without_the_conntrack_command_it_does_nothing():
    api, ct = FakeApi(), Conntrack(LINES)
    pruner = Pruner(api, api, [LB], run=ct)
    pruner.binary = None
    assert pruner.once() == 0 and ct.deleted == []
