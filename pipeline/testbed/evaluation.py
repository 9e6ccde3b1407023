"""The evaluation harness: the real pipeline on simulated feeds, measured against the labels.

For each seed: simulate into a temp folder, then run what production runs into a fresh SQLite
database (load points, ingest every feed file, load announced closures as suppressions, backfill
= aggregate + train where no model fits + score), and compare the flagged point-hours
(``anomalies``) and ``cases`` with ``labels.csv``.

How it counts (the definitions are the point of this module; see docs/simulate.md):

- Only flags in the evaluation window count: from the end of the simulator's clean weeks (the
  history the detector learns "usual" from) to the end of the data. Flags before it are
  reported as ``warmup_flags`` and not hidden.
- An event (one leakage label) is *caught* if any flagged point-hour of the same point overlaps
  its window. Recall = caught events / events, overall and per kind.
- A flagged point-hour is *true* if it overlaps a leakage window of the same point padded by
  one hour each side. Point-hour precision = true flags / all flags.
- Normal point-hours are the open hours of every point in the window that are outside every
  padded leakage window; false alarms per 1,000 = non-true flags / normal point-hours x 1,000.
- Quiet flags: flagged point-hours that overlap a holiday, closure or rain label of the same
  point and are not true flags. They should be zero.
- Beyond the data: an event of missing sales (under-reporting, a device off) whose
  ``detectability`` label (the simulator's: its shortfall read by the best detector the data
  allows, knowing its exact window and learning only the point's level from the clean weeks) is
  under ``BEYOND_DATA`` noise units. No detector at the evidence threshold sees it but by luck
  (three silent hours where one sale was due). It stays in recall; ``recall_within_data`` is
  recall over the other events, so the two say how much of the gap is the detector's.
- ``kind_named``: caught events where an overlapping flag also named the planted kind.
- Cases are counted the same way: a case is true if it overlaps a padded leakage window of its
  point; case recall = events overlapped by some case; cases per real event = cases / events;
  high-severity precision = true cases among the high-severity ones.

Out of sample by default: the backfill walks forward (each week scored by the model and the
usual levels of the weeks before it, as the live pipeline would have had them); ``in_sample``
reproduces the old hindsight measurement (one model and usual levels learnt from the whole
range, scored weeks included). Seeds 1-5 are for tuning, 101-103 for reporting: figures quoted
in docs come from the report seeds, which no threshold was ever tuned on.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path

import numpy as np
import pandas as pd
from sqlalchemy import Engine, select

from pipeline.core.times import DEFAULT_TIMEZONE
from pipeline.testbed.simulator import (
    JAKARTA,
    LEAKAGE_KINDS,
    QUIET_KINDS,
    Manifest,
    read_labels,
    simulate,
)

PAD = pd.Timedelta(hours=1)
HOUR = pd.Timedelta(hours=1)
# Seeds for tuning thresholds and seeds for reporting: never tune on the report seeds.
TUNE_SEEDS = (1, 2, 3, 4, 5)
REPORT_SEEDS = (101, 102, 103)
# The varied scenario's default first day: a Monday four weeks before Christmas, so the scored
# weeks hold Christmas and New Year and an under-reporting that begins on Christmas runs three
# and a half weeks to the end of the data.
EVAL_START = datetime(2025, 11, 24, tzinfo=JAKARTA)
# An event whose best possible reading is under the detector's evidence threshold
# (``LeakageDetector.min_evidence``, 3 noise units) is beyond the data.
BEYOND_DATA = 3.0
# The issues' targets, for the detector (evaluate reports them; it does not tune to them).
TARGETS = {
    "issue 2: recall >= 0.8 and precision >= 0.5": lambda m: (
        m["recall"] >= 0.8 and (m["precision"] or 0) >= 0.5
    ),
    "issue 3: recall >= 0.85": lambda m: m["recall"] >= 0.85,
    "issue 3: every kind >= 0.6": lambda m: all(v >= 0.6 for v in m["recall_by_kind"].values()),
    "issue 3: precision >= 0.6": lambda m: (m["precision"] or 0) >= 0.6,
    "issue 3: holiday flags <= 3": lambda m: m["quiet_flags"]["holiday"] <= 3,
    "issue 13: recall >= 0.95": lambda m: m["recall"] >= 0.95,
    "issue 13: every kind >= 0.8": lambda m: all(v >= 0.8 for v in m["recall_by_kind"].values()),
    "issue 13: precision >= 0.85": lambda m: (m["precision"] or 0) >= 0.85,
    "issue 13: false alarms <= 2 per 1,000": lambda m: (
        m["false_alarms_per_1000"] is not None and m["false_alarms_per_1000"] <= 2
    ),
    "issue 13: no holiday flag": lambda m: m["quiet_flags"]["holiday"] == 0,
    "issue 13: cases per event <= 1.5": lambda m: (
        m["cases_per_event"] is not None and m["cases_per_event"] <= 1.5
    ),
    "issue 13: case precision >= 0.8": lambda m: (m["case_precision"] or 0) >= 0.8,
}


# ---- pure metric functions: (labels, flags) frames in, numbers out ---------------------------


def _overlaps(
    flags: pd.DataFrame, windows: pd.DataFrame, pad: pd.Timedelta = pd.Timedelta(0)
) -> pd.DataFrame:
    """Pairs (flag row, window row) of the same point whose intervals overlap.

    Flags are point-hours [hour_start, hour_start + 1h); windows are [start_utc, end_utc),
    widened by ``pad`` on each side. Returns columns flag_ix, window_ix.
    """
    if flags.empty or windows.empty:
        return pd.DataFrame({"flag_ix": pd.Series(dtype=int), "window_ix": pd.Series(dtype=int)})
    left = flags[["point_id", "hour_start"]].assign(flag_ix=flags.index)
    right = windows[["point_id", "start_utc", "end_utc"]].assign(window_ix=windows.index)
    pairs = left.merge(right, on="point_id")
    hit = (pairs["hour_start"] < pairs["end_utc"] + pad) & (
        pairs["hour_start"] + HOUR > pairs["start_utc"] - pad
    )
    return pairs.loc[hit, ["flag_ix", "window_ix"]]


def leakage_labels(labels: pd.DataFrame) -> pd.DataFrame:
    return labels[labels["kind"].isin(LEAKAGE_KINDS)]


def event_recall(labels: pd.DataFrame, flags: pd.DataFrame) -> pd.DataFrame:
    """One row per leakage event with ``caught`` (any flag of its point overlaps its window)
    and ``kind_named`` (one of those flags names the event's kind; needs a ``kind`` column)."""
    events = leakage_labels(labels).copy()
    pairs = _overlaps(flags, events)
    events["caught"] = events.index.isin(pairs["window_ix"])
    if "kind" in flags.columns and not pairs.empty:
        named = (
            flags.loc[pairs["flag_ix"], "kind"].to_numpy()
            == events.loc[pairs["window_ix"], "kind"].to_numpy()
        )
        events["kind_named"] = events.index.isin(pairs.loc[named, "window_ix"])
    else:
        events["kind_named"] = False
    return events


def beyond_data(events: pd.DataFrame) -> pd.Series:
    """Per event, whether its planted shortfall is under ``BEYOND_DATA`` at its best reading
    (labels without a ``detectability``, or events it does not assess, are within the data)."""
    if "detectability" not in events.columns:
        return pd.Series(False, index=events.index)
    return events["detectability"].lt(BEYOND_DATA)  # NaN (not assessed): within


def _within_data(events: pd.DataFrame) -> dict:
    """Recall over the events within the data, and the events beyond it with their reading."""
    beyond = beyond_data(events)
    within = events[~beyond]
    return {
        "recall_within_data": float(within["caught"].mean()) if len(within) else None,
        "beyond_data": [
            f"{e.kind} {e.point_id} {e.start_utc:%Y-%m-%d %H:%M} "
            f"({e.detectability:.1f} units{', caught' if e.caught else ''})"
            for e in events[beyond].itertuples()
        ],
    }


def recall_by_kind(events: pd.DataFrame) -> dict[str, float]:
    """Caught share per kind, for kinds that had at least one event."""
    grouped = events.groupby("kind")["caught"].mean()
    return {kind: float(grouped[kind]) for kind in LEAKAGE_KINDS if kind in grouped.index}


def true_flags(labels: pd.DataFrame, flags: pd.DataFrame, pad: pd.Timedelta = PAD) -> pd.Series:
    """For each flag: does it overlap a leakage window of its point, padded by ``pad``?"""
    pairs = _overlaps(flags, leakage_labels(labels), pad)
    return pd.Series(flags.index.isin(pairs["flag_ix"]), index=flags.index)


def point_hour_precision(
    labels: pd.DataFrame, flags: pd.DataFrame, pad: pd.Timedelta = PAD
) -> float | None:
    """True flags / all flags; None when nothing was flagged (precision is undefined then)."""
    if flags.empty:
        return None
    return float(true_flags(labels, flags, pad).mean())


def normal_point_hours(
    registry: pd.DataFrame,
    labels: pd.DataFrame,
    start: datetime,
    end: datetime,
    pad: pd.Timedelta = PAD,
) -> int:
    """Open point-hours in [start, end) outside every padded leakage window of their point.

    ``registry`` has point_id, open_hours ("HH:MM-HH:MM", local) and timezone.
    """
    start, end = pd.Timestamp(start).tz_convert("UTC"), pd.Timestamp(end).tz_convert("UTC")
    hours = pd.date_range(start.floor("h"), end, freq="h", inclusive="left")
    leakage = leakage_labels(labels)
    total = 0
    for point in registry.itertuples(index=False):
        local = hours.tz_convert(getattr(point, "timezone", None) or DEFAULT_TIMEZONE)
        opens, closes = point.open_hours.split("-")
        lo = int(opens[:2]) + int(opens[3:]) / 60
        hi = int(closes[:2]) + int(closes[3:]) / 60
        hour = local.hour.to_numpy()
        # An hour counts as open if any part of it is open; "22:00-02:00" wraps past midnight.
        is_open = (hour + 1 > lo) & (hour < hi) if lo < hi else (hour + 1 > lo) | (hour < hi)
        mask = is_open.copy()
        for window in leakage[leakage["point_id"] == point.point_id].itertuples(index=False):
            inside = (hours < window.end_utc + pad) & (hours + HOUR > window.start_utc - pad)
            mask &= ~np.asarray(inside)
        total += int(mask.sum())
    return total


def quiet_flags(labels: pd.DataFrame, flags: pd.DataFrame, pad: pd.Timedelta = PAD) -> dict:
    """Flagged point-hours on holiday / closure / rain labels of their point, not true flags."""
    counts = dict.fromkeys(QUIET_KINDS, 0)
    if flags.empty:
        return counts
    wrong = flags[~true_flags(labels, flags, pad)]
    for kind in QUIET_KINDS:
        pairs = _overlaps(wrong, labels[labels["kind"] == kind])
        counts[kind] = int(pairs["flag_ix"].nunique())
    return counts


def case_metrics(labels: pd.DataFrame, cases: pd.DataFrame, pad: pd.Timedelta = PAD) -> dict:
    """Cases (point_id, start_at, end_at, optional severity): how many, how many on leakage,
    events they cover, cases per real event, and the precision of the high-severity ones."""
    events = leakage_labels(labels)
    if cases.empty:
        return {
            "cases": 0,
            "true_cases": 0,
            "case_precision": None,
            "case_recall": 0.0,
            "cases_per_event": 0.0 if len(events) else None,
            "high_cases": 0,
            "high_precision": None,
        }
    spans = cases.rename(columns={"start_at": "start_utc", "end_at": "end_utc"})
    # A case is an interval, not one hour: overlap = case.start < label.end and case.end > start.
    pairs = (
        spans[["point_id", "start_utc", "end_utc"]]
        .assign(case_ix=spans.index)
        .merge(
            events[["point_id", "start_utc", "end_utc"]].assign(event_ix=events.index),
            on="point_id",
            suffixes=("_case", "_event"),
        )
    )
    touch = (pairs["start_utc_case"] < pairs["end_utc_event"] + pad) & (
        pairs["end_utc_case"] > pairs["start_utc_event"] - pad
    )
    exact = (pairs["start_utc_case"] < pairs["end_utc_event"]) & (
        pairs["end_utc_case"] > pairs["start_utc_event"]
    )
    true_ix = set(pairs.loc[touch, "case_ix"])
    covered = int(pairs.loc[exact, "event_ix"].nunique())
    high = (
        spans.index[spans["severity"] == "high"] if "severity" in spans else pd.Index([], dtype=int)
    )
    return {
        "cases": len(cases),
        "true_cases": len(true_ix),
        "case_precision": len(true_ix) / len(cases),
        "case_recall": covered / len(events) if len(events) else None,
        "cases_per_event": len(cases) / len(events) if len(events) else None,
        "high_cases": len(high),
        "high_precision": (len(true_ix & set(high)) / len(high)) if len(high) else None,
    }


def score(
    labels: pd.DataFrame,
    flags: pd.DataFrame,
    cases: pd.DataFrame,
    registry: pd.DataFrame,
    window_start: datetime,
    window_end: datetime,
) -> dict:
    """Every figure for one run. Flags/cases/labels outside [window_start, window_end) are cut."""
    lo, hi = pd.Timestamp(window_start), pd.Timestamp(window_end)
    flags = flags.reset_index(drop=True)
    in_window = (flags["hour_start"] >= lo) & (flags["hour_start"] < hi)
    warmup = int((~in_window).sum())
    flags = flags[in_window].reset_index(drop=True)
    labels = labels[(labels["end_utc"] > lo) & (labels["start_utc"] < hi)].reset_index(drop=True)
    if not cases.empty:
        cases = cases[(cases["end_at"] > lo) & (cases["start_at"] < hi)].reset_index(drop=True)
    events = event_recall(labels, flags)
    is_true = true_flags(labels, flags)
    normal = normal_point_hours(registry, labels, lo, hi)
    false = int((~is_true).sum())
    return {
        "events": len(events),
        "caught": int(events["caught"].sum()),
        "recall": float(events["caught"].mean()) if len(events) else None,
        "recall_by_kind": recall_by_kind(events),
        # Of the caught events, how many had a flag naming the right pattern (reported, not
        # part of recall: an auditor still looks at a case with the wrong label).
        "kind_named": int(events["kind_named"].sum()),
        "events_by_kind": events["kind"].value_counts().to_dict(),
        "missed": [
            f"{e.kind} {e.point_id} {e.start_utc:%Y-%m-%d %H:%M}"
            for e in events[~events["caught"]].itertuples()
        ],
        **_within_data(events),
        "flagged_hours": len(flags),
        "true_flagged_hours": int(is_true.sum()),
        "precision": float(is_true.mean()) if len(flags) else None,
        "normal_hours": normal,
        "false_alarms": false,
        "false_alarms_per_1000": 1000 * false / normal if normal else None,
        "quiet_flags": quiet_flags(labels, flags),
        "warmup_flags": warmup,
        **case_metrics(labels, cases),
    }


# ---- running the real pipeline ----------------------------------------------------------------


@dataclass
class SeedRun:
    """One seed's figures plus what the pipeline did on the way."""

    seed: int
    metrics: dict
    ingest: dict = field(default_factory=dict)  # rows_read, accepted, quarantined, duplicates
    hours_scored: int = 0
    model_version: str = ""
    seconds: float = 0.0
    models: int = 0  # model versions that scored the window (walk-forward: one per week)
    reconciliation: dict = field(default_factory=dict)  # planted gaps found, false gaps


def read_flags(engine: Engine) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(anomalies: point_id, hour_start, kind, score), (cases: point_id, start_at, end_at, kind,
    severity, model_version) of detector origin, times as UTC timestamps; ``flags.attrs["models"]``
    is how many model versions scored the flags."""
    from pipeline.store.schema import anomalies, cases

    with engine.connect() as connection:
        flag_rows = connection.execute(
            select(
                anomalies.c.point_id, anomalies.c.hour_start, anomalies.c.kind, anomalies.c.score
            )
        ).all()
        case_rows = connection.execute(
            select(
                cases.c.point_id,
                cases.c.start_at,
                cases.c.end_at,
                cases.c.kind,
                cases.c.severity,
                cases.c.model_version,
            ).where(cases.c.origin == "detector")
        ).all()
        model_rows = connection.execute(select(anomalies.c.model_version).distinct()).all()
    flags = pd.DataFrame(flag_rows, columns=["point_id", "hour_start", "kind", "score"])
    # Stored times come back naive (SQLite) or aware (PostgreSQL); both are UTC.
    flags["hour_start"] = pd.to_datetime(flags["hour_start"], utc=True)
    found = pd.DataFrame(
        case_rows,
        columns=["point_id", "start_at", "end_at", "kind", "severity", "model_version"],
    )
    flags.attrs["models"] = len(model_rows)
    for column in ("start_at", "end_at"):
        found[column] = pd.to_datetime(found[column], utc=True)
    return flags, found


def run_pipeline(
    engine: Engine, models_dir: Path, manifest: Manifest, *, in_sample: bool = False
) -> tuple[dict, object]:
    """Points -> every feed file -> closures as suppressions -> backfill over the whole range
    (walking forward; ``in_sample``: the old hindsight backfill)."""
    # The other stages' public functions; imported here so the simulator needs none of them.
    from pipeline.detection.backfill import backfill
    from pipeline.intake.ingest import ingest_file
    from pipeline.reference.points import load_registry
    from pipeline.reference.suppressions import load_closures

    load_registry(engine, manifest.points_csv)
    totals = dict.fromkeys(("rows_read", "accepted", "quarantined", "duplicates"), 0)
    for feed in manifest.feeds:
        result = ingest_file(engine, feed)
        for key in totals:
            totals[key] += int(getattr(result, key))
    load_closures(engine, manifest.closures_csv)
    result = backfill(engine, models_dir, manifest.start, manifest.end, hindsight=in_sample)
    return totals, result


def evaluate_seed(
    seed: int,
    *,
    points: int = 40,
    weeks: int = 8,
    start: datetime | None = None,
    workdir: Path | None = None,
    keep: Path | None = None,
    scenario: str = "varied",
    in_sample: bool = False,
) -> SeedRun:
    """Simulate with ``seed``, run the real pipeline into a fresh SQLite database, score it.

    With ``keep``, the simulation and the database stay in ``keep/seed-<seed>/`` for a look
    (``EINCOME_DB_URL=sqlite:///.../eval.db eincome cases``); otherwise a temp folder is used.
    """
    began = time.perf_counter()
    if keep is not None:
        folder = Path(keep) / f"seed-{seed}"
        if folder.exists():
            shutil.rmtree(folder)
        folder.mkdir(parents=True)
        run = _evaluate_in(folder, seed, points, weeks, start, scenario, in_sample)
    else:
        with tempfile.TemporaryDirectory(prefix=f"eincome-eval-{seed}-", dir=workdir) as tmp:
            run = _evaluate_in(Path(tmp), seed, points, weeks, start, scenario, in_sample)
    run.seconds = round(time.perf_counter() - began, 1)
    return run


def _evaluate_in(
    folder: Path,
    seed: int,
    points: int,
    weeks: int,
    start: datetime | None,
    scenario: str,
    in_sample: bool,
) -> SeedRun:
    from pipeline.store import connect

    if start is None and scenario == "varied":
        start = EVAL_START
    kwargs = {"start": start} if start is not None else {}
    # Week files: the same rows as day files, fewer batches to book-keep.
    manifest = simulate(
        folder / "sim",
        points=points,
        weeks=weeks,
        seed=seed,
        split="week",
        scenario=scenario,
        **kwargs,
    )
    engine = connect(f"sqlite:///{folder / 'eval.db'}")
    try:
        totals, result = run_pipeline(engine, folder / "models", manifest, in_sample=in_sample)
        flags, found = read_flags(engine)
        reconciliation = evaluate_books(engine, manifest, folder / "books", seed)
    finally:
        engine.dispose()
    labels = read_labels(manifest.labels_csv)
    registry = pd.read_csv(manifest.points_csv, dtype=str, keep_default_na=False)
    metrics = score(labels, flags, found, registry, manifest.clean_until, manifest.end)
    return SeedRun(
        seed=seed,
        metrics=metrics,
        ingest=totals,
        hours_scored=int(getattr(result, "hours_scored", 0)),
        model_version=str(getattr(result, "model_version", "")),
        models=int(flags.attrs.get("models", 0)),
        reconciliation=reconciliation,
    )


def evaluate_books(engine: Engine, manifest: Manifest, books_dir: Path, seed: int) -> dict:
    """Books with planted gaps on the same simulated regency (returns, bank statement, collector
    deposits) through the real reconciliation; planted gaps found and false gaps raised."""
    from pipeline.testbed.recon_simulator import reconcile_simulation, score_cases

    books, _ = reconcile_simulation(engine, manifest.out_dir, books_dir, seed=seed)
    scored = score_cases(engine, books.labels_csv)
    labelled, found = sum(scored["labelled"].values()), sum(scored["found"].values())
    return {
        "labelled": labelled,
        "found": found,
        "recall": found / labelled if labelled else None,
        "recall_by_pattern": {
            k: scored["found"].get(k, 0) / n for k, n in scored["labelled"].items()
        },
        "false_gaps": scored["false_gaps"],
        "false_gaps_on_clean": scored["false_gaps_on_clean"],
        "clean_periods": scored["clean_periods"],
    }


def summarise(runs: list[SeedRun]) -> dict:
    """Means over seeds (per-kind means over the seeds where the kind had events)."""

    def mean(values):
        values = [v for v in values if v is not None]
        return float(np.mean(values)) if values else None

    metrics = [r.metrics for r in runs]
    kinds = {k for m in metrics for k in m["recall_by_kind"]}
    summary = {
        "seeds": [r.seed for r in runs],
        "recall": mean(m["recall"] for m in metrics),
        "recall_within_data": mean(m.get("recall_within_data") for m in metrics),
        "events_beyond_data": sum(len(m.get("beyond_data", [])) for m in metrics),
        "recall_by_kind": {
            k: mean(m["recall_by_kind"].get(k) for m in metrics)
            for k in LEAKAGE_KINDS
            if k in kinds
        },
        "precision": mean(m["precision"] for m in metrics),
        "false_alarms_per_1000": mean(m["false_alarms_per_1000"] for m in metrics),
        "quiet_flags": {k: mean(m["quiet_flags"].get(k, 0) for m in metrics) for k in QUIET_KINDS},
        "case_precision": mean(m["case_precision"] for m in metrics),
        "case_recall": mean(m["case_recall"] for m in metrics),
        "cases_per_event": mean(m.get("cases_per_event") for m in metrics),
        "high_precision": mean(m.get("high_precision") for m in metrics),
        "reconciliation": {
            "recall": mean(r.reconciliation.get("recall") for r in runs),
            "false_gaps": sum(r.reconciliation.get("false_gaps", 0) for r in runs),
            "false_gaps_on_clean": sum(
                r.reconciliation.get("false_gaps_on_clean", 0) for r in runs
            ),
        },
    }
    summary["targets"] = {
        name: bool(check(summary)) if summary["recall"] is not None else False
        for name, check in TARGETS.items()
    }
    # Issue 2 asks for its floor on at least two seeds, not on the mean.
    issue2 = [
        r.metrics["recall"] is not None and TARGETS[next(iter(TARGETS))](r.metrics) for r in runs
    ]
    summary["targets"]["issue 2: on at least two seeds"] = sum(issue2) >= 2
    return summary


def evaluate(
    seeds: list[int],
    *,
    points: int = 40,
    weeks: int = 8,
    start: datetime | None = None,
    workdir: Path | None = None,
    keep: Path | None = None,
    scenario: str = "varied",
    in_sample: bool = False,
) -> dict:
    """Run every seed; returns {"runs": [...], "mean": {...}} (JSON-ready)."""
    runs = [
        evaluate_seed(
            s,
            points=points,
            weeks=weeks,
            start=start,
            workdir=workdir,
            keep=keep,
            scenario=scenario,
            in_sample=in_sample,
        )
        for s in seeds
    ]
    return {
        "settings": {
            "points": points,
            "weeks": weeks,
            "seeds": seeds,
            "seed_use": seed_use(seeds),
            "scenario": scenario,
            "scoring": "in sample (hindsight)" if in_sample else "out of sample (walk-forward)",
            "pad_hours": PAD / HOUR,
        },
        "runs": [asdict(r) for r in runs],
        "mean": summarise(runs),
    }


def seed_use(seeds: list[int]) -> str:
    """Which kind of seeds these are: "report" (never tuned on), "tune", or "other"."""
    if set(seeds) <= set(REPORT_SEEDS):
        return "report"
    if set(seeds) <= set(TUNE_SEEDS):
        return "tune"
    return "other"


def to_json(report: dict) -> str:
    return json.dumps(report, default=str, sort_keys=True)
