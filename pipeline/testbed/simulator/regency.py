"""One simulated regency: its points, its calendar (holidays, rain, closures) and ordinary trade.

``_Simulation`` holds the one seeded generator and the record of what was planted; the leakage
itself is planted by ``planting`` and the feed lines written by ``writer``.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd

from pipeline.reference.calendar import public_holidays
from pipeline.testbed.simulator.points import make_points, operator_slot
from pipeline.testbed.simulator.profiles import (
    CASH,
    CLOSURE_REASONS,
    DAY_NOISE,
    HOLIDAY_EFFECT,
    HOURLY,
    JAKARTA,
    PAID,
    PAYMENT_MIX,
    RAIN_EFFECT,
    REFUND,
    REFUND_RATE,
    TARIFFS,
    TICKETS,
    TYPES,
    VOID,
    VOID_RATE,
    WEEKLY,
)


def _iso_utc(seconds: int) -> str:
    return datetime.fromtimestamp(int(seconds), UTC).isoformat()


def _iso_local(seconds: int) -> str:
    return datetime.fromtimestamp(int(seconds), JAKARTA).isoformat()


class _Simulation:
    """One run: arrays of transactions plus the bookkeeping of what was planted."""

    def __init__(
        self, *, points, days, seed, start, leakage, volume, target_rows=None, scenario="varied"
    ):
        self.rng = np.random.default_rng(seed)
        self.varied = scenario == "varied"
        self.days = days
        self.start_local = start
        self.t0 = int(start.timestamp())  # local midnight of day 0, as a UTC epoch second
        self.weekday0 = start.weekday()
        self.pts, self.registry = make_points(self.rng, points, volume, varied=self.varied)
        if target_rows:
            # Expected rows = each point's daily level x its type's mean weekday factor x days.
            weekly = np.array([np.mean(WEEKLY[t]) for t in TYPES])[self.pts.types]
            expected = float((self.pts.daily * weekly).sum() * days)
            self.pts.daily = self.pts.daily * (target_rows / expected)
        self.labels: list[dict] = []
        self.closures: list[dict] = []
        self.calendar: list[dict] = []
        self.clean_days = 28 if days >= 42 else max(3, days // 2)
        self.leakage = leakage
        self.busy_days: dict[int, set[int]] = {}  # point -> days already used by an event
        self.day_ok = np.ones(days, dtype=bool)  # False: a holiday or rain day (keep events off)

    # ---- regency-wide calendar -------------------------------------------------------------
    def plan_calendar(self) -> np.ndarray:
        """Multipliers [point, hour] for holidays, rain and closures; records their labels."""
        factor = np.ones((len(self.pts.ids), self.days * 24))
        type_names = np.array(TYPES)[self.pts.types]
        # In this order: each draws from the one generator, and rain and closures avoid holidays.
        self._plan_holidays(factor, type_names)
        self._plan_rain(factor, type_names)
        self._plan_closures(factor)
        if self.varied:
            self._plan_drift(factor)
            self._plan_regional_day(factor, type_names)
            self._plan_local_dips(factor)
        return factor

    def _plan_drift(self, factor: np.ndarray) -> None:
        """Each point's slow ordinary trend (not leakage): up or down by ``drift`` over the run."""
        ramp = np.arange(self.days * 24) / (self.days * 24)
        factor *= 1.0 + self.pts.drift[:, None] * ramp[None, :]

    def _plan_regional_day(self, factor: np.ndarray, type_names: np.ndarray) -> None:
        """A local day off the calendar does not know (a regional event, a bank holiday of the
        regency): every parking and market point closed or nearly so, in the scored weeks. Not in
        calendar.csv nor closures.csv; the peers being closed too is the only evidence."""
        scored = np.arange(self.clean_days, self.days)
        candidates = scored[self.day_ok[scored]]
        if not len(candidates):
            return
        day = int(self.rng.choice(candidates))
        self.day_ok[day] = False
        affected = np.flatnonzero(np.isin(type_names, ["parking", "market"]))
        level = self.rng.uniform(0.0, 0.1, len(affected))
        for p, share in zip(affected.tolist(), level.tolist(), strict=True):
            factor[p, day * 24 : (day + 1) * 24] *= share
            self.label(
                p, "regional", day * 24, (day + 1) * 24, note="regional day off, not in calendar"
            )

    def _plan_local_dips(self, factor: np.ndarray) -> None:
        """A few hours at 50-80% of normal at one point (a local shower, a road dug up): ordinary
        noise that must not become a case."""
        n_points = len(self.pts.ids)
        scored = np.arange(self.clean_days, self.days)
        candidates = scored[self.day_ok[scored]]
        if not len(candidates):
            return
        for _ in range(max(2, n_points // 6)):
            p = int(self.rng.integers(n_points))
            day = int(self.rng.choice(candidates))
            open_, close = int(self.pts.open_[p]), int(self.pts.close[p])
            length = int(self.rng.integers(2, 6))
            begin = int(self.rng.integers(open_, max(open_ + 1, close - length)))
            share = float(self.rng.uniform(0.5, 0.8))
            lo, hi = day * 24 + begin, day * 24 + min(close, begin + length)
            factor[p, lo:hi] *= share
            self.label(p, "dip", lo, hi, note=f"local dip to {share:.0%} for {hi - lo} hours")
            self.busy_days.setdefault(p, set()).add(day)

    def _plan_holidays(self, factor: np.ndarray, type_names: np.ndarray) -> None:
        n_points = len(self.pts.ids)
        first = self.start_local.date()
        years = range(first.year, (first + timedelta(days=self.days)).year + 1)
        national = public_holidays(tuple(years))
        for day in range(self.days):
            when = first + timedelta(days=day)
            if when not in national:
                continue
            self.day_ok[day] = False
            effect = np.array([HOLIDAY_EFFECT[t] for t in type_names])
            factor[:, day * 24 : (day + 1) * 24] *= effect[:, None]
            name = national.get(when)
            self.calendar.append(
                {
                    "date": when.isoformat(),
                    "kind": "holiday",
                    "name": name,
                    "starts_at": _iso_local(self.t0 + day * 86400),
                    "ends_at": _iso_local(self.t0 + (day + 1) * 86400),
                    "revenue_types": ",".join(TYPES),
                }
            )
            for p in range(n_points):
                self.label(p, "holiday", day * 24, (day + 1) * 24, note=f"{name} ({when})")

    def _plan_rain(self, factor: np.ndarray, type_names: np.ndarray) -> None:
        n_points = len(self.pts.ids)
        first = self.start_local.date()
        scored = np.arange(self.clean_days, self.days)
        candidates = scored[self.day_ok[scored]]
        n_rain = (1 if self.days < 49 else 2) if self.days <= 70 else self.days // 30
        for day in self.rng.choice(candidates, size=min(n_rain, len(candidates)), replace=False):
            self.day_ok[day] = False
            begin = int(self.rng.integers(7, 14))
            length = int(self.rng.integers(3, 6))
            lo, hi = day * 24 + begin, day * 24 + begin + length
            self.calendar.append(
                {
                    "date": (first + timedelta(days=int(day))).isoformat(),
                    "kind": "rain",
                    "name": "hujan lebat",
                    "starts_at": _iso_local(self.t0 + lo * 3600),
                    "ends_at": _iso_local(self.t0 + hi * 3600),
                    "revenue_types": "parking,market",
                }
            )
            for p in range(n_points):
                kind = type_names[p]
                if (
                    kind in RAIN_EFFECT
                    and self.pts.open_[p] < begin + length
                    and self.pts.close[p] > begin
                ):
                    factor[p, lo:hi] *= RAIN_EFFECT[kind]
                    self.label(p, "rain", lo, hi, note=f"heavy rain, {kind} dips")

    def _plan_closures(self, factor: np.ndarray) -> None:
        n_points = len(self.pts.ids)
        n_closures = max(1, n_points // 200)
        closure_days = np.flatnonzero(self.day_ok[: self.days - 1])
        closure_days = closure_days[closure_days >= self.clean_days]
        for p in self.rng.choice(n_points, size=min(n_closures, n_points), replace=False):
            if not len(closure_days):
                break
            day = int(self.rng.choice(closure_days))
            length = int(self.rng.integers(1, 3))
            length = min(length, self.days - day)
            lo, hi = day * 24, (day + length) * 24
            factor[p, lo:hi] = 0.0
            reason = CLOSURE_REASONS[self.rng.integers(len(CLOSURE_REASONS))]
            self.closures.append(
                {
                    "point_id": self.pts.ids[p],
                    "starts_at": _iso_local(self.t0 + lo * 3600),
                    "ends_at": _iso_local(self.t0 + hi * 3600),
                    "reason": reason,
                }
            )
            self.label(p, "closure", lo, hi, note=f"announced closure: {reason}")
            self.busy_days.setdefault(int(p), set()).update(range(day, day + length))

    def label(
        self,
        p: int,
        kind: str,
        lo_hour: int | float,
        hi_hour: int | float,
        operator: str = "",
        note: str = "",
        detectability: float | None = None,
    ) -> None:
        """Record one planted event at point p over [lo_hour, hi_hour) hours from day 0
        (``detectability``: see ``planting.detectability``; left blank where not assessed)."""
        self.labels.append(
            {
                "point_id": self.pts.ids[p],
                "kind": kind,
                "start_utc": _iso_utc(self.t0 + round(lo_hour * 3600)),
                "end_utc": _iso_utc(self.t0 + round(hi_hour * 3600)),
                "operator_id": operator,
                "note": note,
                "detectability": "" if detectability is None else f"{detectability:.2f}",
            }
        )

    # ---- ordinary trade ---------------------------------------------------------------------
    def generate(self, factor: np.ndarray) -> pd.DataFrame:
        """Ordinary trade: Poisson counts per point-hour, times uniform within the hour."""
        rng, pts = self.rng, self.pts
        n_points, hours = len(pts.ids), self.days * 24
        hour_of_day = np.arange(hours) % 24
        weekday = (self.weekday0 + np.arange(hours) // 24) % 7
        hourly = np.stack([HOURLY[t] for t in TYPES])[pts.types][:, hour_of_day]
        weekly = np.array([WEEKLY[t] for t in TYPES])[pts.types][:, weekday]
        day_noise = rng.lognormal(0.0, DAY_NOISE, (n_points, self.days)).repeat(24, axis=1)
        hour_noise = rng.gamma(25.0, 1 / 25.0, (n_points, hours))
        rate = pts.daily[:, None] * hourly * weekly * day_noise * hour_noise * factor
        counts = rng.poisson(rate).ravel()
        cell = np.repeat(np.arange(n_points * hours), counts)
        p = (cell // hours).astype(np.int32)
        hour = cell % hours
        t = self.t0 + hour * 3600 + rng.integers(0, 3600, len(cell))
        return self._fill(p, t)

    def _fill(self, p: np.ndarray, t: np.ndarray) -> pd.DataFrame:
        """Method, amount, status, operator and payer for transactions at (point, time)."""
        rng, pts = self.rng, self.pts
        n = len(p)
        kinds = pts.types[p]
        method = np.zeros(n, dtype=np.int8)
        amount = np.zeros(n, dtype=np.int64)
        u = rng.random(n)
        for ti, kind in enumerate(TYPES):
            rows = np.flatnonzero(kinds == ti)
            if not len(rows):
                continue
            cumulative = np.cumsum(PAYMENT_MIX[kind])
            method[rows] = np.minimum(np.searchsorted(cumulative, u[rows] * cumulative[-1]), 4)
            if kind in TARIFFS:
                values, weights = TARIFFS[kind]
                amount[rows] = rng.choice(values, size=len(rows), p=weights)
            else:
                median, sigma, step = TICKETS[kind]
                raw = median * pts.ticket_level[p[rows]] * rng.lognormal(0.0, sigma, len(rows))
                amount[rows] = np.maximum(step, np.round(raw / step) * step)
        status = np.full(n, PAID, dtype=np.int8)
        v = rng.random(n)
        status[v < VOID_RATE + REFUND_RATE] = REFUND
        status[v < VOID_RATE] = VOID
        local_hour = ((t - self.t0) % 86400) / 3600.0
        op = pts.op_offset[p] + operator_slot(pts, p, local_hour, (t - self.t0) // 86400)
        # Regular customers: each point draws most non-cash payers from its own part of a pool.
        pool = max(2000, 60 * len(pts.ids))
        payer = (
            (
                p.astype(np.int64) * 7919
                + (rng.random(n) ** 2 * 400).astype(np.int64)
                + (rng.random(n) < 0.3) * rng.integers(0, pool, n)
            )
            % pool
        ).astype(np.int32)
        payer[method == CASH] = -1
        return pd.DataFrame(
            {
                "p": p.astype(np.int32),
                "t": t.astype(np.int64),
                "amount": amount,
                "method": method,
                "status": status,
                "op": op.astype(np.int32),
                "payer": payer,
            }
        )
