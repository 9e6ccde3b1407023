"""The simulator: a regency's collection points, their transaction feeds, and labelled leakage.

It is the project's own test bed and the demo's data. Everything is drawn from one seeded
generator, vectorised over point-hours and transactions, so 1,000 points x 1 year (~5M rows)
takes seconds. Outputs, in ``out_dir``:

- ``points.csv``    the point registry (TEAM.md format);
- ``feeds/*.csv``   transaction feeds (one file per local day, per week, or one file);
- ``labels.csv``    what was planted: leakage events and the regency-wide effects that must
                    stay quiet (``point_id, kind, start_utc, end_utc, operator_id, note``);
- ``closures.csv``  announced closures (``point_id, starts_at, ends_at, reason``), which the
                    detect lane loads as suppressions;
- ``calendar.csv``  the public holidays and rain spells in the window.

All points use Asia/Jakarta (UTC+7, no daylight saving), so local time is UTC + 7 hours.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd

from pipeline.core.errors import UnusableInputError
from pipeline.core.leakage_kinds import LEAKAGE_KINDS
from pipeline.intake.feeds import FEED_COLUMNS

TIMEZONE = "Asia/Jakarta"
JAKARTA = ZoneInfo(TIMEZONE)
LOCAL_OFFSET_S = 7 * 3600
# A Monday in the past; 8 weeks from it hold Christmas Day in the scored part (week 8), and a
# year from it still ends before today, so nothing generated is "in the future" by accident.
DEFAULT_START = datetime(2025, 11, 3, tzinfo=JAKARTA)

QUIET_KINDS = ("holiday", "closure", "rain")
LABEL_COLUMNS = ("point_id", "kind", "start_utc", "end_utc", "operator_id", "note")
METHODS = np.array(["cash", "qris", "card", "transfer", "ewallet"])
STATUSES = np.array(["paid", "void", "refund"])
CASH, QRIS, CARD, TRANSFER, EWALLET = range(5)
PAID, VOID, REFUND = range(3)

TYPES = ("parking", "market", "restaurant_tax", "hotel_tax", "entertainment_tax")
TYPE_SHARE = np.array([0.30, 0.20, 0.30, 0.10, 0.10])
PREFIX = {
    "parking": "PKR",
    "market": "PSR",
    "restaurant_tax": "RST",
    "hotel_tax": "HTL",
    "entertainment_tax": "HBR",
}
OPEN_HOURS = {  # local (open, close) hour; close is exclusive
    "parking": (6, 22),
    "market": (4, 14),
    "restaurant_tax": (10, 22),
    "hotel_tax": (0, 24),
    "entertainment_tax": (14, 24),
}
# Median transactions per point on an ordinary weekday; sizes are lognormal around it. A parking
# attendant's stretch or a market's levy round sees a hundred or more a day, a warung's tapping
# box a few dozen, a small hotel a handful.
DAILY_MEDIAN = {
    "parking": 120.0,
    "market": 100.0,
    "restaurant_tax": 50.0,
    "hotel_tax": 20.0,
    "entertainment_tax": 30.0,
}
SIZE_SIGMA = 0.8


def _profile(pairs: dict[tuple[int, int], float]) -> np.ndarray:
    hours = np.zeros(24)
    for (lo, hi), weight in pairs.items():
        hours[lo:hi] = weight
    return hours / hours.sum()


# Share of a day's transactions in each local hour (zero when closed).
HOURLY = {
    "parking": _profile(
        {(6, 8): 0.5, (8, 10): 0.9, (10, 14): 1.0, (14, 16): 0.8, (16, 20): 1.0, (20, 22): 0.5}
    ),
    "market": _profile({(4, 5): 0.6, (5, 8): 1.0, (8, 10): 0.7, (10, 12): 0.4, (12, 14): 0.2}),
    "restaurant_tax": _profile(
        {(10, 11): 0.3, (11, 14): 1.0, (14, 17): 0.35, (17, 18): 0.6, (18, 21): 1.0, (21, 22): 0.4}
    ),
    "hotel_tax": _profile(
        {(0, 6): 0.1, (6, 10): 0.5, (10, 13): 1.0, (13, 19): 0.8, (19, 22): 0.6, (22, 24): 0.25}
    ),
    "entertainment_tax": _profile({(14, 17): 0.25, (17, 19): 0.5, (19, 23): 1.0, (23, 24): 0.7}),
}
WEEKLY = {  # Monday .. Sunday
    "parking": [1.0, 1.0, 1.0, 1.0, 1.05, 1.2, 1.1],
    "market": [1.0, 0.95, 0.95, 1.0, 1.0, 1.15, 1.25],
    "restaurant_tax": [0.9, 0.9, 0.95, 0.95, 1.1, 1.3, 1.25],
    "hotel_tax": [0.8, 0.8, 0.85, 0.9, 1.1, 1.4, 1.0],
    "entertainment_tax": [0.6, 0.6, 0.7, 0.8, 1.2, 1.7, 1.1],
}
PAYMENT_MIX = {  # cash, qris, card, transfer, ewallet
    "parking": [0.84, 0.11, 0.0, 0.0, 0.05],
    "market": [0.88, 0.09, 0.0, 0.0, 0.03],
    "restaurant_tax": [0.45, 0.30, 0.15, 0.02, 0.08],
    "hotel_tax": [0.15, 0.20, 0.45, 0.15, 0.05],
    "entertainment_tax": [0.30, 0.25, 0.35, 0.02, 0.08],
}
# Fixed tariffs for levies, (median, sigma, rounding) for taxed sales.
TARIFFS = {
    "parking": ([2000, 3000, 5000, 10000], [0.45, 0.25, 0.20, 0.10]),
    "market": ([2000, 3000, 5000, 10000, 15000], [0.30, 0.25, 0.25, 0.15, 0.05]),
}
TICKETS = {
    "restaurant_tax": (75_000, 0.6, 500),
    "hotel_tax": (550_000, 0.5, 1000),
    "entertainment_tax": (180_000, 0.7, 1000),
}
HOLIDAY_EFFECT = {
    "parking": 0.55,
    "market": 0.4,
    "restaurant_tax": 1.35,
    "hotel_tax": 1.3,
    "entertainment_tax": 1.5,
}
RAIN_EFFECT = {"parking": 0.35, "market": 0.45}
VOID_RATE, REFUND_RATE, LATE_RATE = 0.010, 0.003, 0.002

DISTRICTS = (
    "Cibeber",
    "Sukamaju",
    "Karangsari",
    "Margaluyu",
    "Tanjungsari",
    "Wanasari",
    "Cikalong",
    "Pagerageung",
)
PLACES = (
    "Baru",
    "Induk",
    "Sentral",
    "Lama",
    "Kidul",
    "Kaler",
    "Wetan",
    "Kulon",
    "Raya",
    "Alun-Alun",
    "Stasiun",
    "Terminal",
)
VENUES = {
    "restaurant_tax": (
        "RM Padang",
        "Warung Sunda",
        "Bakso",
        "Sate",
        "Kedai Kopi",
        "Soto",
        "Ayam Goreng",
        "Mie Ayam",
        "Seafood",
        "Pecel Lele",
    ),
    "hotel_tax": ("Hotel", "Penginapan", "Wisma", "Losmen", "Guest House"),
    "entertainment_tax": ("Karaoke", "Biliar", "Kolam Renang", "Bioskop", "Futsal", "Wahana"),
}
WORDS = (
    "Sederhana",
    "Sari",
    "Mekar",
    "Jaya",
    "Indah",
    "Asri",
    "Lestari",
    "Makmur",
    "Sejahtera",
    "Bahagia",
    "Melati",
    "Kenanga",
    "Cempaka",
    "Dahlia",
    "Permata",
    "Harapan",
)
OPERATOR_NAMES = (
    "agus",
    "budi",
    "dewi",
    "eko",
    "fitri",
    "hendra",
    "indah",
    "joko",
    "kartini",
    "lestari",
    "made",
    "nur",
    "putu",
    "rina",
    "sari",
    "teguh",
    "wahyu",
    "yanti",
    "asep",
    "ujang",
    "cecep",
    "euis",
    "iwan",
    "neneng",
)
CLOSURE_REASONS = ("renovasi gedung", "perbaikan jalan akses", "acara desa", "pemeliharaan mesin")


@dataclass(frozen=True)
class Manifest:
    """What one simulation wrote and how much of each."""

    out_dir: Path
    points_csv: Path
    labels_csv: Path
    closures_csv: Path
    calendar_csv: Path
    feeds: list[Path]
    start: datetime  # first local midnight, aware
    end: datetime  # exclusive
    clean_until: datetime  # no leakage before this: the history a detector learns "usual" from
    seed: int
    points: int
    transactions: int  # clean rows written (all statuses), bad rows excluded
    bad_rows: dict[str, int] = field(default_factory=dict)
    events: dict[str, int] = field(default_factory=dict)  # label kind -> events planted

    @property
    def rows(self) -> int:
        """Every data row in the feed files, bad rows included."""
        return self.transactions + sum(self.bad_rows.values())


@dataclass
class _Points:
    ids: np.ndarray
    types: np.ndarray  # index into TYPES
    daily: np.ndarray  # expected transactions on an ordinary weekday
    open_: np.ndarray
    close: np.ndarray
    shifts: np.ndarray
    op_offset: np.ndarray  # first global operator index
    operators: np.ndarray  # global operator ids
    ticket_level: np.ndarray


def _iso_utc(seconds: int) -> str:
    return datetime.fromtimestamp(int(seconds), UTC).isoformat()


def _iso_local(seconds: int) -> str:
    return datetime.fromtimestamp(int(seconds), JAKARTA).isoformat()


def _make_points(rng: np.random.Generator, n: int, volume: float) -> tuple[_Points, list[dict]]:
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
                "timezone": TIMEZONE,
            }
        )
    ticket_level = np.where(np.isin(types, [0, 1]), 1.0, rng.lognormal(0.0, 0.25, n))
    return (
        _Points(
            np.array(ids),
            types,
            daily,
            open_,
            close,
            shifts,
            op_offset,
            np.array(operators),
            ticket_level,
        ),
        registry,
    )


def _boundaries(pts: _Points, p) -> tuple[np.ndarray, np.ndarray]:
    """Whole local hours where the 2nd and 3rd shifts start (the 3rd at close for 2 shifts)."""
    span = pts.close[p] - pts.open_[p]
    second = pts.open_[p] + np.round(span / pts.shifts[p]).astype(np.int64)
    third = np.where(
        pts.shifts[p] == 3, pts.open_[p] + np.round(2 * span / 3).astype(np.int64), pts.close[p]
    )
    return second, third


def _shift_of(pts: _Points, p: np.ndarray, hour_of_day: np.ndarray) -> np.ndarray:
    """Which shift (0..shifts-1) covers a local fractional hour at point p."""
    second, third = _boundaries(pts, p)
    return (hour_of_day >= second).astype(np.int64) + (hour_of_day >= third)


def _shift_bounds(pts: _Points, p: int, shift: int) -> tuple[int, int]:
    second, third = (int(x[0]) for x in _boundaries(pts, np.array([p])))
    edges = [int(pts.open_[p]), second, third, int(pts.close[p])]
    return edges[shift], edges[shift + 1]


class _Simulation:
    """One run: arrays of transactions plus the bookkeeping of what was planted."""

    def __init__(self, *, points, days, seed, start, leakage, volume, target_rows=None):
        self.rng = np.random.default_rng(seed)
        self.days = days
        self.start_local = start
        self.t0 = int(start.timestamp())  # local midnight of day 0, as a UTC epoch second
        self.weekday0 = start.weekday()
        self.pts, self.registry = _make_points(self.rng, points, volume)
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
        import holidays

        n_points, hours = len(self.pts.ids), self.days * 24
        factor = np.ones((n_points, hours))
        first = self.start_local.date()
        years = range(first.year, (first + timedelta(days=self.days)).year + 1)
        national = holidays.country_holidays("ID", years=list(years))
        type_names = np.array(TYPES)[self.pts.types]
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
                self._label(p, "holiday", day * 24, (day + 1) * 24, note=f"{name} ({when})")

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
                    self._label(p, "rain", lo, hi, note=f"heavy rain, {kind} dips")

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
            self._label(p, "closure", lo, hi, note=f"announced closure: {reason}")
            self.busy_days.setdefault(int(p), set()).update(range(day, day + length))
        return factor

    def _label(
        self,
        p: int,
        kind: str,
        lo_hour: int | float,
        hi_hour: int | float,
        operator: str = "",
        note: str = "",
    ) -> None:
        self.labels.append(
            {
                "point_id": self.pts.ids[p],
                "kind": kind,
                "start_utc": _iso_utc(self.t0 + round(lo_hour * 3600)),
                "end_utc": _iso_utc(self.t0 + round(hi_hour * 3600)),
                "operator_id": operator,
                "note": note,
            }
        )

    # ---- ordinary trade ---------------------------------------------------------------------
    def generate(self, factor: np.ndarray) -> pd.DataFrame:
        rng, pts = self.rng, self.pts
        n_points, hours = len(pts.ids), self.days * 24
        hour_of_day = np.arange(hours) % 24
        weekday = (self.weekday0 + np.arange(hours) // 24) % 7
        hourly = np.stack([HOURLY[t] for t in TYPES])[pts.types][:, hour_of_day]
        weekly = np.array([WEEKLY[t] for t in TYPES])[pts.types][:, weekday]
        day_noise = rng.lognormal(0.0, 0.12, (n_points, self.days)).repeat(24, axis=1)
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
        op = pts.op_offset[p] + _shift_of(pts, p, local_hour)
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

    # ---- leakage ----------------------------------------------------------------------------
    def plant(self, frame: pd.DataFrame) -> pd.DataFrame:
        """Plant each leakage kind at a few points after the clean weeks; returns the new frame."""
        frame = frame.sort_values(["p", "t"], kind="stable", ignore_index=True)
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
        out = pd.DataFrame(self.frame)[~self.drop]
        if self.extra:
            out = pd.concat([out, *self.extra], ignore_index=True)
        return out

    def _pick_point(self, kind: str) -> int | None:
        """A point with enough trade that the pattern is observable, not already used nearby.

        Leakage at a point with one sale a day is real but invisible to any detector; planting
        it there would measure the data, not the detector. Points are drawn by size among the
        upper half.
        """
        pts = self.pts
        eligible = pts.daily >= np.quantile(pts.daily, 0.4)
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
        self._label(
            p,
            "under_reporting",
            day * 24 + self.pts.open_[p],
            (end_day - 1) * 24 + self.pts.close[p],
            note=f"{share:.0%} of sales not tapped for {end_day - day} days",
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
        self._label(
            p,
            "device_off",
            day * 24 + begin,
            day * 24 + begin + length,
            note=f"no transactions for {length} open hours",
        )

    def _operator_shift(self, p: int) -> tuple[int, float, float]:
        shifts = self.pts.shifts[p]
        # The busiest shift of the point: the one with most of the day's trade.
        profile = HOURLY[TYPES[self.pts.types[p]]]
        weight = []
        for s in range(shifts):
            lo, hi = _shift_bounds(self.pts, p, s)
            weight.append(profile[int(np.floor(lo)) : int(np.ceil(hi))].sum())
        shift = int(np.argmax(weight))
        lo, hi = _shift_bounds(self.pts, p, shift)
        return shift, lo, hi

    def _cash_skimming(self, p: int) -> None:
        length = int(self.rng.integers(3, 7))
        day = self._pick_days(p, length)
        shift, lo, hi = self._operator_shift(p)
        operator = self.pts.operators[self.pts.op_offset[p] + shift]
        share = float(self.rng.uniform(0.55, 0.85))
        frame = self.frame
        for d in range(day, min(self.days, day + length)):
            rows = self._rows(p, self._day_s(d, lo), self._day_s(d, hi))
            cash = rows[(frame["method"][rows] == CASH) & (frame["status"][rows] == PAID)]
            self.drop[cash[self.rng.random(len(cash)) < share]] = True
        last = min(self.days, day + length) - 1
        self._label(
            p,
            "cash_skimming",
            day * 24 + lo,
            last * 24 + hi,
            operator=operator,
            note=f"{share:.0%} of cash sales unrecorded on {operator}'s shift",
        )

    def _void_abuse(self, p: int) -> None:
        length = int(self.rng.integers(3, 8))
        day = self._pick_days(p, length)
        shift, lo, hi = self._operator_shift(p)
        op_index = self.pts.op_offset[p] + shift
        operator = self.pts.operators[op_index]
        share = float(self.rng.uniform(0.15, 0.3))
        frame, rng = self.frame, self.rng
        status, t = frame["status"], frame["t"]
        method, amount = frame["method"], frame["amount"]
        refunds = []
        for d in range(day, min(self.days, day + length)):
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
        last = min(self.days, day + length) - 1
        self._label(
            p,
            "void_abuse",
            day * 24 + lo,
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
        self._label(
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
            op = self.pts.op_offset[p] + _shift_of(self.pts, np.full(n, p), local_hour)
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
        self._label(
            p,
            "split_transactions",
            day * 24 + lo,
            day * 24 + hi,
            note=f"{bursts} bursts of tiny QRIS payments from one payer",
        )


class _Writer:
    """Feed lines from the numeric frame: txn_id numbers each point's receipts in time order.

    Lines are built with plain f-strings over lookup tables (pandas' CSV writer is ~5x slower
    here, and this is the step that dominates a 5M-row run).
    """

    CHUNK = 400_000

    def __init__(self, sim: _Simulation, frame: pd.DataFrame):
        frame = frame.sort_values(["p", "t"], kind="stable", ignore_index=True)
        self.sim = sim
        self.cols = {name: frame[name].to_numpy() for name in frame.columns}
        p = self.cols["p"]
        self.cols["seq"] = (
            np.arange(len(p)) - np.searchsorted(p, np.arange(len(sim.pts.ids)))[p] + 1
        )
        t = self.cols["t"]
        local_day = (t - sim.t0) // 86400
        self.cols["day"] = local_day
        self.cols["sod"] = (t - sim.t0) % 86400
        # The file a row arrives in: its local day, except a few that come in a day late.
        late = sim.rng.random(len(t)) < LATE_RATE
        self.cols["file_day"] = np.minimum(local_day + late, sim.days - 1)
        payer = self.cols["payer"]
        pool = _payer_ids(
            np.random.default_rng(sim.rng.integers(2**32)), int(payer.max(initial=0)) + 1
        )
        self.payers = [*pool.tolist(), ""]  # index -1 -> no payer
        self.points = sim.pts.ids.tolist()
        self.operators = sim.pts.operators.tolist()
        first = sim.start_local.date()
        self.dates = [f"{(first + timedelta(days=d)).isoformat()}T" for d in range(sim.days + 1)]
        self.times = [
            f"{x // 3600:02d}:{x // 60 % 60:02d}:{x % 60:02d}+07:00" for x in range(86400)
        ]

    def __len__(self) -> int:
        return len(self.cols["p"])

    def lines(self, rows: np.ndarray, amount: np.ndarray | None = None) -> list[str]:
        c = self.cols
        P, D, T, PAY = self.points, self.dates, self.times, self.payers  # noqa: N806
        amount = c["amount"][rows] if amount is None else amount
        # The operator, method and status part as one code into a small table of strings:
        # the fewer pieces formatted per row, the faster (this loop is the run's hot spot).
        code = (c["op"][rows].astype(np.int64) * 5 + c["method"][rows]) * 3 + c["status"][rows]
        used, inverse = np.unique(code, return_inverse=True)
        ops, methods, statuses = self.operators, METHODS.tolist(), STATUSES.tolist()
        middle = [f"{methods[k // 3 % 5]},{statuses[k % 3]},{ops[k // 15]}," for k in used.tolist()]
        seq = c["seq"][rows]
        digits = np.char.zfill(seq.astype("U12"), 7).tolist()
        return [
            f"{P[p]}-{q},{P[p]},{D[d]}{T[x]},{a},{middle[k]}{PAY[y]}"
            for p, q, d, x, a, k, y in zip(
                c["p"][rows].tolist(),
                digits,
                c["day"][rows].tolist(),
                c["sod"][rows].tolist(),
                amount.tolist(),
                inverse.tolist(),
                c["payer"][rows].tolist(),
                strict=True,
            )
        ]

    def bad_lines(self) -> tuple[list[str], dict[str, int]]:
        """A few rows validation must catch, all sent in the last file."""
        sim, c = self.sim, self.cols
        earlier = np.flatnonzero(c["file_day"] < sim.days - 1)
        if len(earlier) < 2:
            return [], {}
        picked = sim.rng.choice(earlier, size=2, replace=False)
        base = self.lines(picked[:1])[0].split(",")
        when = f"{self.dates[sim.days - 1]}12:00:00+07:00"
        pid = base[1]

        def row(suffix, **change):
            fields = dict(zip(FEED_COLUMNS, base, strict=True))
            fields.update({"txn_id": f"{pid}-BAD{suffix}", "occurred_at": when, **change})
            return ",".join(fields[k] for k in FEED_COLUMNS)

        bad = {
            "negative_amount": row(1, amount=f"-{base[3]}"),
            "unknown_point": row(2, point_id="XXX-9999"),
            "bad_method": row(3, payment_method="bitcoin"),
            "unparseable_time": row(4, occurred_at="31/12/2025 25:61"),
            "future_time": row(5, occurred_at="2099-01-01T10:00:00+07:00"),
            # Resends of real rows from an earlier file: one identical, one with a changed amount.
            "duplicate_resend": self.lines(picked[1:])[0],
            "conflicting_resend": self.lines(picked[:1], c["amount"][picked[:1]] + 5000)[0],
        }
        return list(bad.values()), dict.fromkeys(bad, 1)


def _payer_ids(rng: np.random.Generator, size: int) -> np.ndarray:
    raw = rng.integers(0, 2**63 - 1, size=size, dtype=np.int64)
    return np.array([f"py_{v:016x}" for v in raw.tolist()])


def _write_csv(path: Path, rows: list[dict], columns: tuple[str, ...] | list[str]) -> None:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(columns))
        writer.writeheader()
        writer.writerows(rows)


def simulate(
    out_dir: Path,
    *,
    points: int = 40,
    weeks: int = 8,
    days: int | None = None,
    seed: int = 7,
    start: datetime = DEFAULT_START,
    leakage: bool = True,
    bad_rows: bool = True,
    split: str = "day",
    volume: float = 1.0,
    target_rows: int | None = None,
) -> Manifest:
    """Write a simulated regency into ``out_dir`` and return what was written.

    ``days`` overrides ``weeks``. ``split`` is "day" (feeds/day-YYYY-MM-DD.csv), "week"
    (feeds/week-YYYY-MM-DD.csv, named by the Monday) or "none" (one feeds/all.csv).
    ``volume`` scales every point's trade (at 1.0 a point averages ~110 transactions a day);
    ``target_rows`` instead scales it so the feeds hold about that many rows (within a few %),
    e.g. 1,000 points x 365 days x ``target_rows=5_000_000`` for a benchmark. Deterministic
    for a seed.
    """
    if start.tzinfo is None:
        raise UnusableInputError(
            f"simulate start {start.isoformat()} has no timezone; give an offset"
        )
    if points < 1:
        raise UnusableInputError(f"simulate points={points}: need at least one point")
    days = days if days is not None else weeks * 7
    if days < 1:
        raise UnusableInputError(f"simulate days={days}: need at least one day")
    if split not in ("day", "week", "none"):
        raise UnusableInputError(f"simulate split {split!r} is not one of day, week, none")
    if volume <= 0:
        raise UnusableInputError(f"simulate volume={volume}: must be above zero")
    local = start.astimezone(JAKARTA)
    start_local = datetime(local.year, local.month, local.day, tzinfo=JAKARTA)

    out_dir = Path(out_dir)
    feeds_dir = out_dir / "feeds"
    feeds_dir.mkdir(parents=True, exist_ok=True)
    for old in feeds_dir.glob("*.csv"):
        old.unlink()

    sim = _Simulation(
        points=points,
        days=days,
        seed=seed,
        start=start_local,
        leakage=leakage,
        volume=volume,
        target_rows=target_rows,
    )
    factor = sim.plan_calendar()
    frame = sim.plant(sim.generate(factor))
    writer = _Writer(sim, frame)
    bad, bad_counts = writer.bad_lines() if bad_rows else ([], {})

    file_day = writer.cols["file_day"]
    key = (
        file_day // 7
        if split == "week"
        else (file_day if split == "day" else np.zeros_like(file_day))
    )
    order = np.lexsort((writer.cols["t"], key))
    key = key[order]
    cuts = np.flatnonzero(np.diff(key)) + 1
    header = ",".join(FEED_COLUMNS) + "\n"
    feeds = []
    groups = list(zip(np.r_[0, cuts], np.r_[cuts, len(order)], strict=True))
    for number, (lo, hi) in enumerate(groups):
        k = int(key[lo]) if hi > lo else 0
        if split == "none":
            name = "all.csv"
        else:
            first_day = (start_local + timedelta(days=k * (7 if split == "week" else 1))).date()
            name = f"{split}-{first_day.isoformat()}.csv"
        path = feeds_dir / name
        with path.open("w", encoding="utf-8", newline="") as handle:
            handle.write(header)
            for chunk in range(lo, hi, _Writer.CHUNK):
                lines = writer.lines(order[chunk : min(hi, chunk + _Writer.CHUNK)])
                handle.write("\n".join(lines))
                handle.write("\n")
            if number == len(groups) - 1 and bad:
                handle.write("\n".join(bad) + "\n")
        feeds.append(path)

    points_csv = out_dir / "points.csv"
    _write_csv(
        points_csv,
        sim.registry,
        ("point_id", "name", "revenue_type", "district", "open_hours", "timezone"),
    )
    labels_csv = out_dir / "labels.csv"
    labels = sorted(sim.labels, key=lambda r: (r["start_utc"], r["point_id"], r["kind"]))
    _write_csv(labels_csv, labels, LABEL_COLUMNS)
    closures_csv = out_dir / "closures.csv"
    _write_csv(closures_csv, sim.closures, ("point_id", "starts_at", "ends_at", "reason"))
    calendar_csv = out_dir / "calendar.csv"
    calendar = sorted(sim.calendar, key=lambda r: r["starts_at"])
    _write_csv(
        calendar_csv, calendar, ("date", "kind", "name", "starts_at", "ends_at", "revenue_types")
    )

    events: dict[str, int] = {}
    for row in sim.labels:
        if row["kind"] in LEAKAGE_KINDS or row["kind"] == "closure":
            events[row["kind"]] = events.get(row["kind"], 0) + 1
    events["holiday"] = sum(1 for c in sim.calendar if c["kind"] == "holiday")
    events["rain"] = sum(1 for c in sim.calendar if c["kind"] == "rain")
    return Manifest(
        out_dir=out_dir,
        points_csv=points_csv,
        labels_csv=labels_csv,
        closures_csv=closures_csv,
        calendar_csv=calendar_csv,
        feeds=feeds,
        start=start_local,
        end=start_local + timedelta(days=days),
        clean_until=start_local + timedelta(days=sim.clean_days),
        seed=seed,
        points=points,
        transactions=len(writer),
        bad_rows=bad_counts,
        events=events,
    )


def read_labels(path: Path) -> pd.DataFrame:
    """labels.csv with aware UTC start/end times."""
    labels = pd.read_csv(path, dtype=str, keep_default_na=False)
    labels["start_utc"] = pd.to_datetime(labels["start_utc"], utc=True)
    labels["end_utc"] = pd.to_datetime(labels["end_utc"], utc=True)
    return labels


__all__ = ["Manifest", "simulate", "read_labels", "LEAKAGE_KINDS", "QUIET_KINDS", "DEFAULT_START"]
