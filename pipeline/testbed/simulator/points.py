"""The simulated collection points: their registry rows, trade levels, opening hours and shifts."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pipeline.core.times import DEFAULT_TIMEZONE
from pipeline.testbed.simulator.profiles import (
    DAILY_MEDIAN,
    DISTRICTS,
    DRIFT_SIGMA,
    OPEN_HOURS,
    OPERATOR_NAMES,
    PLACES,
    PREFIX,
    ROTATING_SHARE,
    SIZE_SIGMA,
    TINY_DAILY,
    TINY_SHARE,
    TYPE_SHARE,
    TYPES,
    VARIED_SIZE_SIGMA,
    VENUES,
    WORDS,
)


@dataclass
class Points:
    """The points as arrays indexed by point number (0 .. n-1), for vectorised drawing."""

    ids: np.ndarray
    types: np.ndarray  # index into TYPES
    daily: np.ndarray  # expected transactions on an ordinary weekday
    open_: np.ndarray
    close: np.ndarray
    shifts: np.ndarray
    op_offset: np.ndarray  # first global operator index
    operators: np.ndarray  # global operator ids
    ticket_level: np.ndarray
    # The varied scenario's: operators rotating through the shifts week by week, and an
    # ordinary trend over the run (a fraction, e.g. -0.1 = trade ends 10% lower); none in classic.
    rotates: np.ndarray | None = None
    drift: np.ndarray | None = None


def make_points(
    rng: np.random.Generator, n: int, volume: float, *, varied: bool = False
) -> tuple[Points, list[dict]]:
    """``n`` points drawn from ``rng``: their arrays and their registry rows (``points.csv``).

    ``varied`` (drawn after everything the classic scenario draws, so classic stays as it was):
    wider sizes with a few tiny points, rotating shifts at about half the points, a slow drift.
    """
    types = rng.choice(len(TYPES), size=n, p=TYPE_SHARE)
    # Every type at least once when there is room for it, so each pattern has a home.
    if n >= len(TYPES):
        types[: len(TYPES)] = np.arange(len(TYPES))
        types = rng.permutation(types)
    medians = np.array([DAILY_MEDIAN[TYPES[t]] for t in types])
    daily = np.clip(medians * rng.lognormal(0.0, SIZE_SIGMA, n) * volume, 0.5, 5000.0)
    open_ = np.array([OPEN_HOURS[TYPES[t]][0] for t in types])
    close = np.array([OPEN_HOURS[TYPES[t]][1] for t in types])
    shifts = np.where(types == TYPES.index("hotel_tax"), 3, rng.integers(2, 4, n))
    op_offset = np.concatenate([[0], np.cumsum(shifts)[:-1]])
    districts = DISTRICTS[: int(np.clip(n // 7, 2, len(DISTRICTS)))]
    counters = dict.fromkeys(TYPES, 0)
    ids, operators, registry = [], [], []
    for i, t in enumerate(types):
        kind = TYPES[t]
        counters[kind] += 1
        point_id = f"{PREFIX[kind]}-{counters[kind]:04d}"
        ids.append(point_id)
        place = PLACES[rng.integers(len(PLACES))]
        if kind == "parking":
            name = f"Parkir {place} {WORDS[rng.integers(len(WORDS))]}"
        elif kind == "market":
            name = f"Pasar {place}"
        else:
            name = (
                f"{VENUES[kind][rng.integers(len(VENUES[kind]))]} {WORDS[rng.integers(len(WORDS))]}"
            )
        names = rng.choice(len(OPERATOR_NAMES), size=shifts[i], replace=False)
        operators += [f"{point_id}-{OPERATOR_NAMES[k]}" for k in names]
        registry.append(
            {
                "point_id": point_id,
                "name": f"{name} {counters[kind]}",
                "revenue_type": kind,
                "district": districts[rng.integers(len(districts))],
                "open_hours": f"{open_[i]:02d}:00-{close[i]:02d}:00",
                "timezone": DEFAULT_TIMEZONE,
                # A taxpayer point's NPWPD (made up, from its position: no draw from the rng, so
                # every seed's world stays as it was); parking and markets have none.
                "taxpayer_id": f"P.2.{1_000_000 + i:07d}.05.01" if kind.endswith("_tax") else "",
            }
        )
    ticket_level = np.where(np.isin(types, [0, 1]), 1.0, rng.lognormal(0.0, 0.25, n))
    pts = Points(
        np.array(ids),
        types,
        daily,
        open_,
        close,
        shifts,
        op_offset,
        np.array(operators),
        ticket_level,
    )
    if varied:
        _vary(rng, pts, volume)
    return pts, registry


def _vary(rng: np.random.Generator, pts: Points, volume: float) -> None:
    """Sizes far apart (tiny points with about a sale an hour among them), rotating shifts and an
    ordinary slow drift of trade: what an independent generator had and the classic one lacked."""
    n = len(pts.ids)
    pts.daily = np.clip(pts.daily * rng.lognormal(0.0, VARIED_SIZE_SIGMA, n), 0.5, 5000.0)
    tiny = rng.random(n) < TINY_SHARE
    if n >= 8 and not tiny.any():
        tiny[rng.integers(n)] = True
    pts.daily[tiny] = rng.uniform(*TINY_DAILY, int(tiny.sum())) * volume
    pts.rotates = (rng.random(n) < ROTATING_SHARE) & (pts.shifts > 1)
    pts.drift = np.clip(rng.normal(0.0, DRIFT_SIGMA, n), -0.25, 0.25)


def _boundaries(pts: Points, p) -> tuple[np.ndarray, np.ndarray]:
    """Whole local hours where the 2nd and 3rd shifts start (the 3rd at close for 2 shifts)."""
    span = pts.close[p] - pts.open_[p]
    second = pts.open_[p] + np.round(span / pts.shifts[p]).astype(np.int64)
    third = np.where(
        pts.shifts[p] == 3, pts.open_[p] + np.round(2 * span / 3).astype(np.int64), pts.close[p]
    )
    return second, third


def shift_of(pts: Points, p: np.ndarray, hour_of_day: np.ndarray) -> np.ndarray:
    """Which shift (0..shifts-1) covers a local fractional hour at point p."""
    second, third = _boundaries(pts, p)
    return (hour_of_day >= second).astype(np.int64) + (hour_of_day >= third)


def operator_slot(pts: Points, p: np.ndarray, hour_of_day: np.ndarray, day: np.ndarray):
    """Which of point p's operators (0..shifts-1) works at a local fractional hour of a day:
    the shift's own, or at a rotating point the next one along each week."""
    shift = shift_of(pts, p, hour_of_day)
    if pts.rotates is None:
        return shift
    return np.where(pts.rotates[p], (shift + day // 7) % pts.shifts[p], shift)


def shift_of_operator(pts: Points, p: int, slot: int, day: int) -> int:
    """The shift operator ``slot`` of point p works on ``day`` (the inverse of operator_slot)."""
    if pts.rotates is None or not pts.rotates[p]:
        return slot
    return int((slot - day // 7) % pts.shifts[p])


def shift_bounds(pts: Points, p: int, shift: int) -> tuple[int, int]:
    """Local (start, end) hour of one shift at point p."""
    second, third = (int(x[0]) for x in _boundaries(pts, np.array([p])))
    edges = [int(pts.open_[p]), second, third, int(pts.close[p])]
    return edges[shift], edges[shift + 1]
