"""Days when revenue is expected to move for everyone: Indonesia's public holidays plus a local
file of regional events (a regency anniversary, a festival). Detection uses them as context: their
hours are left out of each point's "usual" level, and on those days a drop must stand out against
the point's peers by a wider margin before it is flagged."""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from datetime import date
from functools import lru_cache
from pathlib import Path

import holidays as holidays_lib

from pipeline.core.errors import UnusableInputError

EVENT_COLUMNS = ("date", "name")


@dataclass(frozen=True)
class Calendar:
    """Public holidays (Indonesia) and regional events, keyed by local date."""

    regional_events: dict[date, str] = field(default_factory=dict)

    def special_days(self, years: range | list[int]) -> dict[date, str]:
        """Local dates that are a public holiday or a regional event, with their names."""
        days: dict[date, str] = {}
        if years:
            days.update(public_holidays(tuple(years)))
        days.update(self.regional_events)
        return days


@lru_cache(maxsize=16)
def public_holidays(years: tuple[int, ...]) -> dict[date, str]:
    """Indonesia's public holidays of ``years`` (local dates) with their names: the one lookup."""
    return dict(holidays_lib.country_holidays("ID", years=list(years)).items())


def load_events(path: Path) -> dict[date, str]:
    """Read a regional-events CSV (``date,name``; date as YYYY-MM-DD, local)."""
    try:
        handle = path.open(newline="", encoding="utf-8-sig")
    except OSError as exc:
        raise UnusableInputError(
            f"regional events file {path}: cannot open ({exc.strerror})"
        ) from None
    events: dict[date, str] = {}
    with handle:
        reader = csv.DictReader(handle)
        missing = [c for c in EVENT_COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise UnusableInputError(
                f"regional events file {path}: missing column(s) {', '.join(missing)}; expected date,name"
            )
        for line_no, row in enumerate(reader, start=2):
            raw = (row.get("date") or "").strip()
            try:
                day = date.fromisoformat(raw)
            except ValueError:
                raise UnusableInputError(
                    f"regional events file {path} line {line_no}: date {raw!r} is not YYYY-MM-DD"
                ) from None
            events[day] = (row.get("name") or "").strip() or "regional event"
    return events


def calendar_from_file(path: Path | None) -> Calendar:
    """The calendar with the regional events of ``path`` (none when ``path`` is empty/None)."""
    if path is None or str(path) in ("", "."):
        return Calendar()
    return Calendar(regional_events=load_events(path))
