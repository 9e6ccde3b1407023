"""A small set of books for reconciliation tests: points, transactions, returns, deposits.

Rows go straight into the real database (the feed parsers have their own tests); each helper
writes what a planted scenario needs in whole rupiah and local Jakarta days.
"""

from __future__ import annotations

import itertools
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import Engine, insert

from pipeline.store.schema import (
    bank_deposits,
    collector_deposits,
    ingest_batches,
    points,
    tax_returns,
    transactions,
)

JAKARTA = ZoneInfo("Asia/Jakarta")
_ids = itertools.count(1)


class Books:
    def __init__(self, engine: Engine):
        self.engine = engine
        with engine.begin() as connection:
            self.batch_id = connection.execute(
                insert(ingest_batches).values(
                    source="test",
                    source_ref="recon_books",
                    started_at=datetime.now(UTC),
                    status="ok",
                    rows_read=0,
                    accepted=0,
                    quarantined=0,
                    duplicates=0,
                )
            ).inserted_primary_key[0]

    def point(self, point_id: str, revenue_type: str) -> Books:
        with self.engine.begin() as connection:
            connection.execute(
                insert(points).values(
                    point_id=point_id,
                    name=point_id,
                    revenue_type=revenue_type,
                    district="Kota",
                    open_hours="08:00-22:00",
                    timezone="Asia/Jakarta",
                    updated_at=datetime.now(UTC),
                )
            )
        return self

    def sales(
        self,
        point_id: str,
        day: date,
        amount: int,
        *,
        operator: str | None = None,
        method="qris",
        count=1,
    ) -> Books:
        """``count`` paid transactions on ``day`` (local) adding up to ``amount``."""
        rows, each = [], amount // count
        for i in range(count):
            value = each if i < count - 1 else amount - each * (count - 1)
            at = datetime.combine(day, time(10), tzinfo=JAKARTA) + timedelta(minutes=i)
            rows.append(
                {
                    "point_id": point_id,
                    "txn_id": f"T{next(_ids)}",
                    "occurred_at": at,
                    "amount": value,
                    "payment_method": method,
                    "status": "paid",
                    "operator_id": operator,
                    "batch_id": self.batch_id,
                }
            )
        with self.engine.begin() as connection:
            connection.execute(insert(transactions), rows)
        return self

    def tax_return(self, point_id: str, month: str, declared: int, tax_due: int) -> Books:
        start = date.fromisoformat(f"{month}-01")
        end = (start + timedelta(days=32)).replace(day=1) - timedelta(days=1)
        with self.engine.begin() as connection:
            connection.execute(
                insert(tax_returns).values(
                    point_id=point_id,
                    period_start=start,
                    period_end=end,
                    declared_sales=declared,
                    tax_due=tax_due,
                    filed_at=datetime.combine(end + timedelta(days=5), time(9), tzinfo=JAKARTA),
                    batch_id=self.batch_id,
                )
            )
        return self

    def bank(
        self,
        booked_on: date,
        amount: int,
        *,
        point_id: str | None = None,
        collector_id: str | None = None,
        reference: str = "SETORAN",
        channel: str = "va",
        line_id: str | None = None,
    ) -> str:
        line_id = line_id or f"L{next(_ids)}"
        with self.engine.begin() as connection:
            connection.execute(
                insert(bank_deposits).values(
                    line_id=line_id,
                    booked_on=booked_on,
                    value_date=booked_on,
                    amount=amount,
                    reference=reference,
                    point_id=point_id,
                    collector_id=collector_id,
                    channel=channel,
                    batch_id=self.batch_id,
                )
            )
        return line_id

    def handed_in(
        self, collector_id: str, day: date, amount: int, *, on: date | None = None, point_id=None
    ) -> Books:
        with self.engine.begin() as connection:
            connection.execute(
                insert(collector_deposits).values(
                    collector_id=collector_id,
                    day=day,
                    deposited_on=on or day,
                    cash_amount=amount,
                    point_id=point_id,
                    batch_id=self.batch_id,
                )
            )
        return self
