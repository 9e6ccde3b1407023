"""Leakage planted into ordinary trade: each kind at a few points after the clean weeks.

Each planter edits the transactions of one point in a window it picks (dropping rows, voiding,
shaving tickets, adding refunds or bursts) and records a label of what it did.

A label of missing sales (under-reporting, a device off) also says how *detectable* it was:
the shortfall of its recorded sales in noise units as an oracle would read it, knowing the
event's exact window and the sales the point would have made (``detectability``). It is an
upper bound for any detector, which has to learn the usual level and cannot know the window;
an event below the detector's evidence threshold is beyond the data, whatever reads it.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from pipeline.detection.features.noise_units import poisson_shortfall
from pipeline.testbed.simulator.points import operator_slot, shift_bounds, shift_of_operator
from pipeline.testbed.simulator.profiles import (
    CASH,
    DAY_NOISE,
    HOURLY,
    PAID,
    QRIS,
    REFUND,
    TYPES,
    VOID,
)
from pipeline.testbed.simulator.regency import _Simulation


def detectability(sales_by_day: np.ndarray, removed: float, history_by_day: np.ndarray) -> float:
    """The shortfall of an event's recorded sales in noise units, read by the best detector the
    data allows: it knows the event's exact window and the shape of the point's trade (its
    weekdays, hours, trend and weather), and learns only the point's level, from the same clean
    weeks a real detector has (``history_by_day``: their sales per day). ``sales_by_day``: the
    sales each day of the window would have held before the event took ``removed`` of them.
    Its noise: counting noise and the simulator's day-to-day spread (``DAY_NOISE``) in the
    window, and the same in the history the level is learnt from. The same Poisson lower tail
    the detector reads."""
    expected = float(np.sum(sales_by_day))
    learnt = float(np.sum(history_by_day))
    if expected <= 0 or learnt <= 0:
        return 0.0

    def variance(by_day: np.ndarray) -> float:
        return float(np.sum(by_day)) + DAY_NOISE**2 * float(np.sum(np.square(by_day)))

    total = variance(sales_by_day) + (expected / learnt) ** 2 * variance(history_by_day)
    return float(poisson_shortfall(expected - removed, expected, np.sqrt(total / expected)))


class _Planter:
    """The leakage of one run, planted into its ordinary trade (``frame``).

    It draws from the run's generator and shares its record of busy days and labels, so the
    planted events keep off the calendar's holidays, rain and closures.
    """

    def __init__(self, sim: _Simulation, frame: pd.DataFrame):
        self.rng, self.pts, self.days, self.t0 = sim.rng, sim.pts, sim.days, sim.t0
        self.clean_days, self.leakage = sim.clean_days, sim.leakage
        self.busy_days, self.day_ok, self.label = sim.busy_days, sim.day_ok, sim.label
        self.varied, self.calendar = sim.varied, sim.calendar
        self.source = frame

    def plant(self) -> pd.DataFrame:
        """Plant each leakage kind at a few points after the clean weeks; returns the new frame."""
        frame = self.source.sort_values(["p", "t"], kind="stable", ignore_index=True)
        # Plain writable arrays: edits below change them in place.
        self.frame = {name: frame[name].to_numpy().copy() for name in frame.columns}
        p_sorted = self.frame["p"]
        self.row_lo = np.searchsorted(p_sorted, np.arange(len(self.pts.ids)), "left")
        self.row_hi = np.searchsorted(p_sorted, np.arange(len(self.pts.ids)), "right")
        self.drop = np.zeros(len(frame), dtype=bool)
        self.extra: list[pd.DataFrame] = []
        n_points = len(self.pts.ids)
        weeks = self.days / 7
        per_kind = max(1, round(n_points * weeks / 160)) if self.leakage else 0
        planters = {
            "under_reporting": self._under_reporting,
            "device_off": self._device_off,
            "cash_skimming": self._cash_skimming,
            "void_abuse": self._void_abuse,
            "ticket_shaving": self._ticket_shaving,
            "split_transactions": self._split_transactions,
        }
        self.kind_days: dict[str, set[int]] = {}
        for _ in range(per_kind):
            for kind, planter in planters.items():
                self.planting = kind
                p = self._pick_point(kind)
                if p is not None:
                    planter(p)
        if self.leakage and self.varied:
            self.planting = "under_reporting"
            for planter in (self._sustained_under_reporting, self._drifting_under_reporting):
                p = self._pick_point("under_reporting", prefer="restaurant_tax")
                if p is not None:
                    planter(p)
        out = pd.DataFrame(self.frame)[~self.drop]
        if self.extra:
            out = pd.concat([out, *self.extra], ignore_index=True)
        return out

    def _pick_point(self, kind: str, prefer: str | None = None) -> int | None:
        """A point with enough trade that the pattern is observable, not already used nearby.

        Leakage at a point with one sale a day is real but invisible to any detector; planting
        it there would measure the data, not the detector. Classic: points are drawn by size
        among the upper 60%. Varied: among every point (tiny ones too, where a day or a week is
        the horizon that can show it), still weighted by the square root of size; ``prefer``
        narrows to one revenue type when it has a free point.
        """
        pts = self.pts
        eligible = (
            np.ones(len(pts.ids), dtype=bool)
            if self.varied
            else pts.daily >= np.quantile(pts.daily, 0.4)
        )
        if prefer is not None and (eligible & (pts.types == TYPES.index(prefer))).any():
            eligible &= pts.types == TYPES.index(prefer)
        if kind == "cash_skimming":
            eligible &= np.isin(
                pts.types, [TYPES.index(t) for t in ("parking", "market", "restaurant_tax")]
            )
        free = np.ones(len(pts.ids), dtype=bool)
        free[[p for p, days in self.busy_days.items() if days]] = False
        pool = np.flatnonzero(eligible & free)
        if not len(pool):
            pool = np.flatnonzero(eligible)
        if not len(pool):
            return None
        weights = np.sqrt(pts.daily[pool])
        return int(self.rng.choice(pool, p=weights / weights.sum()))

    def _pick_days(self, p: int, length: int, *, to_end: bool = False) -> int:
        """First day of a `length`-day window in the scored weeks, clear of holidays and rain,
        of the point's other events, and (when there is room) not the start day of another event
        of the same kind: two device-off days at once would look like a regency-wide event."""
        last_start = self.days - length
        first = self.clean_days
        if last_start < first:
            return max(first, self.days - 1) if to_end else first
        options = np.arange(first, last_start + 1)
        busy = self.busy_days.get(p, set())
        clean = [
            d
            for d in options
            if self.day_ok[d : d + length].all() and not busy.intersection(range(d, d + length))
        ]
        taken = self.kind_days.setdefault(self.planting, set())
        spread = [d for d in clean if d not in taken]
        day = int(self.rng.choice(spread or clean or options))
        taken.add(day)
        self.busy_days.setdefault(p, set()).update(range(day, day + length))
        return day

    def _detectability(self, p: int, rows: np.ndarray) -> float:
        """``detectability`` of the sales an event at point p dropped among ``rows`` (its
        window's rows), its level learnt from the point's clean weeks."""
        clean = self._rows(p, self.t0, self._day_s(self.clean_days, 0))
        return detectability(
            self._paid_by_day(rows),
            float(self.drop[rows[self.frame["status"][rows] == PAID]].sum()),
            self._paid_by_day(clean),
        )

    def _paid_by_day(self, rows: np.ndarray) -> np.ndarray:
        """Paid sales per day (from day 0) among ``rows``, before any were dropped."""
        paid = rows[self.frame["status"][rows] == PAID]
        return np.bincount(((self.frame["t"][paid] - self.t0) // 86400).astype(np.int64))

    def _rows(self, p: int, lo_s: float, hi_s: float) -> np.ndarray:
        """Row indexes of point p with lo_s <= t < hi_s (epoch seconds)."""
        t = self.frame["t"]
        a, b = self.row_lo[p], self.row_hi[p]
        i = a + np.searchsorted(t[a:b], lo_s, "left")
        j = a + np.searchsorted(t[a:b], hi_s, "left")
        return np.arange(i, j)

    def _day_s(self, day: int, hour: float) -> float:
        return self.t0 + day * 86400 + hour * 3600

    def _under_reporting(self, p: int) -> None:
        length = int(self.rng.integers(7, 15))
        day = self._pick_days(p, min(length, self.days - self.clean_days), to_end=True)
        end_day = min(self.days, day + length)
        share = float(self.rng.uniform(0.4, 0.6))
        rows = self._rows(p, self._day_s(day, 0), self._day_s(end_day, 0))
        paid = rows[self.frame["status"][rows] == PAID]
        self.drop[paid[self.rng.random(len(paid)) < share]] = True
        self.label(
            p,
            "under_reporting",
            day * 24 + self.pts.open_[p],
            (end_day - 1) * 24 + self.pts.close[p],
            note=f"{share:.0%} of sales not tapped for {end_day - day} days",
            detectability=self._detectability(p, rows),
        )

    def _device_off(self, p: int) -> None:
        day = self._pick_days(p, 1)
        profile = HOURLY[TYPES[self.pts.types[p]]]
        length = int(self.rng.integers(3, 7))
        open_, close = self.pts.open_[p], self.pts.close[p]
        length = min(length, close - open_)
        # Start where the point is usually busiest, so the silence is in hours that should sell.
        sums = [profile[h : h + length].sum() for h in range(open_, close - length + 1)]
        begin = open_ + int(np.argmax(sums))
        rows = self._rows(p, self._day_s(day, begin), self._day_s(day, begin + length))
        self.drop[rows] = True
        self.label(
            p,
            "device_off",
            day * 24 + begin,
            day * 24 + begin + length,
            note=f"no transactions for {length} open hours",
            detectability=self._detectability(p, rows),
        )

    def _operator_shift(self, p: int) -> tuple[int, float, float]:
        shifts = self.pts.shifts[p]
        # The busiest shift of the point: the one with most of the day's trade.
        profile = HOURLY[TYPES[self.pts.types[p]]]
        weight = []
        for s in range(shifts):
            lo, hi = shift_bounds(self.pts, p, s)
            weight.append(profile[int(np.floor(lo)) : int(np.ceil(hi))].sum())
        shift = int(np.argmax(weight))
        lo, hi = shift_bounds(self.pts, p, shift)
        return shift, lo, hi

    def _operator_days(self, p: int, day: int, length: int) -> tuple[int, list]:
        """The operator on the busiest shift of ``day`` and, for each day of the event, the local
        (day, start hour, end hour) of the shift that operator works then (rotating points move
        them to another shift each week)."""
        shift, lo, hi = self._operator_shift(p)
        slot = int(operator_slot(self.pts, np.array([p]), np.array([lo]), np.array([day]))[0])
        windows = []
        for d in range(day, min(self.days, day + length)):
            lo, hi = shift_bounds(self.pts, p, shift_of_operator(self.pts, p, slot, d))
            windows.append((d, lo, hi))
        return self.pts.op_offset[p] + slot, windows

    def _cash_skimming(self, p: int) -> None:
        # Varied: short skimming, 3-4 days in one operator's shifts (an independent generator
        # had it twice, and the detector missed both).
        length = int(self.rng.integers(3, 5) if self.varied else self.rng.integers(3, 7))
        day = self._pick_days(p, length)
        op_index, windows = self._operator_days(p, day, length)
        operator = self.pts.operators[op_index]
        share = float(self.rng.uniform(0.55, 0.85))
        frame = self.frame
        for d, lo, hi in windows:
            rows = self._rows(p, self._day_s(d, lo), self._day_s(d, hi))
            cash = rows[(frame["method"][rows] == CASH) & (frame["status"][rows] == PAID)]
            self.drop[cash[self.rng.random(len(cash)) < share]] = True
        (first, lo, _), (last, _, hi) = windows[0], windows[-1]
        self.label(
            p,
            "cash_skimming",
            first * 24 + lo,
            last * 24 + hi,
            operator=operator,
            note=f"{share:.0%} of cash sales unrecorded on {operator}'s shift",
        )

    def _void_abuse(self, p: int) -> None:
        length = int(self.rng.integers(3, 8))
        day = self._pick_days(p, length)
        op_index, windows = self._operator_days(p, day, length)
        operator = self.pts.operators[op_index]
        share = float(self.rng.uniform(0.15, 0.3))
        frame, rng = self.frame, self.rng
        status, t = frame["status"], frame["t"]
        method, amount = frame["method"], frame["amount"]
        refunds = []
        for d, lo, hi in windows:
            rows = self._rows(p, self._day_s(d, lo), self._day_s(d, hi))
            paid = rows[status[rows] == PAID]
            # The sale was rung up and paid; the operator voids it late in the shift and keeps
            # the money.
            voided = paid[rng.random(len(paid)) < share]
            shift_end = self._day_s(d, hi)
            status[voided] = VOID
            t[voided] = np.maximum(t[voided], shift_end - rng.integers(60, 45 * 60, len(voided)))
            noncash = paid[method[paid] != CASH]
            if len(noncash):
                # Cash taken out of the till as "refunds" of sales that were paid by QRIS or card.
                chosen = rng.choice(
                    noncash, size=min(len(noncash), int(rng.integers(2, 5))), replace=False
                )
                refunds.append(
                    pd.DataFrame(
                        {
                            "p": np.int32(p),
                            "t": shift_end - rng.integers(60, 30 * 60, len(chosen)),
                            "amount": amount[chosen],
                            "method": np.int8(CASH),
                            "status": np.int8(REFUND),
                            "op": np.int32(op_index),
                            "payer": np.int32(-1),
                        }
                    )
                )
        self.extra += refunds
        (first, lo, _), (last, _, hi) = windows[0], windows[-1]
        self.label(
            p,
            "void_abuse",
            first * 24 + lo,
            last * 24 + hi,
            operator=operator,
            note=f"{share:.0%} of {operator}'s sales voided near shift end; "
            "cash refunds of non-cash sales",
        )

    def _ticket_shaving(self, p: int) -> None:
        length = int(self.rng.integers(5, 11))
        day = self._pick_days(p, length)
        end_day = min(self.days, day + length)
        cut = float(self.rng.uniform(0.3, 0.5))
        rows = self._rows(p, self._day_s(day, 0), self._day_s(end_day, 0))
        amount = self.frame["amount"]
        step = 500 if TYPES[self.pts.types[p]] in ("parking", "market", "restaurant_tax") else 1000
        factor = 1 - cut * self.rng.uniform(0.8, 1.2, len(rows))
        amount[rows] = np.maximum(step, np.round(amount[rows] * factor / step) * step).astype(
            np.int64
        )
        self.label(
            p,
            "ticket_shaving",
            day * 24 + self.pts.open_[p],
            (end_day - 1) * 24 + self.pts.close[p],
            note=f"average ticket recorded ~{cut:.0%} low, counts normal",
        )

    def _split_transactions(self, p: int) -> None:
        day = self._pick_days(p, 1)
        rng = self.rng
        open_, close = self.pts.open_[p], self.pts.close[p]
        payer = np.int32(max(2000, 60 * len(self.pts.ids)) + len(self.extra) + 17 * p)
        bursts = int(rng.integers(2, 5))
        starts = np.sort(rng.uniform(open_ + 1, max(open_ + 1.5, close - 1), bursts))
        frames = []
        for begin in starts:
            n = int(rng.integers(15, 41))
            t = self._day_s(day, begin) + np.sort(rng.integers(0, 20 * 60, n))
            local_hour = ((t - self.t0) % 86400) / 3600.0
            op = self.pts.op_offset[p] + operator_slot(
                self.pts, np.full(n, p), local_hour, np.full(n, day)
            )
            frames.append(
                pd.DataFrame(
                    {
                        "p": np.int32(p),
                        "t": t.astype(np.int64),
                        "amount": rng.choice([1000, 1500, 2000, 2500, 3000], n).astype(np.int64),
                        "method": np.int8(QRIS),
                        "status": np.int8(PAID),
                        "op": op.astype(np.int32),
                        "payer": payer,
                    }
                )
            )
        self.extra += frames
        lo = np.floor(starts[0])
        hi = np.ceil(starts[-1] + 20 / 60)
        self.label(
            p,
            "split_transactions",
            day * 24 + lo,
            day * 24 + hi,
            note=f"{bursts} bursts of tiny QRIS payments from one payer",
        )

    def _sustained_under_reporting(self, p: int) -> None:
        """About a third of sales unrecorded every day to the end of the data, from the first
        public holiday of the scored weeks (or a day of the first scored week when there is
        none): the leakage that costs most, and the one that starts where "usual" is damped."""
        first = self.start_day_of_scored_holiday()
        day = (
            first
            if first is not None
            else int(self.rng.integers(self.clean_days, self.clean_days + 7))
        )
        day = min(day, self.days - 1)
        self.busy_days.setdefault(p, set()).update(range(day, self.days))
        share = float(self.rng.uniform(0.25, 0.4))
        rows = self._rows(p, self._day_s(day, 0), self._day_s(self.days, 0))
        paid = rows[self.frame["status"][rows] == PAID]
        self.drop[paid[self.rng.random(len(paid)) < share]] = True
        self.label(
            p,
            "under_reporting",
            day * 24 + self.pts.open_[p],
            (self.days - 1) * 24 + self.pts.close[p],
            note=f"{share:.0%} of sales not tapped from day {day} to the end"
            + (" (began on a public holiday)" if first is not None else ""),
            detectability=self._detectability(p, rows),
        )

    def _drifting_under_reporting(self, p: int) -> None:
        """Under-reporting that creeps in: from nothing to 40-60% of sales over the scored weeks,
        to the end (each day only a little worse than the one before)."""
        day = int(self.rng.integers(self.clean_days, self.clean_days + 4))
        if self.busy_days.get(p, set()).intersection(range(day, self.days)):
            return
        self.busy_days.setdefault(p, set()).update(range(day, self.days))
        top = float(self.rng.uniform(0.4, 0.6))
        rows = self._rows(p, self._day_s(day, 0), self._day_s(self.days, 0))
        paid = rows[self.frame["status"][rows] == PAID]
        span = max(1.0, (self.days - day) * 86400.0)
        share = top * (self.frame["t"][paid] - self._day_s(day, 0)) / span
        self.drop[paid[self.rng.random(len(paid)) < share]] = True
        self.label(
            p,
            "under_reporting",
            day * 24 + self.pts.open_[p],
            (self.days - 1) * 24 + self.pts.close[p],
            note=f"under-reporting creeping from 0% to {top:.0%} of sales from day {day}",
            detectability=self._detectability(p, rows),
        )

    def start_day_of_scored_holiday(self) -> int | None:
        """The first public holiday's day number in the scored weeks, if any."""
        first = self.calendar_days("holiday")
        return next((d for d in first if d >= self.clean_days), None)

    def calendar_days(self, kind: str) -> list[int]:
        start = pd.Timestamp(self.t0, unit="s", tz="UTC")
        days = []
        for row in self.calendar:
            if row["kind"] == kind:
                begin = pd.Timestamp(row["starts_at"]).tz_convert("UTC")
                days.append(int((begin - start) // pd.Timedelta(days=1)))
        return sorted(days)
