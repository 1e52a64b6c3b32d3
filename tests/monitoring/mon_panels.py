"""The dashboard's panels drawn with matplotlib from a real Prometheus' answers: one PNG per
panel and an overview of all of them, so a reviewer sees what Grafana would show."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.dates as mdates
import matplotlib.pyplot as plt
from matplotlib.axes import Axes

UNIT_LABELS = {
    "reqps": "requests/s",
    "percentunit": "share",
    "s": "seconds",
    "bytes": "bytes",
    "short": "",
}


@dataclass(frozen=True)
class Series:
    label: str
    times: list[float]  # unix seconds
    values: list[float]


@dataclass(frozen=True)
class DrawnPanel:
    title: str
    unit: str
    series: tuple[Series, ...]


def legend(fmt: str, metric: dict[str, str]) -> str:
    """Grafana's legend format: {{label}} replaced by the series' label value."""
    return re.sub(r"\{\{\s*(\w+)\s*\}\}", lambda m: metric.get(m.group(1), ""), fmt)


def series_from(result: list[dict], fmt: str) -> list[Series]:
    out = []
    for item in result:
        times = [float(t) for t, _ in item["values"]]
        values = [float(v) for _, v in item["values"]]
        out.append(Series(legend(fmt, item["metric"]), times, values))
    return sorted(out, key=lambda s: s.label)


def slug(title: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-")


def _draw(ax: Axes, panel: DrawnPanel, events: Sequence[tuple[float, str]]) -> None:
    for s in panel.series:
        ax.plot([datetime.fromtimestamp(t, UTC) for t in s.times], s.values, label=s.label)
    for at, what in events:
        ax.axvline(datetime.fromtimestamp(at, UTC), color="grey", linestyle=":", linewidth=1)
        ax.annotate(what, (datetime.fromtimestamp(at, UTC), 0), fontsize=6, rotation=90,
                    xycoords=("data", "axes fraction"), va="bottom")  # fmt: skip
    ax.set_title(panel.title, fontsize=10)
    ax.set_ylabel(UNIT_LABELS.get(panel.unit, panel.unit), fontsize=8)
    ax.set_ylim(bottom=0)
    ax.xaxis.set_major_formatter(mdates.DateFormatter("%H:%M:%S"))
    ax.tick_params(labelsize=7)
    ax.grid(True, alpha=0.3)
    if panel.series:
        ax.legend(fontsize=6, loc="upper left")


def render(
    panels: Sequence[DrawnPanel], out: Path, events: Sequence[tuple[float, str]] = ()
) -> list[Path]:
    """One PNG per panel and overview.png (all panels, two per row); returns the paths."""
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for panel in panels:
        fig, ax = plt.subplots(figsize=(7, 3.5), dpi=100)
        _draw(ax, panel, events)
        fig.tight_layout()
        path = out / f"{slug(panel.title)}.png"
        fig.savefig(path)
        plt.close(fig)
        written.append(path)
    rows = (len(panels) + 1) // 2
    fig, axes = plt.subplots(rows, 2, figsize=(14, 3.2 * rows), dpi=80)
    flat = list(axes.flat)
    for ax, panel in zip(flat, panels, strict=False):
        _draw(ax, panel, events)
    for ax in flat[len(panels) :]:
        ax.axis("off")
    fig.suptitle("selfheal-lb: articles (3 app processes on loopback, real Prometheus)")
    fig.tight_layout()
    overview = out / "overview.png"
    fig.savefig(overview)
    plt.close(fig)
    written.append(overview)
    return written
