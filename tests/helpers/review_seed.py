"""A small, fixed-seed world for the review-app tests: four points, five weeks of hourly revenue,
minute revenue for the day shown on the dashboard and the same weekday before, cases with their
flagged hours and transactions, and a little pipeline history for the ops page.

Data stops at local midnight of ``today`` so what the pages show does not depend on the clock.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import Engine

from pipeline.core.phrases import dumps, english, phrase
from pipeline.store.schema import (
    anomalies,
    cases,
    hour_aggregates,
    ingest_batches,
    minute_aggregates,
    pipeline_failures,
    points,
    quarantine,
    transactions,
)

TZ = ZoneInfo("Asia/Jakarta")
POINTS = [
    ("PKR-001", "Parkir Alun-Alun", "parking", "Kota", "06:00-22:00", 90_000),
    ("PSR-002", "Pasar Induk", "market", "Utara", "05:00-17:00", 140_000),
    ("RST-003", "Rumah Makan Sederhana", "restaurant_tax", "Kota", "10:00-22:00", 60_000),
    ("HTL-004", "Hotel Melati", "hotel_tax", "Selatan", "00:00-24:00", 45_000),
]


# The main case's reasons as the detector and cases.summarise_run write them (core.phrases).
MAIN_REASONS = [
    phrase(
        "%(hours_n)s flagged hours, suspected %(suspected_kind)s, %(stake_rp)s at stake",
        hours_n=3,
        suspected_kind="under_reporting",
        stake_rp=412_000,
    ),
    phrase(
        "strongest: %(first_part)s",
        first_part=phrase(
            "revenue %(drop_pct)s below the usual for %(at_slot)s"
            " (%(recorded_rp)s vs %(expected_rp)s)",
            drop_pct=0.65,
            at_slot="Tue 14:00",
            recorded_rp=74_000,
            expected_rp=211_000,
        ),
    ),
    phrase(
        "operator %(operator)s: voids/refunds %(share_pct)s vs that operator's usual %(usual_pct)s",
        operator="op-7",
        share_pct=0.2,
        usual_pct=0.05,
    ),
]
RECON_REASONS = [
    phrase(
        "declared %(declared_rp)s vs recorded %(recorded_rp)s: %(undeclared_rp)s"
        " (%(undeclared_pct)s) undeclared; tax %(tax_rp)s",
        declared_rp=7_750_000,
        recorded_rp=9_000_000,
        undeclared_rp=1_250_000,
        undeclared_pct=1_250_000 / 9_000_000,
        tax_rp=125_000,
    )
]


@dataclass
class World:
    today: date
    day: date  # the complete day the dashboard shows (yesterday)
    case_id: int  # the main open case, with transactions
    decided_case_id: int  # already confirmed
    case_ids: list[int]
    day_total_rp: int
    compare_total_rp: int


def _local(day: date, hour: int = 0) -> datetime:
    return datetime.combine(day, time(hour), tzinfo=TZ).astimezone(UTC)


def _open(open_hours: str, hour: int) -> bool:
    start, end = open_hours.split("-")
    return int(start[:2]) <= hour < int(end[:2])


def _hour_gross(rng: random.Random, base: int, hour: int, weekday: int) -> int:
    shape = 0.55 + 0.9 * max(0.0, 1 - abs(hour - 13) / 9)  # busier around midday
    weekend = 1.25 if weekday >= 5 else 1.0
    return int(base * shape * weekend * rng.uniform(0.85, 1.15)) // 1000 * 1000


def seed(engine: Engine, *, today: date | None = None, extra_cases: int = 0) -> World:
    """Insert the world; ``extra_cases`` adds small open cases (for paging)."""
    rng = random.Random(7)
    now = datetime.now(UTC)
    today = today or now.astimezone(TZ).date()
    day = today - timedelta(days=1)
    case_day = today - timedelta(days=3)
    case_start, case_end = _local(case_day, 14), _local(case_day, 17)

    hour_rows, minute_rows = [], []
    day_total = compare_total = 0
    for point_id, _, _, _, open_hours, base in POINTS:
        d = today - timedelta(days=35)
        while d < today:
            for hour in range(24):
                if not _open(open_hours, hour):
                    continue
                gross = _hour_gross(rng, base, hour, d.weekday())
                hour_start = _local(d, hour)
                voids = 0
                if point_id == "PKR-001" and case_start <= hour_start < case_end:
                    gross = gross * 35 // 100 // 1000 * 1000  # the planted shortfall
                    voids = 9
                txns = max(1, gross // 5000)
                hour_rows.append(
                    dict(
                        point_id=point_id,
                        hour_start=hour_start,
                        txn_count=txns,
                        gross_paid=gross,
                        void_count=voids,
                        void_amount=voids * 5000,
                        refund_count=1 if voids else 0,
                        refund_amount=5000 if voids else 0,
                        cash_amount=gross * 6 // 10,
                        operators=2,
                        max_ticket=20_000,
                    )
                )
                if d in (day, day - timedelta(days=7)):
                    per_minute = gross // 60
                    for minute in range(60):
                        amount = per_minute + (gross - per_minute * 60 if minute == 59 else 0)
                        minute_rows.append(
                            dict(
                                point_id=point_id,
                                minute_start=hour_start + timedelta(minutes=minute),
                                txn_count=1,
                                gross_paid=amount,
                                void_count=0,
                                void_amount=0,
                                refund_count=0,
                                refund_amount=0,
                                cash_amount=amount,
                                operators=1,
                                max_ticket=amount,
                            )
                        )
                    if d == day:
                        day_total += gross
                    else:
                        compare_total += gross
            d += timedelta(days=1)

    with engine.begin() as connection:
        connection.execute(
            points.insert(),
            [
                dict(
                    point_id=p,
                    name=n,
                    revenue_type=t,
                    district=dist,
                    open_hours=oh,
                    timezone="Asia/Jakarta",
                    updated_at=now,
                )
                for p, n, t, dist, oh, _ in POINTS
            ],
        )
        connection.execute(hour_aggregates.insert(), hour_rows)
        connection.execute(minute_aggregates.insert(), minute_rows)
        batch_ok = _batch(connection, "landing:kota", "kota/2026-11-20.csv", "ok", now, q=2)
        _batch(connection, "api:tapbox", "page cursor=abc", "failed", now, message="HTTP 503")
        connection.execute(
            quarantine.insert(),
            [
                dict(
                    batch_id=batch_ok,
                    line_no=17,
                    point_id="PKR-001",
                    txn_id="T-bad-1",
                    raw=json.dumps({"txn_id": "T-bad-1", "amount": "-5000"}),
                    reasons='amount "-5000" is negative',
                    kind="invalid",
                ),
                dict(
                    batch_id=batch_ok,
                    line_no=18,
                    point_id="ZZZ-999",
                    txn_id="T-bad-2",
                    raw=json.dumps({"txn_id": "T-bad-2", "point_id": "ZZZ-999"}),
                    reasons='point "ZZZ-999" is not in the registry',
                    kind="invalid",
                ),
            ],
        )
        connection.execute(
            pipeline_failures.insert().values(
                at=now,
                where="pull_sources.pull_api",
                run_id="manual__1",
                error="HTTP 503 from tapbox",
            )
        )
        txn_rows = []
        t = case_start
        i = 0
        while t < case_end:
            status = "void" if i % 7 == 3 else ("refund" if i % 23 == 5 else "paid")
            txn_rows.append(
                dict(
                    point_id="PKR-001",
                    txn_id=f"PKR-001-{i:05d}",
                    occurred_at=t,
                    amount=5000 if i % 5 else 10000,
                    payment_method="cash" if i % 3 else "qris",
                    status=status,
                    operator_id="op-7" if status != "paid" else ("op-2" if i % 2 else "op-7"),
                    payer_ref=None,
                    batch_id=batch_ok,
                )
            )
            t += timedelta(minutes=2, seconds=13)
            i += 1
        connection.execute(transactions.insert(), txn_rows)

        def add_case(point_id, start, end, kind, severity, shortfall, status="open", **extra):
            result = connection.execute(
                cases.insert().values(
                    origin=extra.pop("origin", "detector"),
                    point_id=point_id,
                    start_at=start,
                    end_at=end,
                    kind=kind,
                    score=extra.pop("score", 0.71),
                    severity=severity,
                    reasons=extra.pop("reasons", english(MAIN_REASONS)),
                    reason_parts=extra.pop("reason_parts", dumps(MAIN_REASONS)),
                    shortfall_rp=shortfall,
                    operators=extra.pop("operators", "op-7,op-2"),
                    model_version="iforest-test",
                    status=status,
                    created_at=now,
                    updated_at=now,
                    **extra,
                )
            )
            return result.inserted_primary_key[0]

        main_case = add_case("PKR-001", case_start, case_end, "low_revenue", "high", 412_000)
        connection.execute(
            anomalies.insert(),
            [
                dict(
                    point_id="PKR-001",
                    hour_start=case_start + timedelta(hours=h),
                    score=0.7,
                    severity="high",
                    kind="low_revenue",
                    reasons="low revenue",
                    # the case's 412_000 is the sum of its hours' shortfalls, as summarise_run makes it
                    shortfall_rp=(137_000, 137_000, 138_000)[h],
                    operators="op-7",
                    model_version="iforest-test",
                    case_id=main_case,
                    scored_at=now,
                )
                for h in range(3)
            ],
        )
        decided = add_case(
            "PSR-002",
            _local(today - timedelta(days=9), 8),
            _local(today - timedelta(days=9), 10),
            "void_spike",
            "medium",
            150_000,
            status="confirmed",
        )
        ids = [main_case, decided]
        ids.append(
            add_case(
                "RST-003",
                _local(today - timedelta(days=2), 19),
                _local(today - timedelta(days=2), 21),
                "cash_shift",
                "low",
                88_000,
            )
        )
        ids.append(
            add_case(
                "HTL-004",
                _local(today - timedelta(days=1), 0),
                _local(today, 0),
                "reconciliation_gap",
                "medium",
                1_250_000,
                origin="reconciliation",
                details=json.dumps({"declared_rp": 7_750_000, "recorded_rp": 9_000_000}),
                reasons=english(RECON_REASONS),
                reason_parts=dumps(RECON_REASONS),
                operators=None,
            )
        )
        for k in range(extra_cases):
            start = _local(today - timedelta(days=4 + k % 20), 9 + k % 8)
            ids.append(
                add_case(
                    POINTS[k % 4][0],
                    start,
                    start + timedelta(hours=1),
                    "low_revenue",
                    "low",
                    10_000 + k,
                )
            )
    return World(today, day, main_case, decided, ids, day_total, compare_total)


def _batch(connection, source, ref, status, now, *, q=0, message=None) -> int:
    result = connection.execute(
        ingest_batches.insert().values(
            source=source,
            source_ref=ref,
            sha256=None,
            started_at=now - timedelta(minutes=5),
            finished_at=now,
            status=status,
            rows_read=1000,
            accepted=1000 - q if status == "ok" else 0,
            quarantined=q,
            duplicates=0,
            message=message,
        )
    )
    return result.inserted_primary_key[0]
