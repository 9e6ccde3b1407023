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

from pipeline.core.errors import UnusableInputError

EXPECTATIONS_DIR = Path(__file__).resolve().parents[2] / "expectations"
TRANSACTIONS_SUITE = "transactions"
# Every suite the pipeline runs; a test checks each has its file in expectations/.
SUITES_USED = (TRANSACTIONS_SUITE,)
REQUIRED_FIELDS = ("txn_id", "point_id", "occurred_at", "amount", "payment_method", "status")
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


def _parse_amount(values: pd.Series) -> np.ndarray:
    """Amounts as float64 rupiah; NaN where not a finite number."""
    raw = values.to_numpy(dtype=object)
    try:
        # numpy's own string-to-float loop is about twice pandas' to_numeric; it refuses the
        # whole array on one bad value, and then to_numeric finds which ones.
        amount = np.array(raw, dtype=np.float64)
    except (ValueError, TypeError):
        parsed = pd.to_numeric(values, errors="coerce")
        amount = np.array(parsed.to_numpy(dtype=np.float64, na_value=np.nan), copy=True)
    amount[~np.isfinite(amount)] = np.nan  # "inf" and "nan" are not amounts
    return amount


def prepare(
    frame: pd.DataFrame, *, known_point_ids: set[str], now: datetime
) -> tuple[pd.DataFrame, pd.Series, np.ndarray]:
    """Parse times and amounts and look points up, vectorised.

    Returns (the frame the suite checks, occurred_at as UTC datetimes, amount as float rupiah).
    """
    occurred_raw = frame["occurred_at"]
    occurred_at = pd.to_datetime(occurred_raw, format="ISO8601", utc=True, errors="coerce")
    occurred_at = occurred_at.where(_has_offset(occurred_raw))
    amount = _parse_amount(frame["amount"])
    minutes_ahead = (occurred_at - pd.Timestamp(now)).dt.total_seconds().to_numpy() / 60.0

    checked = pd.DataFrame(
        {c: frame[c].to_numpy(dtype=object) for c in REQUIRED_FIELDS}, index=frame.index
    )
    # A missing raw value is reported once ("amount is missing"), so its derived column gets a
    # harmless placeholder instead of a second, confusing "not a number" reason.
    point_present = frame["point_id"].notna().to_numpy()
    amount_present = frame["amount"].notna().to_numpy()
    time_present = occurred_raw.notna().to_numpy()
    registered = frame["point_id"].isin(known_point_ids).to_numpy()
    checked["point_registered"] = registered | ~point_present
    checked["amount_rp"] = np.where(amount_present, amount, 0.0)
    checked["amount_fraction"] = np.abs(np.mod(checked["amount_rp"].to_numpy(), 1.0))
    checked["occurred_at_minutes_ahead"] = np.where(time_present, minutes_ahead, 0.0)
    return checked, occurred_at, amount


def _raised(info) -> str | None:
    """The exception message if GX caught one while running an expectation."""
    if not info:
        return None
    if "raised_exception" in info:
        return info.get("exception_message") or "error" if info["raised_exception"] else None
    for nested in info.values():
        if isinstance(nested, dict) and nested.get("raised_exception"):
            return nested.get("exception_message") or "error"
    return None


def failing_rows(
    frame: pd.DataFrame, suite_name: str, parameters: dict
) -> list[tuple[str, list[int]]]:
    """Run the suite ``suite_name`` over ``frame``: (reason template, row positions) for every
    expectation some rows fail. Every failing row is listed (COMPLETE, not GX's first 200); the
    template is the expectation's ``meta.reason``, to be filled with the row's raw values."""
    suite = load_suite(suite_name)
    with _gx_lock:
        batch = _batch_definition().get_batch(batch_parameters={"dataframe": frame})
        outcome = batch.validate(
            suite,
            result_format={"result_format": "COMPLETE", "include_unexpected_rows": False},
            expectation_parameters=parameters,
        )
    failures = []
    for result in outcome.results:
        config = result.expectation_config
        error = _raised(result.exception_info)
        if error:
            # A broken expectation must stop the ingest, never pass rows unchecked.
            raise RuntimeError(
                f"expectation {config.type} on {config.kwargs.get('column')} failed to run: {error}"
            )
        if result.success:
            continue
        template = (config.meta or {}).get(
            "reason"
        ) or f"{config.type} failed on {config.kwargs.get('column')}"
        positions = [int(p) for p in result.result.get("unexpected_index_list") or []]
        failures.append((template, positions))
    return failures


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
    known = known_point_ids if isinstance(known_point_ids, set) else set(known_point_ids)
    checked, occurred_at, amount = prepare(frame, known_point_ids=known, now=now.astimezone(UTC))
    tolerance_minutes = future_tolerance.total_seconds() / 60.0
    parameters = {"future_tolerance_minutes": tolerance_minutes}
    failed = np.zeros(len(frame), dtype=bool)
    reasons: dict[int, list[str]] = {}
    tolerance_text = f"{tolerance_minutes:g}"
    raw_columns: dict[str, np.ndarray] = {}
    for template, positions in failing_rows(checked, suite_name, parameters):
        if not raw_columns:
            raw_columns = {c: frame[c].to_numpy(dtype=object, na_value="") for c in frame.columns}
        for position in positions:
            failed[position] = True
            values = _Reasons({c: column[position] for c, column in raw_columns.items()})
            values["future_tolerance_minutes"] = tolerance_text
            reasons.setdefault(position, []).append(template.format_map(values))
    return ChunkValidation(failed=failed, reasons=reasons, occurred_at=occurred_at, amount=amount)
