"""Issue 13 part 2 (the report seeds' weakest kind is under-reporting that begins on Christmas
Day and runs to the end of the data): a share of a restaurant's sales left unrecorded from a
public holiday on is flagged within days, never on the holiday itself, and stays one case that
grows with the drop.

Real parts end to end: the project's simulator with no leakage of its own, in its classic
scenario (no slow drift, so the share is that far below the usual level), the share of the
paid sales of its busiest restaurant dropped from the feed from Christmas Day on, then the real
ingest and walk-forward backfill into a temp SQLite database.

How soon depends on the drop against the point's own day-to-day spread. This restaurant's
days vary about 30% against a usual learnt without them (its Mondays of the four weeks before:
Rp 8,4 / 5,9 / 6,3 / 11,1 million), so half its sales gone is about two spreads a day and is
raised within three days (the holiday and the two days after it); a third gone is about one
spread a day and takes a day or two more (docs/detection.md, *Level shifts*).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import select

from pipeline.core.times import DEFAULT_TIMEZONE
from pipeline.store import connect
from pipeline.store.schema import anomalies, cases
from pipeline.testbed.evaluation import EVAL_START, run_pipeline
from pipeline.testbed.simulator import simulate

CHRISTMAS = pd.Timestamp("2025-12-25", tz=DEFAULT_TIMEZONE)


def _busiest_restaurant(feeds: list) -> str:
    counts = pd.concat(
        [pd.read_csv(path, usecols=["point_id"], dtype=str)["point_id"] for path in feeds]
    ).value_counts()
    return str(counts[counts.index.str.startswith("RST-")].index[0])


def _leave_out_from_christmas(feeds: list, point_id: str, share: float, seed: int) -> None:
    """Drop ``share`` of ``point_id``'s paid sales from Christmas Day (local) to the end."""
    rng = np.random.default_rng(seed)
    for path in feeds:
        rows = pd.read_csv(path, dtype=str, keep_default_na=False)
        at = pd.to_datetime(rows["occurred_at"], format="ISO8601", utc=True, errors="coerce")
        leaked = (
            (rows["point_id"] == point_id)
            & (rows["status"] == "paid")
            & (at >= CHRISTMAS.tz_convert("UTC"))
            & (rng.random(len(rows)) < share)
        )
        rows[~leaked].to_csv(path, index=False)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("share", "within_days", "days_flagged"),
    [(1 / 2, 3, 1 / 2), (1 / 3, 5, 1 / 3)],
    ids=["half-within-3-days", "third-within-5-days"],
)
def test_sales_gone_from_christmas_are_raised_within_days_and_stay_one_case(
    tmp_path, share, within_days, days_flagged
):
    # Six weeks from 2025-11-24: four of history, scored from 2025-12-22, Christmas in the
    # first scored week and ten days of the drop after it.
    manifest = simulate(
        tmp_path / "sim",
        points=16,
        weeks=6,
        seed=11,
        start=EVAL_START,
        leakage=False,
        split="week",
        scenario="classic",
    )
    point_id = _busiest_restaurant(manifest.feeds)
    _leave_out_from_christmas(manifest.feeds, point_id, share, seed=11)
    engine = connect(f"sqlite:///{tmp_path / 'eval.db'}")
    try:
        run_pipeline(engine, tmp_path / "models", manifest)
        with engine.connect() as connection:
            flags = pd.DataFrame(
                connection.execute(
                    select(anomalies.c.hour_start, anomalies.c.case_id).where(
                        anomalies.c.point_id == point_id
                    )
                ).all(),
                columns=["hour_start", "case_id"],
            )
            found = pd.DataFrame(
                connection.execute(
                    select(cases.c.case_id, cases.c.start_at, cases.c.end_at).where(
                        (cases.c.point_id == point_id) & (cases.c.origin == "detector")
                    )
                ).all(),
                columns=["case_id", "start_at", "end_at"],
            )
    finally:
        engine.dispose()
    local = pd.to_datetime(flags["hour_start"], utc=True).dt.tz_convert(DEFAULT_TIMEZONE)
    in_drop = local >= CHRISTMAS
    assert not (local.dt.normalize() == CHRISTMAS).any()  # nothing on the holiday itself
    # Raised within ``within_days`` of its start, Christmas Day the first.
    assert local[in_drop].min() < CHRISTMAS + pd.Timedelta(days=within_days)
    # One case, which grows with the drop: every flag of the drop in it, reaching the last days.
    assert flags.loc[in_drop.to_numpy(), "case_id"].notna().all()
    assert flags.loc[in_drop.to_numpy(), "case_id"].nunique() == 1
    assert len(found) == 1
    local = local[in_drop]
    last_day = (pd.Timestamp(manifest.end) - pd.Timedelta(hours=1)).tz_convert(DEFAULT_TIMEZONE)
    last_day = last_day.normalize()
    assert local.max() >= last_day - pd.Timedelta(days=2)
    # The flags come back day after day: on at least ``days_flagged`` of the days of the drop
    # after the holiday (at a third gone, some days of a point this varied look ordinary).
    days_after_holiday = (last_day - CHRISTMAS).days
    assert local.dt.normalize().nunique() >= days_after_holiday * days_flagged
