"""fortio's JSON result: recorded real outputs, hostile interleavings, and the real binary
on loopback with its output parsed by the same code that parses the load-generator pod logs."""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from lg_procs import FORTIO, RANDOM_WEIGHT, app_servers, haproxy, run_fortio

from loadgen import fortio, prom
from loadgen.verdict import decide

FIXTURES = Path(__file__).with_name("fixtures")
KEEPALIVE = (FIXTURES / "fortio-1.68.2-keepalive.log").read_text()
NO_KEEPALIVE = (FIXTURES / "fortio-1.68.2-no-keepalive.log").read_text()


def test_recorded_keepalive_run() -> None:
    s = fortio.summarize(fortio.extract_result(KEEPALIVE))
    assert s["total"] == 240 and s["errors"] == 0
    assert s["connections"] == 12 and s["threads"] == 12
    assert s["keepalive"] is True
    assert s["version"] == "1.68.2"
    lat = s["latency_ms"]
    assert 0 < lat["p50"] <= lat["p90"] <= lat["p99"]
    assert s["qps"] > 0


def test_recorded_no_keepalive_run() -> None:
    s = fortio.summarize(fortio.extract_result(NO_KEEPALIVE))
    assert s["connections"] == 240
    assert s["keepalive"] is False


def _doc_lines() -> tuple[list[str], list[str]]:
    """(the JSON document's lines, the stderr lines) of the recorded keep-alive run."""
    lines = KEEPALIVE.splitlines()
    start, end = lines.index("{"), lines.index("}")
    return lines[start : end + 1], lines[:start] + lines[end + 1 :]


@pytest.mark.parametrize("cut", [1, 2, 17, 60, -2, -1])
def test_log_lines_inside_the_document_are_dropped(cut: int) -> None:
    doc, logs = _doc_lines()
    json_log = '{"ts":1795729074.07,"level":"info","file":"periodic.go","msg":"T001 ended"}'
    mixed = "\n".join([*doc[:cut], *logs[:4], json_log, "[0]   1 socket used", *doc[cut:]])
    s = fortio.summarize(fortio.extract_result(mixed))
    assert s["total"] == 240 and s["connections"] == 12


def test_last_result_wins_and_noise_around_it_is_ignored() -> None:
    doc, _ = _doc_lines()
    first = json.loads("\n".join(doc))
    first["DurationHistogram"]["Count"] = 1
    text = "starting\n" + json.dumps(first, indent=2) + "\nnoise {\n" + "\n".join(doc) + "\nbye\n"
    assert fortio.summarize(fortio.extract_result(text))["total"] == 240


def test_no_result_raises() -> None:
    with pytest.raises(fortio.FortioParseError):
        fortio.extract_result('{"level":"info","msg":"hi"}\nAll done\n{"a": 1}\n')
    with pytest.raises(fortio.FortioParseError):
        fortio.extract_result("")


def test_errors_are_the_non_200_codes() -> None:
    result = fortio.extract_result(KEEPALIVE)
    result["RetCodes"] = {"200": 230, "503": 6, "-1": 4}
    assert fortio.summarize(result)["errors"] == 10


def test_merge_adds_counts_and_merges_histograms() -> None:
    a = fortio.extract_result(KEEPALIVE)
    b = fortio.extract_result(NO_KEEPALIVE)
    m = fortio.merge([a, b])
    sa, sb = fortio.summarize(a), fortio.summarize(b)
    assert m["total"] == 480 and m["runs"] == 2
    assert m["connections"] == 252
    assert m["keepalive"] is False
    assert m["qps"] == pytest.approx(sa["qps"] + sb["qps"], abs=0.2)
    lo = min(sa["latency_ms"]["p50"], sb["latency_ms"]["p50"])
    hi = max(sa["latency_ms"]["p50"], sb["latency_ms"]["p50"])
    assert lo <= m["latency_ms"]["p50"] <= hi


@pytest.mark.slow
@pytest.mark.skipif(not FORTIO.exists(), reason="fortio not installed (make tools)")
def test_real_fortio_through_haproxy_counts_and_verdict() -> None:
    """fortio -c 30 -n 600 with keep-alive over 3 real apps: its JSON (stdout and stderr
    interleaved, as in a pod log) parses, its totals match the apps' own counters, and the
    verdict on the apps' counters with fortio's socket count is not flagged."""
    with (
        app_servers(["f-a", "f-b", "f-c"]) as apps,
        haproxy([(a.name, a.port, RANDOM_WEIGHT) for a in apps], balance="random(1)") as url,
    ):

        def served() -> dict[str, float]:
            out = {}
            for a in apps:
                with urllib.request.urlopen(a.backend["9090"] + "/metrics", timeout=5) as resp:
                    out[a.name] = prom.served_total(resp.read().decode())
            return out

        before = served()
        proc = run_fortio(url + "/article1")
        after = served()
    assert proc.returncode == 0, proc.stdout[-500:]
    s = fortio.summarize(fortio.extract_result(proc.stdout))
    assert s["total"] == 600 and s["errors"] == 0
    delta = {k: after[k] - before[k] for k in after}
    assert sum(delta.values()) == 600
    assert s["connections"] >= 30
    v = decide(delta, keepalive=True, connections=s["connections"], expected_pods=3)
    assert v.outcome == "balanced", v.reason


_LOG_LINES = [
    *[line for line in KEEPALIVE.splitlines() if line and not line.startswith((" ", "{", "}"))],
    '{"ts":1795729074.07,"level":"info","r":7,"file":"periodic.go","line":851,"msg":"T001 ended"}',
    '{"ts":1795729074.08,"level":"warn","file":"http_client.go","msg":"Content-length missing"}',
    "Ended after 7.221179ms : 10 calls. qps=1384.8",
]


@given(st.lists(st.tuples(st.integers(min_value=0), st.sampled_from(_LOG_LINES)), max_size=12))
@settings(max_examples=60, deadline=None, derandomize=True)
def test_any_interleaving_of_log_lines_parses(inserts: list[tuple[int, str]]) -> None:
    """Property: wherever stderr lines land between the document's lines, the result is found
    and is the same."""
    doc, _ = _doc_lines()
    lines = list(doc)
    for pos, line in inserts:
        lines.insert(pos % (len(lines) + 1), line)
    s = fortio.summarize(fortio.extract_result("\n".join(lines)))
    assert (s["total"], s["connections"], s["errors"]) == (240, 12, 0)
