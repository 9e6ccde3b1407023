"""The leaders' pages beside the dashboard: revenue against the year's targets (and the
supervisor's form that sets them), cashless progress, weekly trends with a district's or a type's
points. Viewers see aggregates and case counts,
never a case's details."""

from __future__ import annotations

from datetime import UTC, datetime

from fastapi import APIRouter, Depends, Form, Request

from pipeline.casework.users import User
from pipeline.core.times import FIRST_DAY, LAST_DAY
from pipeline.reference import targets as targets_store
from pipeline.reference.points import REVENUE_TYPES
from pipeline.reference.targets import YEAR
from pipeline.review import queries
from pipeline.review.deps import (
    csrf_protect,
    engine_of,
    flash,
    language,
    need,
    render,
    see_other,
    tr,
)
from pipeline.review.i18n import N_, TranslatableInputError
from pipeline.review.labels import label

router = APIRouter(dependencies=[Depends(csrf_protect)])


def _year(value: str | None) -> int | None:
    text = (value or "").strip()
    if not text:
        return None
    if not YEAR.fullmatch(text) or not FIRST_DAY.year <= int(text) <= LAST_DAY.year:
        raise TranslatableInputError(
            "year=%(value)r is not a year from %(first)s to %(last)s",
            value=text[:40],
            first=FIRST_DAY.year,
            last=LAST_DAY.year,
        )
    return int(text)


def _districts(request: Request) -> list[str]:
    """The point registry's districts (the target form's choices, the drill-down's values)."""
    with engine_of(request).connect() as connection:
        return sorted(targets_store.registry_districts(connection))


@router.get("/realisation")
def realisation_page(
    request: Request, year: str | None = None, user: User = need("dashboard.view")
):
    engine = engine_of(request)
    figures = queries.realisation(engine, now=datetime.now(UTC), year=_year(year))
    manager = user.can("targets.manage")
    return render(
        request,
        "realisation.html",
        user=user,
        r=figures,
        years=sorted({*targets_store.target_years(engine), figures["year"]}),
        revenue_types=REVENUE_TYPES,
        districts=_districts(request) if manager else [],
        targets=targets_store.year_targets(engine, figures["year"]) if manager else [],
        trail=targets_store.target_trail(engine, limit=20) if manager else [],
    )


@router.post("/realisation/targets")
def target_set(
    request: Request,
    year: str = Form(""),
    revenue_type: str = Form(""),
    district: str = Form(""),
    target_rp: str = Form(""),
    user: User = need("targets.manage"),
):
    target = targets_store.set_target(
        engine_of(request), year, revenue_type, district, target_rp, actor=user.username
    )
    return _target_changed(request, target, N_("Target for %(year)s %(type)s %(district)s set."))


@router.post("/realisation/targets/remove")
def target_remove(
    request: Request,
    year: str = Form(""),
    revenue_type: str = Form(""),
    district: str = Form(""),
    user: User = need("targets.manage"),
):
    target = targets_store.remove_target(
        engine_of(request), year, revenue_type, district, actor=user.username
    )
    return _target_changed(
        request, target, N_("Target for %(year)s %(type)s %(district)s removed.")
    )


def _target_changed(request: Request, target, message: str):
    """Say which target changed, and go back to its year's realisation page."""
    flash(
        request,
        message,
        year=target.year,
        type=label(target.revenue_type, language(request)),
        district=target.district or tr(request, "whole regency"),
    )
    return see_other(f"/realisation?year={target.year}")


@router.get("/cashless")
def cashless_page(request: Request, user: User = need("dashboard.view")):
    figures = queries.cashless(engine_of(request), now=datetime.now(UTC))
    return render(request, "cashless.html", user=user, c=figures)


@router.get("/trends")
def trends_page(
    request: Request,
    district: str | None = None,
    type: str | None = None,  # noqa: A002 - the query parameter leaders' links carry
    user: User = need("dashboard.view"),
):
    district = (district or "").strip() or None
    revenue_type = (type or "").strip() or None
    if revenue_type is not None and revenue_type not in REVENUE_TYPES:
        raise TranslatableInputError(
            "type=%(value)r is not one of %(choices)s",
            value=revenue_type[:40],
            choices=", ".join(REVENUE_TYPES),
        )
    if district is not None and district not in _districts(request):
        raise TranslatableInputError(
            "district=%(value)r is not a district of the point registry", value=district[:100]
        )
    figures = queries.trends(
        engine_of(request), now=datetime.now(UTC), district=district, revenue_type=revenue_type
    )
    return render(request, "trends.html", user=user, t=figures)
