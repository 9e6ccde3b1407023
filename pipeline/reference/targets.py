"""Yearly PAD targets (target pendapatan asli daerah) per revenue type, optionally per district.

The regent's office sets, per calendar year, how much each revenue type (``points.REVENUE_TYPES``)
should bring in, for the whole regency or split per district. Leaders read the revenue so far
against them (``review.queries.realisation``). A type's target for a year is either one
regency-wide row (district '') or rows per district, never both: the two would count twice.

This module is the one writer of ``revenue_targets`` and ``revenue_target_events``: a file load
(``eincome targets load``) or a supervisor's edit or removal in the app appends one event per
changed target, naming who did it, in the same transaction as the change; migration 0015 makes
the database refuse to rewrite that trail.

A file load is all or nothing: every problem is reported with its line and value and nothing is
stored while any remains. A file replaces the targets of every year it names (a corrected plan
is simply loaded again); years it does not name are left alone.
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import Connection, Engine, delete, select

from pipeline.core.errors import NotFoundError, UnusableInputError
from pipeline.core.money import typed_rupiah
from pipeline.core.phrases import Phrase, phrase
from pipeline.core.times import FIRST_DAY, LAST_DAY
from pipeline.reference.points import REVENUE_TYPES
from pipeline.store.schema import points, revenue_target_events, revenue_targets

TARGET_COLUMNS = ("year", "revenue_type", "target_rp")  # and an optional district column
WHOLE_REGENCY = ""  # the district of a regency-wide target
MAX_TARGET_RP = 10**15  # a thousand trillion rupiah: past any regency's year, inside BigInteger
SHOWN_PROBLEMS = 8
YEAR = re.compile(r"[0-9]{4}")  # ASCII digits only: int() of other digits, or of 5000, fails


@dataclass(frozen=True)
class Target:
    year: int
    revenue_type: str
    district: str  # '' = the whole regency
    target_rp: int


@dataclass(frozen=True)
class TargetEvent:
    event_id: int
    at: datetime
    actor: str
    action: str
    year: int
    revenue_type: str
    district: str
    before_rp: int | None
    after_rp: int | None
    source: str | None


@dataclass(frozen=True)
class LoadResult:
    years: tuple[int, ...]
    targets: int  # rows in the file
    changed: int  # targets added, changed or removed (one trail event each)


# ----------------------------------------------------------------------------- checking values


def _year(text: str) -> int | Phrase:
    value = text.strip()
    if not YEAR.fullmatch(value) or not FIRST_DAY.year <= int(value) <= LAST_DAY.year:
        return phrase(
            "year %(value)r is not a year from %(first)s to %(last)s",
            value=text[:40],
            first=FIRST_DAY.year,
            last=LAST_DAY.year,
        )
    return int(value)


def _revenue_type(text: str) -> str | Phrase:
    value = text.strip()
    if value not in REVENUE_TYPES:
        return phrase(
            "revenue_type %(value)r is not one of %(choices)s",
            value=text[:40],
            choices=", ".join(REVENUE_TYPES),
        )
    return value


def _district(text: str, districts: set[str]) -> str | Phrase:
    value = text.strip()
    if value and value not in districts:
        return phrase(
            "district %(value)r is not a district of the point registry (%(choices)s)",
            value=text[:100],
            choices=", ".join(sorted(districts)) or "-",
        )
    return value


def _target_rp(text: str) -> int | Phrase:
    value = typed_rupiah(text)
    if value is None or not 0 < value <= MAX_TARGET_RP:
        return phrase(
            "target_rp %(value)r is not whole rupiah above zero (e.g. 1.500.000.000)",
            value=text[:40],
        )
    return value


def registry_districts(connection: Connection) -> set[str]:
    """The districts the point registry names: the only ones a target may be set for."""
    return {d for (d,) in connection.execute(select(points.c.district).distinct())}


def _refuse(where: str, problems: list[Phrase]) -> UnusableInputError:
    shown = problems[:SHOWN_PROBLEMS]
    if len(problems) > SHOWN_PROBLEMS:
        shown.append(phrase("and %(more_n)s more", more_n=len(problems) - SHOWN_PROBLEMS))
    return UnusableInputError.said(
        "%(where)s: %(problems_parts)s", where=where, problems_parts=shown
    )


def _mixed(targets: list[Target]) -> list[tuple[int, str]]:
    """(year, type) pairs that have a regency-wide target and per-district ones."""
    kinds: dict[tuple[int, str], set[bool]] = {}
    for t in targets:
        kinds.setdefault((t.year, t.revenue_type), set()).add(t.district == WHOLE_REGENCY)
    return sorted(key for key, seen in kinds.items() if len(seen) == 2)


# ----------------------------------------------------------------------------- the file


def parse_targets(path: Path, districts: set[str]) -> list[Target]:
    """Read and check a targets CSV (``year,revenue_type[,district],target_rp``); every problem
    is reported with its line and value, nothing is returned while any remains."""
    where = f"targets {path}"
    try:
        handle = path.open(newline="", encoding="utf-8-sig")
    except OSError as exc:
        raise UnusableInputError.said(
            "%(where)s: cannot open (%(reason)s)", where=where, reason=exc.strerror
        ) from None
    with handle:
        reader = csv.DictReader(handle)
        header = [name.strip() for name in (reader.fieldnames or [])]
        reader.fieldnames = header
        missing = [c for c in TARGET_COLUMNS if c not in header]
        if missing:
            raise UnusableInputError.said(
                "%(where)s: missing column(s) %(missing)s; expected %(expected)s",
                where=where,
                missing=", ".join(missing),
                expected="year, revenue_type, district (may be empty), target_rp",
            )
        targets: list[Target] = []
        problems: list[Phrase] = []
        first_line: dict[tuple[int, str, str], int] = {}
        try:
            for line_no, raw in enumerate(reader, start=2):
                if not any((v or "").strip() for v in raw.values() if isinstance(v, str)):
                    continue  # a blank line, as spreadsheets leave at the end
                checked = (
                    _year(raw.get("year") or ""),
                    _revenue_type(raw.get("revenue_type") or ""),
                    _district(raw.get("district") or "", districts),
                    _target_rp(raw.get("target_rp") or ""),
                )
                bad = [p for p in checked if isinstance(p, Phrase)]
                if None in raw:  # more fields than the header names
                    bad.append(phrase("more fields than the header names"))
                if bad:
                    problems.extend(
                        phrase("line %(line)s: %(problem_part)s", line=line_no, problem_part=p)
                        for p in bad
                    )
                    continue
                target = Target(*checked)
                key = (target.year, target.revenue_type, target.district)
                if key in first_line:
                    problems.append(
                        phrase(
                            "line %(line)s: %(year)s %(type_kind)s %(district)s is already on"
                            " line %(first)s",
                            line=line_no,
                            year=target.year,
                            type_kind=target.revenue_type,
                            district=target.district or "-",
                            first=first_line[key],
                        )
                    )
                    continue
                first_line[key] = line_no
                targets.append(target)
        except (csv.Error, UnicodeDecodeError) as exc:
            raise UnusableInputError.said(
                "%(where)s line %(line)s: not readable as CSV (%(reason)s)",
                where=where,
                line=reader.line_num,
                reason=str(exc)[:200],
            ) from None
    for year, revenue_type in _mixed(targets):
        problems.append(_mixed_problem(year, revenue_type))
    if problems:
        raise _refuse(where, problems)
    if not targets:
        raise UnusableInputError.said("%(where)s: no targets in the file", where=where)
    return targets


def _mixed_problem(year: int, revenue_type: str) -> Phrase:
    return phrase(
        "%(year)s %(type_kind)s has a target for the whole regency and targets per district;"
        " give one or the other",
        year=year,
        type_kind=revenue_type,
    )


def load_targets(engine: Engine, path: Path, *, actor: str) -> LoadResult:
    """Replace the targets of every year in the file with the file's (all or nothing)."""
    with engine.begin() as connection:
        targets = parse_targets(path, registry_districts(connection))
        years = tuple(sorted({t.year for t in targets}))
        before = {
            (t.year, t.revenue_type, t.district): t.target_rp
            for t in _read(
                connection, select(revenue_targets).where(revenue_targets.c.year.in_(years))
            )
        }
        after = {(t.year, t.revenue_type, t.district): t.target_rp for t in targets}
        now = datetime.now(UTC)
        connection.execute(delete(revenue_targets).where(revenue_targets.c.year.in_(years)))
        connection.execute(
            revenue_targets.insert(),
            [
                dict(
                    year=t.year,
                    revenue_type=t.revenue_type,
                    district=t.district,
                    target_rp=t.target_rp,
                    updated_by=actor,
                    updated_at=now,
                )
                for t in targets
            ],
        )
        changes = [
            dict(
                at=now,
                actor=actor,
                action="load",
                year=key[0],
                revenue_type=key[1],
                district=key[2],
                before_rp=before.get(key),
                after_rp=after.get(key),
                source=str(path),
            )
            for key in sorted(before.keys() | after.keys())
            if before.get(key) != after.get(key)
        ]
        if changes:
            connection.execute(revenue_target_events.insert(), changes)
    return LoadResult(years, len(targets), len(changes))


# ----------------------------------------------------------------------------- one target


def set_target(
    engine: Engine,
    year: str | int,
    revenue_type: str,
    district: str,
    target_rp: str | int,
    *,
    actor: str,
) -> Target:
    """Add or change one target (a supervisor's form); refused, naming the value, when unusable."""
    with engine.begin() as connection:
        checked = (
            _year(str(year)),
            _revenue_type(revenue_type),
            _district(district, registry_districts(connection)),
            _target_rp(str(target_rp)),
        )
        bad = [p for p in checked if isinstance(p, Phrase)]
        if bad:
            raise _refuse("target", bad)
        target = Target(*checked)
        same_type = _read(
            connection,
            select(revenue_targets)
            .where(revenue_targets.c.year == target.year)
            .where(revenue_targets.c.revenue_type == target.revenue_type),
        )
        existing = {t.district: t for t in same_type}
        others = [t for d, t in existing.items() if d != target.district]
        if _mixed([*others, target]):
            raise _refuse("target", [_mixed_problem(target.year, target.revenue_type)])
        now = datetime.now(UTC)
        before = existing.get(target.district)
        if before is not None and before.target_rp == target.target_rp:
            return target  # nothing changes, nothing to record
        values = dict(target_rp=target.target_rp, updated_by=actor, updated_at=now)
        if before is None:
            connection.execute(
                revenue_targets.insert().values(
                    year=target.year,
                    revenue_type=target.revenue_type,
                    district=target.district,
                    **values,
                )
            )
        else:
            connection.execute(revenue_targets.update().where(_key(target)).values(**values))
        _record(connection, now, actor, "set", target, before, target.target_rp)
    return target


def remove_target(
    engine: Engine, year: str | int, revenue_type: str, district: str, *, actor: str
) -> Target:
    """Remove one target (a supervisor's form); NotFoundError when there is none."""
    with engine.begin() as connection:
        year_value = _year(str(year))
        found = None
        if not isinstance(year_value, Phrase):
            found = _read(
                connection,
                select(revenue_targets).where(
                    _key(Target(year_value, revenue_type.strip(), district.strip(), 0))
                ),
            )
        if not found:
            raise NotFoundError.said(
                "there is no target for %(year)s %(type_kind)s %(district)s",
                year=str(year)[:10],
                type_kind=revenue_type[:40],
                district=district[:100] or "-",
            )
        target = found[0]
        connection.execute(delete(revenue_targets).where(_key(target)))
        _record(connection, datetime.now(UTC), actor, "remove", target, target, None)
    return target


def _key(target: Target):
    return (
        (revenue_targets.c.year == target.year)
        & (revenue_targets.c.revenue_type == target.revenue_type)
        & (revenue_targets.c.district == target.district)
    )


def _record(connection, now, actor, action, target, before: Target | None, after_rp) -> None:
    connection.execute(
        revenue_target_events.insert().values(
            at=now,
            actor=actor,
            action=action,
            year=target.year,
            revenue_type=target.revenue_type,
            district=target.district,
            before_rp=before.target_rp if before is not None else None,
            after_rp=after_rp,
            source=None,
        )
    )


# ----------------------------------------------------------------------------- reading


def _read(connection: Connection, query) -> list[Target]:
    return [
        Target(int(r.year), r.revenue_type, r.district, int(r.target_rp))
        for r in connection.execute(query)
    ]


def targets_of_year(connection: Connection, year: int) -> list[Target]:
    """The year's targets, by type then district (the regency-wide row of a type first)."""
    return _read(
        connection,
        select(revenue_targets)
        .where(revenue_targets.c.year == year)
        .order_by(revenue_targets.c.revenue_type, revenue_targets.c.district),
    )


def year_targets(engine: Engine, year: int) -> list[Target]:
    with engine.connect() as connection:
        return targets_of_year(connection, year)


def target_years(engine: Engine) -> list[int]:
    with engine.connect() as connection:
        return [
            int(y)
            for (y,) in connection.execute(
                select(revenue_targets.c.year).distinct().order_by(revenue_targets.c.year)
            )
        ]


def target_trail(engine: Engine, *, limit: int = 50) -> list[TargetEvent]:
    """The newest changes to targets, newest first."""
    with engine.connect() as connection:
        rows = connection.execute(
            select(revenue_target_events)
            .order_by(revenue_target_events.c.event_id.desc())
            .limit(limit)
        )
        return [TargetEvent(**row._asdict()) for row in rows]
