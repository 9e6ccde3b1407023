"""The baseline cache: the hourly runs of a day share one baseline window, so its usual levels
(and the operators' usual shares, an SQL pass over eight weeks of transactions) are kept on disk
as numpy ``.npz`` (no pickle), keyed by the window and a fingerprint of its data."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict
from datetime import datetime
from pathlib import Path

import numpy as np
import pandas as pd
from sqlalchemy import Connection, Engine, String, and_, func, select, type_coerce

from pipeline.detection.features.config import SLOT_COLUMNS, FeatureConfig
from pipeline.detection.features.loading import OP_USUAL_VALUES, unusual_case_windows
from pipeline.intake.aggregate import AGGREGATE_COLUMNS
from pipeline.store.schema import hour_aggregates, points, suppressions


def hour_aggregates_fingerprint(
    connection: Connection, begin: datetime, end: datetime
) -> list[int]:
    """The row count and the total of every column of the hour aggregates in [begin, end), every
    point's: a fingerprint of the window, figured in SQL without reading its rows into Python.

    Stored transactions are never changed or removed (a resend that differs is quarantined as a
    conflict), so the aggregates of a window only gain: every row landing in it adds one to a
    sale, void or refund count of its hour, a new hour's row or an existing one's (late rows,
    which keep the row count the same). Totals therefore change whenever the rows do, without
    hashing each row.

    It visits every row of the window, in the database: at 1,000 points and eight weeks
    (~240,000 rows) ~0.12 s CPU on SQLite (a count alone, from the index, 0.01 s) and 0.07 s on
    PostgreSQL, against ~4 s to learn the baseline again. The operators' complete days
    (``shift_cache``) hash their rows instead: a run has them in memory, not these."""
    h = hour_aggregates.c
    totals = connection.execute(
        select(
            func.count(),
            *(func.coalesce(func.sum(h[column]), 0) for column in AGGREGATE_COLUMNS),
        ).where(and_(h.hour_start >= begin, h.hour_start < end))
    ).one()
    return [int(value) for value in totals]  # PostgreSQL sums bigints as numeric


def baseline_path(
    engine: Engine, cache_dir: Path, begin: datetime, end: datetime, config: FeatureConfig
) -> Path:
    """Cache file of one baseline window; its name changes when the window's data changes."""
    with engine.connect() as connection:
        aggregates = hour_aggregates_fingerprint(connection, begin, end)
        windows = connection.execute(
            select(func.count()).select_from(suppressions).where(suppressions.c.kind.is_(None))
        ).scalar_one()
        registry = connection.execute(
            select(func.count(), type_coerce(func.max(points.c.updated_at), String))
        ).one()
    # The case hours kept out of the window (confirmed, or waiting for a decision), clipped to
    # it: a case opening or growing after the window leaves its baseline as it was.
    unusual = unusual_case_windows(engine, begin, end, opened_before=end)
    left_out = [
        [row.point_id, max(row.start_at, begin).isoformat(), min(row.end_at, end).isoformat()]
        for row in unusual.itertuples(index=False)
    ]
    key = json.dumps(
        [
            begin.isoformat(),
            end.isoformat(),
            aggregates,
            windows,
            left_out,
            list(registry),
            sorted(asdict(config).items()),
        ],
        default=str,
    )
    digest = hashlib.sha256(key.encode()).hexdigest()[:16]
    return cache_dir / f"baseline-{begin:%Y%m%dT%H}-{end:%Y%m%dT%H}-{digest}.npz"


def write_baseline(
    path: Path,
    pts: pd.DataFrame,
    slots: pd.DataFrame,
    scales: pd.DataFrame,
    op_usual: pd.DataFrame,
) -> None:
    """Keep a baseline at ``path``, written to a temporary file and moved into place."""
    path.parent.mkdir(parents=True, exist_ok=True)
    ids = pts["point_id"].to_numpy().astype(str)
    arrays = {f"slot_{c}": slots[c].to_numpy() for c in SLOT_COLUMNS}
    arrays["slot_point_id"] = ids[slots["pos"].to_numpy()]
    arrays.update({f"scale_{c}": scales[c].to_numpy() for c in scales.columns})
    arrays["scale_point_id"] = ids[scales.index.to_numpy()]
    # The operators' usual shares (an SQL pass over eight weeks of transactions) go with them;
    # sales without an operator have operator_id None, kept as a mask (no pickled objects).
    operator = op_usual["operator_id"]
    arrays["op_point_id"] = op_usual["point_id"].to_numpy().astype(str)
    arrays["op_operator_id"] = operator.fillna("").to_numpy().astype(str)
    arrays["op_operator_missing"] = operator.isna().to_numpy()
    arrays.update({f"op_{c}": op_usual[c].to_numpy(dtype=np.float64) for c in OP_USUAL_VALUES})
    tmp = path.with_suffix(".tmp.npz")
    np.savez(tmp, **arrays)
    tmp.replace(path)


def read_baseline(
    path: Path, pts: pd.DataFrame
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame] | None:
    """(slots, scales, operator usuals) kept at ``path``, positioned on today's registry
    ``pts``; None when there is no usable file."""
    if not path.exists():
        return None
    with np.load(path, allow_pickle=False) as data:
        if "op_point_id" not in data.files:
            return None  # written before operator usuals were cached: rebuild
        operator = pd.Series(data["op_operator_id"], dtype="str")
        op_usual = pd.DataFrame(
            {
                "point_id": pd.Series(data["op_point_id"], dtype="str"),
                "operator_id": operator.mask(data["op_operator_missing"]),
                **{c: data[f"op_{c}"] for c in OP_USUAL_VALUES},
            }
        )
        position = pd.Series(np.arange(len(pts)), index=pts["point_id"].to_numpy())
        slots = pd.DataFrame({c: data[f"slot_{c}"] for c in SLOT_COLUMNS if c != "pos"})
        slots["pos"] = position.reindex(data["slot_point_id"]).to_numpy()
        scale_names = [
            k[len("scale_") :]
            for k in data.files
            if k.startswith("scale_") and k != "scale_point_id"
        ]
        scales = pd.DataFrame({c: data[f"scale_{c}"] for c in scale_names})
        scales["pos"] = position.reindex(data["scale_point_id"]).to_numpy()
    slots = slots.dropna(subset=["pos"]).astype({"pos": np.int64})
    scales = scales.dropna(subset=["pos"]).astype({"pos": np.int64}).set_index("pos")
    return slots, scales.reindex(pd.RangeIndex(len(pts), name="pos")), op_usual
