"""The quarantine worklist's filters as query parameters: read and checked (an unusable value is
refused with its name), turned into ``intake.quarantine.QuarantineFilter`` (local days become
UTC bounds in the regency's zone), and written back for links, paging and the export."""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from datetime import date, timedelta
from urllib.parse import urlencode

from pipeline.intake.quarantine import STATES, QuarantineFilter
from pipeline.review.i18n import TranslatableInputError
from pipeline.review.queries._region import (
    local_midnight,
    page_number,
    parse_day_param,
    region_tz,
)

MAX_TEXT = 200  # a point id, source or piece of a reason longer than this names nothing


@dataclass(frozen=True)
class QuarantineParams:
    source: str = ""
    point: str = ""
    reason: str = ""
    date_from: date | None = None
    date_to: date | None = None
    state: str = "open"
    page: int = 1

    @classmethod
    def from_params(cls, params) -> QuarantineParams:
        def text(name: str) -> str:
            value = (params.get(name) or "").strip()
            if len(value) > MAX_TEXT or "\x00" in value:
                raise TranslatableInputError(
                    "%(name)s=%(value)r is not usable (at most %(max)s characters)",
                    name=name,
                    value=value[:40],
                    max=MAX_TEXT,
                )
            return value

        state = text("state") or "open"
        if state not in STATES:
            raise TranslatableInputError(
                "state=%(value)r is not one of %(choices)s",
                value=state[:40],
                choices=", ".join(STATES),
            )
        return cls(
            source=text("source"),
            point=text("point"),
            reason=text("reason"),
            date_from=parse_day_param(text("date_from"), "date_from"),
            date_to=parse_day_param(text("date_to"), "date_to"),
            state=state,
            page=page_number(text("page")),
        )

    def to_filter(self, *, ids: tuple[int, ...] = ()) -> QuarantineFilter:
        tz = region_tz()
        return QuarantineFilter(
            source=self.source or None,
            point_id=self.point or None,
            reason=self.reason or None,
            start=local_midnight(self.date_from, tz) if self.date_from else None,
            end=local_midnight(self.date_to + timedelta(days=1), tz) if self.date_to else None,
            state=self.state,
            ids=ids,
        )

    def params(self, **changes) -> dict[str, str]:
        current = replace(self, **changes)
        out = {}
        for f in fields(current):
            value = getattr(current, f.name)
            if value in (None, "") or value == f.default:  # the defaults stay out of links
                continue
            out[f.name] = value.isoformat() if isinstance(value, date) else str(value)
        return out

    def query_string(self, **changes) -> str:
        return urlencode(self.params(**changes))


def release_ids(values: list[str]) -> tuple[int, ...]:
    """The ``id`` fields of a release form (the rows ticked), checked."""
    ids = []
    for value in values:
        text = value.strip()
        if not text.isdigit() or len(text) > 10 or not 0 < int(text) < 2**31:
            raise TranslatableInputError(
                "id=%(value)r is not a quarantined row's number", value=text[:40]
            )
        ids.append(int(text))
    return tuple(sorted(set(ids)))
