"""The printable inspection report of a case (berita acara pemeriksaan): its chart drawn as
SVG on the server, so the printed page and its PDF hold the picture without any script."""

from __future__ import annotations

from dataclasses import dataclass

WIDTH, HEIGHT, PAD = 680, 200, 4


@dataclass
class ReportChart:
    width: int
    height: int
    actual: str  # SVG polyline points of the hourly revenue
    median: str  # of the usual (prior weeks' median)
    flagged: list[tuple[float, float]]  # (x, width) of each flagged hour
    top_rp: int  # the revenue the top of the chart stands for


def _polyline(values: list, x_of, y_of) -> str:
    # A gap (no data, or no band yet) breaks nothing: the line simply skips the hour.
    return " ".join(f"{x_of(i):.1f},{y_of(v):.1f}" for i, v in enumerate(values) if v is not None)


def report_chart(chart: dict) -> ReportChart | None:
    """``case_chart``'s hours scaled into a ``WIDTH`` x ``HEIGHT`` box (None without hours)."""
    hours = len(chart.get("t") or [])
    if hours < 2:
        return None
    top = max([1] + [v for key in ("actual", "median", "q3") for v in chart[key] if v is not None])
    step = (WIDTH - 2 * PAD) / (hours - 1)

    def x_of(i: int) -> float:
        return PAD + i * step

    def y_of(value: float) -> float:
        return HEIGHT - PAD - (HEIGHT - 2 * PAD) * value / top

    flagged = [(x_of(i) - step / 2, step) for i, f in enumerate(chart["flagged"]) if f]
    return ReportChart(
        WIDTH,
        HEIGHT,
        _polyline(chart["actual"], x_of, y_of),
        _polyline(chart["median"], x_of, y_of),
        flagged,
        int(top),
    )
