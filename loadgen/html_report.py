"""`verify --html FILE` / `python -m loadgen html`: the report as one self-contained page.

Per pod: its share of the load as a bar, the share uniform assignment expects, and the band of
shares the test accepts; then CPU/memory under load beside the idle baseline. Hand-written
HTML + inline SVG with the standard library's html.escape: one small static page needs no
template engine, no JavaScript from elsewhere and works offline.
"""

from __future__ import annotations

import html
import math
from typing import Any

from loadgen import nodes, stats

BAR_WIDTH = 520  # px for a share of `scale`


def accepted_band(dist: dict[str, Any]) -> tuple[float, float] | None:
    """Shares one pod may have, the others sharing the rest equally, for the split test to
    accept: a pod off by d units gives X2 = d^2 k / ((k-1) E) with E = U/k, so it passes
    while |d| < sqrt(c (k-1) E / k), c the chi-square critical value at alpha."""
    k, units, alpha = dist.get("expected_pods"), dist.get("units_total"), dist.get("alpha")
    if dist.get("unit") == "client" or not k or k < 2 or not units or not alpha:
        return None
    crit = stats.chi2_isf(float(alpha), int(k) - 1)
    half = math.sqrt(crit * (k - 1) / k * (units / k)) / units
    return max(0.0, 1 / k - half), min(1.0, 1 / k + half)


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _num(value: Any, spec: str = ".1f") -> str:
    return "-" if value is None else format(value, spec)


def _share_rows(rep: dict[str, Any], band: tuple[float, float] | None) -> str:
    pods = rep.get("pods") or []
    scale = max([p.get("share") or 0 for p in pods] + [band[1] if band else 0, 0.01]) * 1.1
    x = lambda share: BAR_WIDTH * share / scale  # noqa: E731 (a local scale)
    with_nodes = any(p.get("node") for p in pods)
    rows = []
    for i, p in enumerate(pods):
        node = f'<td class="node">{_e(p.get("node") or "-")}</td>' if with_nodes else ""
        share = float(p.get("share") or 0.0)
        expected = float(p.get("expected_share") or 0.0)
        inside = band is None or band[0] <= share <= band[1]
        band_svg = (
            f'<rect class="band" x="{x(band[0]):.1f}" y="2" width="{x(band[1]) - x(band[0]):.1f}" '
            'height="26" fill="#cde8cf"/>'
            if band
            else ""
        )
        rows.append(
            f'<tr class="pod" data-pod="{_e(p["name"])}" data-share="{share:.4f}" '
            f'data-inside="{str(inside).lower()}"><td class="name">{_e(p["name"])}</td>{node}'
            f'<td><svg width="{BAR_WIDTH + 10}" height="30" role="img" '
            f'aria-label="{_e(p["name"])} share {share:.1%}">{band_svg}'
            f'<rect class="bar" id="bar-{i}" x="0" y="7" width="{x(share):.1f}" height="16" '
            f'fill="{"#2f6fb3" if inside else "#c0392b"}"/>'
            f'<line class="expected" x1="{x(expected):.1f}" x2="{x(expected):.1f}" y1="0" '
            'y2="30" stroke="#222" stroke-dasharray="3,2"/></svg></td>'
            f'<td class="num">{share:.1%}</td><td class="num">{_e(p.get("requests"))}</td>'
            f'<td class="num">{_e(p.get("units"))}</td></tr>'
        )
    return "\n".join(rows)


def _cpu_bars(load: dict[str, Any], idle: dict[str, Any], top: float) -> str:
    """Mean CPU under load (orange) above the idle mean (purple), on one scale for all pods."""
    width = 240

    def w(v: Any) -> float:
        return width * float(v) / top if v is not None and top > 0 else 0.0

    return (
        f'<svg width="{width + 4}" height="22" role="img" aria-label="CPU under load and idle">'
        f'<rect class="cpu-load" x="0" y="1" width="{w(load.get("cpu_mean_m")):.1f}" '
        'height="9" fill="#e67e22"/>'
        f'<rect class="cpu-idle" x="0" y="12" width="{w(idle.get("cpu_mean_m")):.1f}" '
        'height="9" fill="#8e44ad"/></svg>'
    )


def _resource_rows(rep: dict[str, Any]) -> str:
    rows = []
    pods = rep.get("pods") or []
    top = max(
        [float((p.get("resources") or {}).get("cpu_mean_m") or 0) for p in pods]
        + [float((p.get("resources_idle") or {}).get("cpu_mean_m") or 0) for p in pods]
        + [0.0]
    )
    for p in pods:
        load = p.get("resources") or {}
        idle = p.get("resources_idle") or {}
        rows.append(
            f'<tr class="res" data-pod="{_e(p["name"])}"><td class="name">{_e(p["name"])}</td>'
            f"<td>{_cpu_bars(load, idle, top)}</td>"
            f'<td class="num">{_num(load.get("cpu_peak_m"))}</td>'
            f'<td class="num">{_num(load.get("cpu_mean_m"))}</td>'
            f'<td class="num">{_num(idle.get("cpu_mean_m"))}</td>'
            f'<td class="num">{_num(load.get("memory_peak_mib"))}</td>'
            f'<td class="num">{_num(idle.get("memory_mean_mib"))}</td></tr>'
        )
    return "\n".join(rows)


def render(rep: dict[str, Any]) -> str:
    dist = rep.get("distribution") or {}
    band = accepted_band(dist)
    verdict = str(rep.get("verdict", "unknown"))
    colour = {"balanced": "#1e7b34", "sticky": "#1e7b34", "unverifiable": "#8a6d00"}.get(
        verdict, "#a12a1d"
    )
    band_text = (
        f"green band: the share one pod may have (the others equal) for the {dist.get('method')} "
        f"to accept at alpha={dist.get('alpha')}: {band[0]:.1%} to {band[1]:.1%}"
        if band
        else "no band: " + ("the unit is the client (sticky sessions)"
                            if dist.get("unit") == "client" else "no test was run")
    )  # fmt: skip
    res_note = (rep.get("resources") or {}).get("note", "no resource figures")
    notes = "".join(f"<li>{_e(n)}</li>" for n in rep.get("notes") or [])
    node_head = "<th>node</th>" if any(p.get("node") for p in rep.get("pods") or []) else ""
    node_line = nodes.text_line(rep)
    node_p = (
        f'<p id="nodes" data-nodes-served="{_e(rep["nodes_served"])}">{_e(node_line)}</p>'
        if node_line
        else ""
    )
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<title>loadgen verify: {_e(verdict)}</title>
<style>
body {{ font: 14px/1.4 system-ui, sans-serif; margin: 24px; color: #222; }}
.verdict {{ font-size: 22px; font-weight: 600; color: {colour}; }}
table {{ border-collapse: collapse; margin: 12px 0; }}
td, th {{ padding: 2px 8px; text-align: left; }}
td.name {{ white-space: nowrap; }}
td.num {{ text-align: right; font-variant-numeric: tabular-nums; }}
</style></head><body>
<h1>Load distribution</h1>
<p class="verdict" id="verdict" data-verdict="{_e(verdict)}">{_e(verdict)}</p>
<p id="reason">{_e(rep.get("reason", ""))}</p>
<h2>Share of the load per pod</h2>
<p id="band" data-low="{band[0] if band else ""}" data-high="{band[1] if band else ""}">
{_e(band_text)}; dashed line: the share uniform assignment expects.</p>
<table id="shares"><tr><th>pod</th>{node_head}<th>share of the load</th><th>share</th>
<th>requests</th><th>{_e(dist.get("unit", "unit"))}s</th></tr>
{_share_rows(rep, band)}
</table>
{node_p}
<p>test: {_e(dist.get("method"))}; p={_num(dist.get("p_value"), ".3g")};
alpha={_e(dist.get("alpha"))};
{_e(dist.get("units_total"))} {_e(dist.get("unit"))}s over {_e(dist.get("expected_pods"))} pods;
power against a 2:1:1 skew {_e(dist.get("power_vs_2_1_1"))}</p>
<h2>CPU and memory per pod</h2>
<p id="resources-note">{_e(res_note)}</p>
<table id="resources"><tr><th>pod</th><th>CPU: under load (orange), idle (purple)</th>
<th>CPU peak m</th><th>CPU mean m</th><th>idle CPU m</th>
<th>memory peak MiB</th><th>idle MiB</th></tr>
{_resource_rows(rep)}
</table>
<h2>Notes</h2><ul id="notes">{notes}</ul>
</body></html>
"""


def write(rep: dict[str, Any], path: str) -> None:
    with open(path, "w", encoding="utf-8") as fh:
        fh.write(render(rep))
