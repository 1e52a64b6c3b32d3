"""Turning a verdict plus measurements into the report (JSON) and its human-readable table."""

from __future__ import annotations

import json
from typing import Any

from loadgen import nodes
from loadgen.verdict import Verdict

REPORT_VERSION = 1


def pod_rows(verdict: Verdict, resources: dict[str, dict] | None = None) -> list[dict]:
    rows = []
    for pod in verdict.pods:
        row: dict[str, Any] = {
            "name": pod,
            "requests": round(verdict.requests[pod]),
            "share": round(verdict.shares[pod], 4),
            "expected_share": round(verdict.expected_share, 4),
            "units": round(verdict.units[pod], 2),  # what was tested: see distribution.unit
        }
        if resources is not None:
            row["resources"] = resources.get(pod)
        rows.append(row)
    return rows


def distribution(verdict: Verdict) -> dict:
    return {
        "unit": verdict.unit,
        "units_total": round(verdict.units_total, 2),
        "expected_pods": verdict.expected_pods,
        "statistic": None if verdict.statistic is None else round(verdict.statistic, 4),
        "df": verdict.df,
        "p_value": verdict.p_value,
        "alpha": verdict.alpha,
        "method": verdict.method,
        "power_vs_2_1_1": None
        if verdict.power_vs_2_1_1 is None
        else round(verdict.power_vs_2_1_1, 4),
    }


def unverifiable(mode: str, reason: str, **extra: Any) -> dict:
    report: dict[str, Any] = {
        "version": REPORT_VERSION,
        "mode": mode,
        "verdict": "unverifiable",
        "reason": reason,
        "exit_code": 2,
    }
    report.update(extra)
    return report


def dumps(report: dict) -> str:
    return json.dumps(report, indent=2, sort_keys=False)


def _fmt(value: Any, spec: str = "") -> str:
    if value is None:
        return "-"
    return format(value, spec) if spec else str(value)


def render_table(report: dict) -> str:
    """The human-readable view of a verify report (what `--json` leaves out)."""
    lines = [f"verdict: {report['verdict']} - {report['reason']}"]
    pods = report.get("pods") or []
    if pods:
        unit = (report.get("distribution") or {}).get("unit", "request")
        # The node column only where the report has nodes (in-cluster: the API names them).
        node_width = max((len(p.get("node") or "") for p in pods), default=0)
        node_width = max(node_width, len("node")) if node_width else 0
        node_head = f" {'node':<{node_width}}" if node_width else ""
        header = (
            f"{'pod':<40}{node_head} {'requests':>9} {'share':>7} {'expected':>8} {unit + 's':>12}"
        )
        has_res = any(p.get("resources") for p in pods)
        has_idle = any(p.get("resources_idle") for p in pods)
        if has_res:
            header += f" {'cpu peak/mean m':>16} {'mem peak/mean MiB':>18}"
        if has_idle:
            header += f" {'idle cpu m':>10} {'idle MiB':>9}"
        lines.append(header)
        for p in pods:
            node = f" {p.get('node') or '-':<{node_width}}" if node_width else ""
            line = (
                f"{p['name']:<40}{node} {p['requests']:>9} {p['share']:>7.1%} "
                f"{p['expected_share']:>8.1%} {_fmt(p.get('units')):>12}"
            )
            res = p.get("resources")
            if has_res and res:
                cpu = f"{_fmt(res.get('cpu_peak_m'))}/{_fmt(res.get('cpu_mean_m'))}"
                mem = f"{_fmt(res.get('memory_peak_mib'))}/{_fmt(res.get('memory_mean_mib'))}"
                line += f" {cpu:>16} {mem:>18}"
            elif has_res:
                line += f" {'-':>16} {'-':>18}"
            idle = p.get("resources_idle")
            if has_idle:
                idle = idle or {}
                line += (
                    f" {_fmt(idle.get('cpu_mean_m')):>10} {_fmt(idle.get('memory_mean_mib')):>9}"
                )
            lines.append(line)
    node_line = nodes.text_line(report)
    if node_line:
        lines.append(node_line)
    dist = report.get("distribution")
    if dist and dist.get("p_value") is not None:
        lines.append(
            f"test: {dist['method']}; X2={dist['statistic']} df={dist['df']} "
            f"p={dist['p_value']:.4g} alpha={dist['alpha']:g} "
            f"power vs 2:1:1={_fmt(dist.get('power_vs_2_1_1'))}"
        )
    lat = report.get("latency_ms")
    if lat:
        lines.append(
            f"latency ms: p50={_fmt(lat.get('p50'))} p90={_fmt(lat.get('p90'))} "
            f"p99={_fmt(lat.get('p99'))}"
        )
    if "total" in report:
        lines.append(f"total: {report['total']} requests, errors: {report.get('errors', 0)}")
    res_note = (report.get("resources") or {}).get("note")
    if res_note:
        lines.append(f"resources: {res_note}")
    lines.extend(f"note: {n}" for n in report.get("notes") or [])
    return "\n".join(lines)
