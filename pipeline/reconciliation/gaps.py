"""A reconciliation gap (the three numbers that disagree, and where they came from), what a run
found, and how consecutive gap days of one collector join into one gap."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field, replace
from datetime import date
from statistics import median

from pipeline.core.phrases import Phrase, english, phrase
from pipeline.core.times import local_midnight

UNATTRIBUTED = "UNATTRIBUTED"  # cases.point_id of a deposit attributed to no known point

KINDS = {
    "declared_below_recorded": "the return declares less than the devices recorded",
    "deposit_below_declared": "less tax deposited than the return declares due",
    "deposit_below_recorded": "a collector handed in less cash than their transactions recorded",
    "flat_deposits": "a fixed amount handed in day after day while recorded cash varies (setoran)",
    "late_deposit": "money deposited later than the allowed business days after it was due",
    "unmatched_deposit": "a bank credit that matches no point, collector or period",
    "no_deposit": "a point or collector that deposited nothing for a period it owed",
}
# Collector day gaps merge with an adjacent or overlapping open case of the same collector and kind.
_MERGING = {
    "deposit_below_recorded",
    "flat_deposits",
    "late_deposit:collector",
    "no_deposit:collector",
}


@dataclass
class Gap:
    """One reconciliation gap, before it becomes (or updates) a case."""

    kind: str
    subject: str  # "point:P01", "collector:C07", "line:<bank line id>"
    point_id: str
    start_day: date  # local calendar day
    end_day: date  # exclusive
    tz: str
    recorded: int | None
    declared: int | None
    deposited: int | None
    difference_rp: int
    shortfall_rp: int
    parts: list[Phrase]  # the reasons, as phrases a reader's language can say (core.phrases)
    refs: dict
    collector_id: str | None = None
    days: dict = field(
        default_factory=dict
    )  # per-day figures for collector gaps, "YYYY-MM-DD" -> {...}

    @property
    def reasons(self) -> str:
        """The reasons in English (the text stored beside the phrases)."""
        return english(self.parts)

    @property
    def merges(self) -> bool:
        scope = "collector" if self.collector_id else "point"
        return self.kind in _MERGING or f"{self.kind}:{scope}" in _MERGING


@dataclass
class ReconResult:
    """What one run checked and found, and what it did to the case queue."""

    start: date
    end: date
    as_of: date
    gaps: list[Gap] = field(default_factory=list)
    periods_checked: int = 0
    collector_days_checked: int = 0
    deposits_checked: int = 0
    cases_created: int = 0
    cases_updated: int = 0
    cases_kept: int = 0  # a person acted on them (decided, assigned, noted): left as they are
    cases_cleared: int = 0  # open, untouched, and no longer a gap on rerun: removed

    def by_kind(self) -> dict[str, int]:
        counts: dict[str, int] = defaultdict(int)
        for gap in self.gaps:
            counts[gap.kind] += 1
        return dict(counts)


def combine_days(gap: Gap, days: dict, start_day: date, end_day: date, deposit_refs: list) -> Gap:
    """A collector gap over the union of days: sums, difference and reasons redone from the days.

    ``deposit_refs``: the other side's collector_deposits days (YYYY-MM-DD), united with gap's.
    """
    merged = replace(gap, start_day=start_day, end_day=end_day, days=days)
    recorded = sum(v.get("recorded", 0) for v in days.values())
    deposited = sum(v.get("deposited", 0) for v in days.values())
    span = dict(days_n=len(days), span_days=[min(days), max(days)])
    if gap.kind == "late_deposit":
        merged.difference_rp, merged.shortfall_rp = deposited, 0
        worst = max(v.get("business_days_late", 0) for v in days.values())
        merged.parts = [
            phrase(
                "%(days_n)s day(s) %(span_days)s: cash handed in late, up to %(late_n)s business"
                " days (%(deposited_rp)s in all)",
                late_n=worst,
                deposited_rp=deposited,
                **span,
            )
        ]
    else:
        merged.difference_rp = merged.shortfall_rp = max(0, recorded - deposited)
        merged.parts = [
            phrase(
                "%(days_n)s day(s) %(span_days)s: %(recorded_rp)s cash recorded,"
                " %(deposited_rp)s handed in, %(short_rp)s short",
                recorded_rp=recorded,
                deposited_rp=deposited,
                short_rp=recorded - deposited,
                **span,
            )
        ]
        if gap.kind == "flat_deposits":
            handed = [v["deposited"] for v in days.values()]
            taken = [v["recorded"] for v in days.values()]
            merged.parts.append(
                phrase(
                    "a fixed ~%(daily_rp)s a day while recorded cash ranged"
                    " %(low_rp)s..%(high_rp)s",
                    daily_rp=int(median(handed)),
                    low_rp=min(taken),
                    high_rp=max(taken),
                )
            )
    merged.recorded, merged.deposited = recorded, deposited
    own = gap.refs.get("collector_deposits") or {}
    merged.refs = {
        **gap.refs,
        "collector_deposits": {
            "collector_id": own.get("collector_id", gap.collector_id),
            "days": sorted(set(own.get("days", [])) | set(deposit_refs)),
        },
        "transactions": {
            **gap.refs["transactions"],
            "from": local_midnight(start_day, gap.tz).isoformat(),
            "to": local_midnight(end_day, gap.tz).isoformat(),
        },
    }
    return merged


def merge_runs(gaps: list[Gap]) -> list[Gap]:
    """Overlapping or adjacent collector gaps of one kind and collector become one gap."""
    out, runs = [], defaultdict(list)
    for gap in gaps:
        (runs[(gap.kind, gap.subject)] if gap.merges else out).append(gap)
    for run in runs.values():
        run.sort(key=lambda g: g.start_day)
        current = run[0]
        for gap in run[1:]:
            if gap.start_day <= current.end_day:
                current = combine_days(
                    gap,
                    {**current.days, **gap.days},
                    current.start_day,
                    max(current.end_day, gap.end_day),
                    (current.refs.get("collector_deposits") or {}).get("days", []),
                )
            else:
                out.append(current)
                current = gap
        out.append(current)
    return out
