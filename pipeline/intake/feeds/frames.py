"""Frames from pull sources (HTTP pages, POS tables) as feed chunks, with the same column rules."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from pipeline.core.errors import UnusableInputError
from pipeline.intake.feeds.jsonl_feed import _as_text
from pipeline.intake.feeds.lines import (
    FEED_COLUMNS,
    REQUIRED_COLUMNS,
    FeedChunk,
    _missing_columns_error,
    normal_column,
)

# --- frames from pull sources -------------------------------------------------------------


def frame_chunk(frame: pd.DataFrame, *, source_ref: str) -> FeedChunk:
    """A caller's frame (one API page, one SQL slice) as a feed chunk, values made strings.

    Build the frame with ``dtype=object`` from the source's values: a numeric id column with a
    null in it would otherwise be float64, and its ids would read "900000.0" and "nan".
    """
    frame = frame.rename(columns=normal_column)
    columns = [str(c) for c in frame.columns]
    if any(c not in columns for c in REQUIRED_COLUMNS):
        raise _missing_columns_error(Path(source_ref), columns)
    out = pd.DataFrame(index=range(len(frame)))
    nonscalar = np.full(len(frame), None, dtype=object)
    for column in FEED_COLUMNS:
        if column not in frame.columns:
            out[column] = np.nan
            continue
        values = frame[column].reset_index(drop=True)
        if pd.api.types.is_datetime64_any_dtype(values):
            if values.dt.tz is None:
                raise UnusableInputError(
                    f"{source_ref}: column {column} holds naive times; give them a UTC offset"
                )
            text = values.map(lambda t: t.isoformat() if pd.notna(t) else np.nan)
        else:
            if values.dtype == object:
                structured = values.map(lambda v: isinstance(v, (dict, list))).to_numpy(bool)
                nonscalar[structured & pd.isna(nonscalar)] = column
            # Built as object, never inferred: with pyarrow installed pandas 3 would infer an
            # Arrow-backed str column, which refuses a lone surrogate the validator must see.
            text = pd.Series(
                np.array([_as_text(v) for v in values.to_numpy(dtype=object)], dtype=object),
                dtype=object,
            )
        out[column] = text.astype(object)
    line_no = np.arange(1, len(frame) + 1, dtype=np.int64)
    return FeedChunk(
        frame=out,
        line_no=line_no,
        extra_columns=(),
        nonscalar=nonscalar,
        lines=len(frame),
    )
