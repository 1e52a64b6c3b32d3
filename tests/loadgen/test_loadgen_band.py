"""The band the HTML report draws is the band the test accepts: one pod just inside it (the
others sharing the rest equally) is balanced, just outside it is imbalanced."""

from __future__ import annotations

import pytest

from loadgen import report
from loadgen.html_report import accepted_band
from loadgen.verdict import DEFAULT_ALPHA, decide


@pytest.mark.parametrize(("pods", "connections"), [(3, 300), (4, 1000), (10, 2000)])
def test_band_edges_match_the_verdict(pods: int, connections: int) -> None:
    names = [f"articles-{i}" for i in range(pods)]

    def verdict(share: float) -> str:
        rest = (1.0 - share) / (pods - 1)
        requests = {n: (share if i == 0 else rest) * 100_000 for i, n in enumerate(names)}
        return decide(requests, keepalive=True, alpha=DEFAULT_ALPHA, expected_pods=pods,
                      connections=connections).outcome  # fmt: skip

    probe = decide(dict.fromkeys(names, 1000.0), keepalive=True, alpha=DEFAULT_ALPHA,
                   expected_pods=pods, connections=connections)  # fmt: skip
    low, high = accepted_band(report.distribution(probe))
    assert low < 1 / pods < high
    for edge, inward in ((high, -1), (low, 1)):
        assert verdict(edge + inward * 1e-4) == "balanced", (pods, edge)
        assert verdict(edge - inward * 1e-4) == "imbalanced", (pods, edge)
