"""Rows that land in hours already scored: queued for the detection stage to re-score.

A tapping box that was offline syncs its sales hours later; by then the hourly detect run may
have judged the hour from no sales at all ("device off"). Ingest cannot re-score (it does not
know the detector); it leaves the point-hours it filled late in ``rescore_requests`` and the
next scoring run takes them from there (``detection.late_data``).
"""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pandas as pd
from sqlalchemy import Connection

from pipeline.intake.aggregate import HOUR_US, Encoder
from pipeline.store.rescore_queue import request_rescore, scored_until


def queue_late_hours(
    connection: Connection, batch_id: int, rows: pd.DataFrame, encoder: Encoder, now: datetime
) -> int:
    """Queue for re-scoring the point-hours before the last scored hour's end that the batch
    stored ``rows`` (encoded) in; returns how many point-hours were queued."""
    if not len(rows):
        return 0
    until = scored_until(connection)
    if until is None:
        return 0
    until_us = int(until.timestamp() * 1_000_000)
    us = rows["us"].to_numpy()
    late = us < until_us
    if not late.any():
        return 0
    frame = pd.DataFrame(
        {"point": rows["point"].to_numpy()[late], "hour": us[late] // HOUR_US, "us": us[late]}
    )
    grouped = frame.groupby(["point", "hour"]).agg(late_rows=("us", "size"), first=("us", "min"))
    names = encoder.point_names()

    def moment(micros) -> datetime:
        return datetime.fromtimestamp(int(micros) / 1e6, UTC)

    requests = [
        {
            "point_id": names[int(point)],
            "hour_start": moment(np.int64(hour) * HOUR_US),
            "late_rows": int(r.late_rows),
            "first_at": moment(r.first),
        }
        for (point, hour), r in zip(grouped.index, grouped.itertuples(index=False), strict=True)
    ]
    return request_rescore(connection, requests, batch_id=batch_id, now=now)


__all__ = ["queue_late_hours"]
