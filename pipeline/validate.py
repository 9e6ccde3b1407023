"""Row-level validation of feed chunks with Great Expectations, rules loaded from expectations/.

Times and amounts are parsed vectorised first (pandas/numpy), and the suite checks the parsed
columns: an expectation on raw timestamp strings is 5-20x slower. Every failing row comes back
with its reasons in plain words, taken from each expectation's ``meta.reason`` in the suite file.
The complete list of failing rows is requested (``result_format`` COMPLETE): the partial lists
Great Expectations returns by default stop at 200 rows, and the quarantine must hold every one.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import cache
from pathlib import Path

import numpy as np
import pandas as pd

from pipeline.errors import UnusableInputError

EXPECTATIONS_DIR = Path(__file__).resolve().parent.parent / "expectations"
TRANSACTIONS_SUITE = "transactions"
# Every suite the pipeline runs; a test checks each has its file in expectations/.
SUITES_USED = (TRANSACTIONS_SUITE,)
_gx_lock = threading.Lock()


def suite_path(name: str) -> Path:
    return EXPECTATIONS_DIR / f"{name}.json"


@cache
def load_suite(name: str = TRANSACTIONS_SUITE):
    """The ExpectationSuite saved in ``expectations/<name>.json``."""
    from great_expectations.core import ExpectationSuite

    path = suite_path(name)
    try:
        spec = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UnusableInputError(f"expectation suite {path} is missing") from None
    except ValueError as exc:
        raise UnusableInputError(f"expectation suite {path} is not valid JSON: {exc}") from None
    return ExpectationSuite(**spec)


@cache
def _batch_definition():
    """One ephemeral GX context per process: a pandas datasource over in-memory chunks."""
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig
    from great_expectations.execution_engine import pandas_execution_engine

    # GX fingerprints every in-memory batch by hashing all its values (pandas_data_fingerprint),
    # which on string columns costs more than the whole validation; we never use that marker.
    # Frames at or above HASH_THRESHOLD bytes are not hashed, so setting it to 0 skips it.
    if hasattr(pandas_execution_engine, "HASH_THRESHOLD"):
        pandas_execution_engine.HASH_THRESHOLD = 0

    for noisy in ("great_expectations", "great_expectations.core"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False, metric_calculations=False)
    source = context.data_sources.add_pandas("feeds")
    asset = source.add_dataframe_asset("feed_chunk")
    return asset.add_batch_definition_whole_dataframe("whole_chunk")


@dataclass
class ChunkValidation:
    """The outcome for one chunk: which rows failed and why, and the parsed values of all rows."""

    failed: np.ndarray  # bool per row
    reasons: dict[int, list[str]] = field(default_factory=dict)  # row position -> reasons
    occurred_at: pd.Series | None = None  # datetime64[us, UTC]; NaT where unparseable
    amount: np.ndarray | None = None  # float64 rupiah; NaN where unparseable

    @property
    def failed_count(self) -> int:
        return int(self.failed.sum())


def _has_offset(values: pd.Series) -> np.ndarray:
    """True where an ISO-8601 string ends in Z, +HH:MM or +HHMM (or the minus forms).

    Done on a fixed-width unicode array viewed as code points: a regex over millions of
    strings costs more than the whole time parse.
    """
    n = len(values)
    if n == 0:
        return np.zeros(0, dtype=bool)
    text = np.asarray(values.fillna("").to_numpy(dtype=object), dtype="U")
    width = max(text.dtype.itemsize // 4, 1)
    points = text.view(np.uint32).reshape(n, width)
    lengths = np.char.str_len(text)
    rows = np.arange(n)

    def at(offset: int) -> np.ndarray:
        position = lengths - offset
        ok = position >= 0
        return np.where(ok, points[rows, np.clip(position, 0, width - 1)], 0)

    sign = (ord("+"), ord("-"))
    zulu = np.isin(at(1), (ord("Z"), ord("z")))
    colon_form = np.isin(at(6), sign) & (at(3) == ord(":"))
    compact_form = np.isin(at(5), sign) & (lengths >= 15)
    return zulu | colon_form | compact_form


def prepare(frame: pd.DataFrame, *, now: datetime) -> tuple[pd.DataFrame, pd.Series, np.ndarray]:
    """Parse times and amounts vectorised: (frame for the suite, occurred_at UTC, amount)."""
    occurred_raw = frame["occurred_at"]
    occurred_at = pd.to_datetime(occurred_raw, format="ISO8601", utc=True, errors="coerce")
    occurred_at = occurred_at.where(_has_offset(occurred_raw))
    amount = pd.to_numeric(frame["amount"], errors="coerce").to_numpy(
        dtype=np.float64, na_value=np.nan
    )

    minutes_ahead = (occurred_at - pd.Timestamp(now)).dt.total_seconds().to_numpy() / 60.0
    checked = frame[
        ["txn_id", "point_id", "occurred_at", "amount", "payment_method", "status"]
    ].copy()
    # A missing raw value is reported once ("amount is missing"), so its parsed column gets a
    # harmless placeholder instead of a second, confusing "not a number" reason.
    amount_present = frame["amount"].notna().to_numpy()
    time_present = occurred_raw.notna().to_numpy()
    checked["amount_rp"] = np.where(amount_present, amount, 0.0)
    checked["amount_fraction"] = np.abs(np.mod(checked["amount_rp"].to_numpy(), 1.0))
    checked["occurred_at_minutes_ahead"] = np.where(time_present, minutes_ahead, 0.0)
    return checked, occurred_at, amount


class _Reasons(dict):
    def __missing__(self, key):
        return ""


def validate_chunk(
    frame: pd.DataFrame,
    *,
    known_point_ids: Iterable[str],
    now: datetime,
    future_tolerance: timedelta,
    suite_name: str = TRANSACTIONS_SUITE,
) -> ChunkValidation:
    """Run the suite over ``frame`` (feed columns as strings) and collect every failing row."""
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    frame = frame.reset_index(drop=True)
    checked, occurred_at, amount = prepare(frame, now=now.astimezone(UTC))
    tolerance_minutes = future_tolerance.total_seconds() / 60.0
    parameters = {
        "known_point_ids": sorted(set(known_point_ids)),
        "future_tolerance_minutes": tolerance_minutes,
    }
    suite = load_suite(suite_name)
    with _gx_lock:
        batch = _batch_definition().get_batch(batch_parameters={"dataframe": checked})
        outcome = batch.validate(
            suite,
            result_format={"result_format": "COMPLETE", "include_unexpected_rows": False},
            expectation_parameters=parameters,
        )
    failed = np.zeros(len(frame), dtype=bool)
    reasons: dict[int, list[str]] = {}
    tolerance_text = f"{tolerance_minutes:g}"
    raw_columns = {c: frame[c].to_numpy(dtype=object, na_value="") for c in frame.columns}
    for result in outcome.results:
        config = result.expectation_config
        if result.exception_info and result.exception_info.get("raised_exception"):
            # A broken expectation must stop the ingest, never pass rows unchecked.
            raise RuntimeError(
                f"expectation {config.type} on {config.kwargs.get('column')} failed to run: "
                f"{result.exception_info.get('exception_message')}"
            )
        if result.success:
            continue
        positions = result.result.get("unexpected_index_list") or []
        template = (config.meta or {}).get(
            "reason"
        ) or f"{config.type} failed on {config.kwargs.get('column')}"
        for position in positions:
            position = int(position)
            failed[position] = True
            values = _Reasons({c: column[position] for c, column in raw_columns.items()})
            values["future_tolerance_minutes"] = tolerance_text
            reasons.setdefault(position, []).append(template.format_map(values))
    return ChunkValidation(failed=failed, reasons=reasons, occurred_at=occurred_at, amount=amount)
