"""A case's history for the case page: the earlier cases at its point and by its operators,
with what was decided on them and the money recovered."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Engine, or_, select

from pipeline.core.leakage_kinds import shortfall_measure
from pipeline.review.queries._queue import latest_decisions
from pipeline.store.schema import cases, points


@dataclass
class CaseHistory:
    at_point: list[dict]  # earlier cases at this point, newest first
    by_operators: list[dict]  # earlier cases elsewhere naming one of this case's operators
    operators: list[str]
    # measure -> [confirmed cases, rupiah found, rupiah recovered] over both lists: amounts of
    # different measures are never added together.
    confirmed_by_measure: dict[str, list[int]]


def _operator_names(operators: str | None) -> list[str]:
    return [name.strip() for name in (operators or "").split(",") if name.strip()]


def _names_operator(name: str):
    # ``cases.operators`` holds the sorted names joined by commas (casework.cases): one name is
    # the whole value, its start, its end or a middle part between commas.
    column = cases.c.operators
    return or_(
        column == name,
        column.startswith(name + ",", autoescape=True),
        column.endswith("," + name, autoescape=True),
        column.contains("," + name + ",", autoescape=True),
    )


def _rows(connection, query, limit: int) -> list:
    return connection.execute(
        query.order_by(cases.c.start_at.desc(), cases.c.case_id.desc()).limit(limit)
    ).all()


def case_history(engine: Engine, case, *, limit: int = 20) -> CaseHistory:
    """The cases before ``case`` (started earlier) at its point and by its operators."""
    base = select(
        cases,
        points.c.name.label("point_name"),
        points.c.timezone,
    ).select_from(cases.outerjoin(points, points.c.point_id == cases.c.point_id))
    base = base.where(cases.c.case_id != case.case_id, cases.c.start_at < case.start_at)
    operators = _operator_names(case.operators)
    with engine.connect() as connection:
        at_point = _rows(connection, base.where(cases.c.point_id == case.point_id), limit)
        by_operators = []
        if operators:
            by_operators = _rows(
                connection,
                base.where(cases.c.point_id != case.point_id).where(
                    or_(*(_names_operator(name) for name in operators))
                ),
                limit,
            )
    decisions = latest_decisions(engine, [r.case_id for r in (*at_point, *by_operators)])
    totals: dict[str, list[int]] = {}

    def entry(row) -> dict:
        measure = shortfall_measure(row.origin, row.kind, row.operators)
        if row.status == "confirmed":
            cell = totals.setdefault(measure, [0, 0, 0])
            cell[0] += 1
            cell[1] += int(row.shortfall_rp)
            cell[2] += int(row.recovered_rp or 0)
        shared = sorted(set(_operator_names(row.operators)) & set(operators))
        return {"case": row, "measure": measure, "decision": decisions.get(row.case_id),
                "shared_operators": shared}  # fmt: skip

    return CaseHistory(
        at_point=[entry(r) for r in at_point],
        by_operators=[entry(r) for r in by_operators],
        operators=operators,
        confirmed_by_measure=totals,
    )
