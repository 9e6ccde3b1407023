"""Row-level validation of feed chunks with Great Expectations, rules loaded from expectations/.

Times and amounts are parsed vectorised first (pandas/numpy), and the suite checks the parsed
columns: an expectation on raw timestamp strings is 5-20x slower. Every failing row comes back
with its reasons in plain words, taken from each expectation's ``meta.reason`` in the suite file.
Every expectation runs on every row with ``result_format`` BOOLEAN_ONLY first; for those that
failed, the complete list of failing rows is then requested (COMPLETE): the partial lists Great
Expectations returns by default stop at 200 rows, and the quarantine must hold every one.
"""

from __future__ import annotations

import json
import logging
import re
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import cache
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from pipeline.core.errors import UnusableInputError

# The suites live in the repository's expectations/; the package reaches them through its own
# intake/expectations (a link to them in a checkout, a copy in a wheel: package data), so a
# plain `pip install eincome` validates with the same files.
EXPECTATIONS_DIR = Path(__file__).parent / "expectations"
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


# Longer values are refused, on both paths: the Python path's fixed-width code-point views
# cost rows x the longest value, and one 10,000-character amount must not make a 8 GB array.
_AMOUNT_MAX_CHARS = 32
_TIME_MAX_CHARS = 64
# Stored column widths (pipeline/store/schema.py): checked here so SQLite, which does not
# enforce VARCHAR lengths, and PostgreSQL, which does, store and quarantine the same rows.
FIELD_MAX_CHARS = {"txn_id": 128, "point_id": 64, "operator_id": 64, "payer_ref": 128}
TEXT_FIELDS = (*REQUIRED_FIELDS, "operator_id", "payer_ref")
DEFAULT_EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)
# NaN, not pd.NA, for a missing value, as in the Python-object strings it replaces (GX counts
# both as missing).
_ARROW_TEXT = pd.StringDtype("pyarrow", na_value=np.nan)
_SEPARATED = re.compile(r"[+-]?\d{1,3}([.,_ \u00a0']\d{3})+")


def _code_points(values: pd.Series, max_chars: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(code points as an (n, width) uint32 array, lengths, too_long) of the strings in
    ``values`` (missing and over-long ones as empty)."""
    raw = values.to_numpy(dtype=object)
    text = np.where(pd.isna(raw), "", raw)
    lengths = np.fromiter((len(t) for t in text), dtype=np.int64, count=len(text))
    too_long = lengths > max_chars
    if too_long.any():
        text = np.where(too_long, "", text)
        lengths = np.where(too_long, 0, lengths)
    fixed = np.asarray(text, dtype="U") if len(text) else np.zeros(0, dtype="U1")
    width = max(fixed.dtype.itemsize // 4, 1)
    points = fixed.view(np.uint32).reshape(len(text), width) if len(text) else np.zeros((0, 1))
    return points, lengths, too_long


def _has_offset_python(values: pd.Series) -> np.ndarray:
    """``_has_offset`` for a column Arrow cannot hold, on a fixed-width unicode array viewed
    as code points (a regex per value in Python costs more than the whole time parse)."""
    n = len(values)
    if n == 0:
        return np.zeros(0, dtype=bool)
    points, lengths, _ = _code_points(values, _TIME_MAX_CHARS)
    width = points.shape[1]
    rows = np.arange(n)

    def at(offset: int) -> np.ndarray:
        position = lengths - offset
        ok = position >= 11
        return np.where(ok, points[rows, np.clip(position, 0, width - 1)], 0)

    def digit(offset: int) -> np.ndarray:
        code = at(offset)
        return (code >= 48) & (code <= 57)

    sign = (ord("+"), ord("-"))
    zulu = np.isin(at(1), (ord("Z"), ord("z"))) & (lengths >= 12)
    colon_form = np.isin(at(6), sign) & (at(3) == ord(":")) & digit(5) & digit(4)
    compact_form = np.isin(at(5), sign) & digit(4) & digit(3) & digit(2) & digit(1)
    hour_form = np.isin(at(3), sign) & digit(2) & digit(1) & (at(6) == ord(":"))
    return zulu | colon_form | compact_form | hour_form


def _parse_amount_python(values: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """``_parse_amount`` for a column Arrow cannot hold, on a fixed-width unicode array viewed
    as code points."""
    n = len(values)
    amount = np.full(n, np.nan)
    separated = np.zeros(n, dtype=bool)
    if n == 0:
        return amount, separated
    points, lengths, too_long = _code_points(values, _AMOUNT_MAX_CHARS)
    width = points.shape[1]
    columns = np.arange(width)
    inside = columns[None, :] < lengths[:, None]
    is_digit = (points >= 48) & (points <= 57)
    is_dot = points == 46
    is_sign = np.isin(points, (43, 45)) & (columns[None, :] == 0)
    allowed = ~inside | is_digit | is_dot | is_sign
    dots = (is_dot & inside).sum(axis=1)
    digits = (is_digit & inside).sum(axis=1)
    last = points[np.arange(n), np.clip(lengths - 1, 0, width - 1)]
    plain = allowed.all(axis=1) & (dots <= 1) & (digits > 0) & (last != 46) & ~too_long
    first_char = points[:, 0]
    plain &= ~(
        (first_char == 46) | (np.isin(first_char, (43, 45)) & (points[:, min(1, width - 1)] == 46))
    )
    raw = values.to_numpy(dtype=object)
    if plain.any():
        amount[plain] = np.array(raw[plain], dtype=np.float64)
    amount[~np.isfinite(amount)] = np.nan
    # Not a plain number, or one whose point is followed by exactly three digits ("12.500"):
    # is it a thousands-separated amount?
    suspect = (~plain & pd.notna(raw)) | (plain & (dots == 1) & (lengths <= 8))
    separated[suspect] = _thousands_separated(raw[suspect])
    amount[separated] = np.nan
    return amount, separated


# The same rules as regular expressions for Arrow's (RE2) kernels, one C pass per column.
# An offset counts only after the date (11 characters or more before it), so the "-01" of a
# bare date is not taken for one: Z or z, +HH:MM, +HHMM, or +HH after a time's ":MM".
_OFFSET_AT_END = r"(?s)^.{11,}(?:[Zz]|[+-][0-9]{2}:..|[+-][0-9]{4}|:..[+-][0-9]{2})$"
_PLAIN_AMOUNT = r"^[+-]?[0-9]+(?:\.[0-9]+)?$"


def _has_offset(values: pd.Series, text: pa.StringArray | None) -> np.ndarray:
    """True where an ISO-8601 time ends in Z, +HH:MM, +HHMM or +HH (or the minus forms).

    ``text``: the column as ``_arrow_text`` gives it (None: the Python path)."""
    if text is None:
        return _has_offset_python(values)
    matches = pc.and_(
        pc.match_substring_regex(text, _OFFSET_AT_END),
        pc.less_equal(pc.utf8_length(text), _TIME_MAX_CHARS),
    )
    return pc.fill_null(matches, False).to_numpy(zero_copy_only=False)


def _thousands_separated(raw: np.ndarray) -> np.ndarray:
    """Per value, whether it is a thousands-separated number ("1.000", "12 500"). Python's
    ``re``, not RE2: its \\d and ``strip`` follow Python's Unicode tables (full-width digits,
    no-break spaces). Only the few values that are not plain numbers come here."""
    return np.fromiter(
        (bool(_SEPARATED.fullmatch(str(v).strip())) for v in raw), dtype=bool, count=len(raw)
    )


def _parse_amount(values: pd.Series, text: pa.StringArray | None) -> tuple[np.ndarray, np.ndarray]:
    """(amounts as float64 rupiah, NaN where not a plain decimal number; thousands-separator
    flags). One rule for every row: optional sign, ASCII digits, optionally a point and more
    digits. Python's float() alone would also take "5_000", full-width digits and "1e3", and
    "1.000" (Indonesian for one thousand) would be Rp 1: a value with a thousands separator is
    flagged instead, never guessed.

    ``text``: the column as ``_arrow_text`` gives it (None: the Python path). Arrow's
    string-to-float cast rounds as Python's float() does (both correctly rounded)."""
    if text is None:
        return _parse_amount_python(values)
    n = len(values)
    amount = np.full(n, np.nan)
    lengths = pc.fill_null(pc.utf8_length(text), 0).to_numpy().astype(np.int64)
    plain = pc.fill_null(pc.match_substring_regex(text, _PLAIN_AMOUNT), False).to_numpy(
        zero_copy_only=False
    ) & (lengths <= _AMOUNT_MAX_CHARS)
    if plain.any():
        amount[plain] = pc.cast(text.filter(pa.array(plain)), pa.float64()).to_numpy()
    amount[~np.isfinite(amount)] = np.nan
    # Not a plain number, or one whose point is followed by exactly three digits ("12.500"):
    # is it a thousands-separated amount?
    has_dot = pc.fill_null(pc.match_substring(text, "."), False).to_numpy(zero_copy_only=False)
    present = text.is_valid().to_numpy(zero_copy_only=False)
    suspect = (~plain & present) | (plain & has_dot & (lengths <= 8))
    separated = np.zeros(n, dtype=bool)
    if suspect.any():
        separated[suspect] = _thousands_separated(text.filter(pa.array(suspect)).to_pylist())
    amount[separated] = np.nan
    return amount, separated


def _arrow_text(values: pd.Series) -> pa.StringArray | None:
    """``values`` as an Arrow string array (missing values null), or None where Arrow cannot
    hold them as they are: a value that is not text, or a lone surrogate. With it, the scans
    below are one C pass each instead of one Python step per value."""
    try:
        return pa.array(values.to_numpy(dtype=object), type=pa.string(), from_pandas=True)
    except (UnicodeError, pa.ArrowException):
        return None


def _field_problems(
    frame: pd.DataFrame, arrow: dict[str, pa.StringArray | None]
) -> tuple[np.ndarray, np.ndarray]:
    """Per row, the first field holding a NUL byte, and the first that is not valid Unicode
    text (a lone surrogate from JSON "\\ud800"), else None. PostgreSQL refuses both; SQLite
    would store them: checked here so both databases give the same verdict.

    ``arrow``: the columns as ``_arrow_text`` gives them; one Arrow holds is valid Unicode."""
    n = len(frame)
    nul = np.full(n, None, dtype=object)
    broken = np.full(n, None, dtype=object)
    for column in TEXT_FIELDS:
        if column not in frame.columns:
            continue
        text = arrow.get(column)
        if text is not None:
            holds_nul = pc.fill_null(pc.match_substring(text, "\x00"), False)
            for i in np.flatnonzero(holds_nul.to_numpy(zero_copy_only=False)):
                if nul[i] is None:
                    nul[i] = column
            continue
        raw = frame[column].to_numpy(dtype=object)
        present = np.flatnonzero(pd.notna(raw))
        if not len(present):
            continue
        texts = [str(v) for v in raw[present]]
        joined = "\n".join(texts)  # one C-level scan per column, not one per value
        if "\x00" in joined:
            for i, t in zip(present, texts, strict=True):
                if "\x00" in t and nul[i] is None:
                    nul[i] = column
        try:
            joined.encode("utf-8")
        except UnicodeEncodeError:
            for i, t in zip(present, texts, strict=True):
                try:
                    t.encode("utf-8")
                except UnicodeEncodeError:
                    if broken[i] is None:
                        broken[i] = column
    return nul, broken


def _text_lengths(values: pd.Series, text: pa.StringArray | None) -> np.ndarray:
    """The length in code points of each text value (0 for a missing or non-text one)."""
    if text is not None:
        return pc.fill_null(pc.utf8_length(text), 0).to_numpy().astype(np.int64)
    raw = values.to_numpy(dtype=object)
    return np.fromiter(
        (len(v) if isinstance(v, str) else 0 for v in raw), dtype=np.int64, count=len(raw)
    )


def _suite_text(values: pd.Series, text: pa.StringArray | None) -> pd.Series:
    """A text column as the suite checks it: Arrow-backed strings, on which GX's null and set
    checks cost about a quarter of what they cost on Python-object strings (pandas' default
    here). A column Arrow cannot hold (``text`` None: a lone surrogate, which
    ``unencodable_field`` reports, or a value that is not text) stays as Python objects: the
    same values, so the same verdicts, only slower."""
    if text is not None:
        return pd.Series(pd.array(text, dtype=_ARROW_TEXT), index=values.index)
    return pd.Series(values.to_numpy(dtype=object), dtype=object, index=values.index)


def prepare(
    frame: pd.DataFrame,
    *,
    known_point_ids: set[str],
    now: datetime,
    earliest: datetime = DEFAULT_EARLIEST,
    nonscalar: np.ndarray | None = None,
) -> tuple[pd.DataFrame, pd.Series, np.ndarray]:
    """Parse times and amounts, look points up and measure the text fields, vectorised.

    Returns (the frame the suite checks, occurred_at as UTC datetimes, amount as float rupiah).
    """
    arrow = {c: _arrow_text(frame[c]) for c in TEXT_FIELDS if c in frame.columns}
    occurred_raw = frame["occurred_at"]
    offset = _has_offset(occurred_raw, arrow["occurred_at"])
    with_offset = occurred_raw.where(offset)
    if arrow["occurred_at"] is not None:
        ends_z = pc.fill_null(pc.ends_with(arrow["occurred_at"], "z"), False).to_numpy(
            zero_copy_only=False
        )
        lower_z = offset & ends_z
    else:
        lower_z = np.fromiter(
            (isinstance(v, str) and v.endswith("z") for v in with_offset.to_numpy(dtype=object)),
            dtype=bool,
            count=len(with_offset),
        )
    if lower_z.any():  # RFC 3339 allows "z"; pandas parses only "Z"
        with_offset = with_offset.copy()
        with_offset[lower_z] = [v[:-1] + "Z" for v in with_offset[lower_z]]
    occurred_at = pd.to_datetime(
        with_offset, format="ISO8601", utc=True, errors="coerce"
    ).dt.as_unit("us")
    amount, separated = _parse_amount(frame["amount"], arrow["amount"])
    minutes_ahead = (occurred_at - pd.Timestamp(now)).dt.total_seconds().to_numpy() / 60.0
    minutes_after_earliest = (
        occurred_at - pd.Timestamp(earliest)
    ).dt.total_seconds().to_numpy() / 60.0

    checked = pd.DataFrame(
        {c: _suite_text(frame[c], arrow[c]) for c in REQUIRED_FIELDS}, index=frame.index
    )
    # A missing raw value is reported once ("amount is missing"), so its derived column gets a
    # harmless placeholder instead of a second, confusing "not a number" reason.
    point_present = frame["point_id"].notna().to_numpy()
    amount_present = frame["amount"].notna().to_numpy() & ~separated
    time_present = occurred_raw.notna().to_numpy()
    registered = frame["point_id"].isin(known_point_ids).to_numpy()
    checked["point_registered"] = registered | ~point_present
    checked["amount_rp"] = np.where(amount_present, amount, 0.0)
    checked["amount_separator"] = separated
    checked["amount_fraction"] = np.abs(np.mod(checked["amount_rp"].to_numpy(), 1.0))
    checked["occurred_at_minutes_ahead"] = np.where(time_present, minutes_ahead, 0.0)
    parsed = ~np.isnan(minutes_after_earliest)
    checked["occurred_at_minutes_after_earliest"] = np.where(
        time_present & parsed, minutes_after_earliest, 0.0
    )
    # One expectation for every stored width: the first field too long, said in words.
    too_long = np.full(len(frame), None, dtype=object)
    for column, limit in FIELD_MAX_CHARS.items():
        if column not in frame.columns:
            continue
        lengths = _text_lengths(frame[column], arrow[column])
        for i in np.flatnonzero((lengths > limit) & pd.isna(too_long)):
            too_long[i] = f"{column} is {int(lengths[i])} characters, longer than {limit}"
    checked["too_long_field"] = too_long
    nul, broken = _field_problems(frame, arrow)
    checked["nul_field"] = nul
    checked["unencodable_field"] = broken
    checked["nonscalar_field"] = (
        np.full(len(frame), None, dtype=object) if nonscalar is None else nonscalar
    )
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


def _run_suite(frame: pd.DataFrame, suite, parameters: dict, result_format: str) -> list:
    """GX's result for every expectation of ``suite`` over ``frame``; one that failed to run
    stops the ingest (never rows passed unchecked)."""
    with _gx_lock:
        batch = _batch_definition().get_batch(batch_parameters={"dataframe": frame})
        outcome = batch.validate(
            suite,
            result_format={"result_format": result_format, "include_unexpected_rows": False},
            expectation_parameters=parameters,
        )
    for result in outcome.results:
        error = _raised(result.exception_info)
        if error:
            config = result.expectation_config
            raise RuntimeError(
                f"expectation {config.type} on {config.kwargs.get('column')} failed to run: {error}"
            )
    return outcome.results


def _config_key(config) -> str:
    """One expectation's identity in a result: its type, resolved kwargs and meta."""
    return json.dumps(config.to_json_dict(), sort_keys=True, default=str)


def failing_rows(
    frame: pd.DataFrame, suite_name: str, parameters: dict
) -> list[tuple[str, list[int]]]:
    """Run the suite ``suite_name`` over ``frame``: (reason template, row positions) for every
    expectation some rows fail. Every failing row is listed (COMPLETE, not GX's first 200); the
    template is the expectation's ``meta.reason``, to be filled with the row's raw values.

    Two passes: every expectation on every row with BOOLEAN_ONLY (success from the same
    unexpected counts, at about half COMPLETE's cost, which builds and resolves the index and
    value lists of every expectation), then COMPLETE only for the expectations that failed - on most
    chunks none, so the second pass is skipped.
    """
    suite = load_suite(suite_name)
    failed = [r for r in _run_suite(frame, suite, parameters, "BOOLEAN_ONLY") if not r.success]
    if not failed:
        return []
    from great_expectations.core import ExpectationSuite

    # The failed expectations as GX resolved them (the parameters filled in), rerun for their rows.
    rerun = ExpectationSuite(
        name=f"{suite.name} (failed)", expectations=[r.expectation_config for r in failed]
    )
    complete = {
        _config_key(r.expectation_config): r
        for r in _run_suite(frame, rerun, parameters, "COMPLETE")
    }
    failures = []
    for first in failed:  # the first pass's order: the order one COMPLETE run of the suite gives
        config = first.expectation_config
        result = complete[_config_key(config)]
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
    earliest: datetime = DEFAULT_EARLIEST,
    nonscalar: np.ndarray | None = None,
    suite_name: str = TRANSACTIONS_SUITE,
) -> ChunkValidation:
    """Run the suite over ``frame`` (feed columns as strings) and collect every failing row.

    ``earliest``: a time before it is quarantined (a device that lost its clock says 1970).
    ``nonscalar``: per row, the field that held a JSON object or array (from the reader).
    """
    if now.tzinfo is None or earliest.tzinfo is None:
        raise ValueError("now and earliest must be timezone-aware")
    frame = frame.reset_index(drop=True)
    known = known_point_ids if isinstance(known_point_ids, set) else set(known_point_ids)
    checked, occurred_at, amount = prepare(
        frame,
        known_point_ids=known,
        now=now.astimezone(UTC),
        earliest=earliest.astimezone(UTC),
        nonscalar=nonscalar,
    )
    tolerance_minutes = future_tolerance.total_seconds() / 60.0
    parameters = {"future_tolerance_minutes": tolerance_minutes}
    failed = np.zeros(len(frame), dtype=bool)
    reasons: dict[int, list[str]] = {}
    tolerance_text = f"{tolerance_minutes:g}"
    raw_columns: dict[str, np.ndarray] = {}
    for template, positions in failing_rows(checked, suite_name, parameters):
        if not raw_columns:
            raw_columns = {c: frame[c].to_numpy(dtype=object, na_value="") for c in frame.columns}
            for c in checked.columns:  # derived values (lengths, field names) for the reasons
                raw_columns.setdefault(c, checked[c].to_numpy(dtype=object))
        for position in positions:
            failed[position] = True
            values = _Reasons({c: column[position] for c, column in raw_columns.items()})
            values["future_tolerance_minutes"] = tolerance_text
            values["earliest_date"] = earliest.date().isoformat()
            reasons.setdefault(position, []).append(template.format_map(values))
    return ChunkValidation(failed=failed, reasons=reasons, occurred_at=occurred_at, amount=amount)
