"""The leakage detector: an IsolationForest over the point-hour features, a calibrated threshold,
and the rule-level evidence that names the suspected pattern and writes the reasons.

The forest ranks how unusual an hour's *combination* of losses is; an hour is flagged when its
score passes the threshold learnt at fit time (a quantile set by ``contamination``) **and** at
least one signal is individually strong (``min_evidence`` noise units), so a flag can always be
explained to an auditor with a number.
"""

from __future__ import annotations

from numbers import Integral, Real

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator
from sklearn.ensemble import IsolationForest
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import check_is_fitted, validate_data

from pipeline.core.phrases import Phrase, as_phrase, dumps, english, phrase
from pipeline.detection.features import FEATURES, SHIFT_END_MINUTES
from pipeline.detection.features.small_points import thin_silence
from pipeline.detection.quiet import (
    PATTERN_STRENGTH,
    case_evidence,
    day_view_over,
    hour_not_down,
    local_dip,
    weak_volume,
)

THRESHOLD_SAMPLE = 50_000


class LeakageDetector(BaseEstimator):
    """IsolationForest on one-sided "worse than usual" features, with an evidence gate.

    Parameters
    ----------
    n_estimators, max_samples, random_state : passed to IsolationForest.
    contamination : share of training point-hours above the score threshold.
    min_evidence : an hour is flagged only if one feature is at least this many noise units out.

    Sign convention: unlike scikit-learn's outlier detectors (``IsolationForest.score_samples``:
    the lower, the more abnormal), ``score_samples`` here is the higher, the more unusual, and
    ``predict`` gives 1 for a flagged hour and 0 otherwise (not +1 inlier / -1 outlier).
    """

    _parameter_constraints: dict = {
        "n_estimators": [Interval(Integral, 1, None, closed="left")],
        "max_samples": [
            Interval(Integral, 1, None, closed="left"),
            Interval(Real, 0, 1, closed="right"),
            StrOptions({"auto"}),
        ],
        "contamination": [Interval(Real, 0, 0.5, closed="neither")],
        "min_evidence": [Interval(Real, 0, None, closed="neither")],
        # A seed, not a RandomState: it also seeds numpy's Generator for the threshold sample.
        "random_state": [Interval(Integral, 0, None, closed="left"), None],
    }

    def __init__(
        self,
        *,
        n_estimators: int = 150,
        max_samples: int | str = 512,
        contamination: float = 0.05,
        min_evidence: float = 3.0,
        random_state: int = 0,
    ):
        self.n_estimators = n_estimators
        self.max_samples = max_samples
        self.contamination = contamination
        self.min_evidence = min_evidence
        self.random_state = random_state

    def fit(self, X, y=None):
        """Learn the forest and the score threshold from training point-hours."""
        self._validate_params()
        X = validate_data(self, X, dtype=np.float64, reset=True)
        if X.shape[0] < 10:
            raise ValueError(f"n_samples = {X.shape[0]}: need at least 10 training point-hours")
        self.forest_ = IsolationForest(
            n_estimators=self.n_estimators,
            max_samples=min(self.max_samples, X.shape[0])
            if isinstance(self.max_samples, int)
            else self.max_samples,
            random_state=self.random_state,
        ).fit(X)
        # The threshold is a quantile: 50,000 training hours estimate it as well as millions.
        if X.shape[0] > THRESHOLD_SAMPLE:
            rows = np.random.default_rng(self.random_state).choice(
                X.shape[0], THRESHOLD_SAMPLE, replace=False
            )
            X = X[rows]
        scores = -self.forest_.score_samples(X)
        self.threshold_ = float(np.quantile(scores, 1 - self.contamination))
        self.score_high_ = float(np.quantile(scores, 1 - self.contamination / 10))
        self.n_training_hours_ = int(X.shape[0])
        return self

    def score_samples(self, X) -> np.ndarray:
        """Anomaly score: higher is more unusual (the negated IsolationForest score)."""
        check_is_fitted(self, "forest_")
        return -self.forest_.score_samples(validate_data(self, X, dtype=np.float64, reset=False))

    def predict(self, X) -> np.ndarray:
        """1 for a flagged point-hour, 0 otherwise."""
        return (self.flag_scores(X) >= self.threshold_).astype(int)

    def flag_scores(self, X) -> np.ndarray:
        """Anomaly scores of the hours that pass the evidence gate, -inf for the others (the
        forest only runs on the few gated hours: scoring is the costly part at scale)."""
        check_is_fitted(self, "forest_")
        values = validate_data(self, X, dtype=np.float64, reset=False)
        gated = values.max(axis=1) >= self.min_evidence
        scores = np.full(values.shape[0], -np.inf)
        if gated.any():
            scores[gated] = -self.forest_.score_samples(values[gated])
        return scores


# ----------------------------------------------------------------------------------------------
# Evidence -> kind, severity, reasons, shortfall


def kind_evidence(frame: pd.DataFrame) -> pd.DataFrame:
    """One evidence column per pattern kind (noise units)."""
    silent = (frame["txn_count"] == 0) & (frame["void_count"] + frame["refund_count"] == 0)
    # An operator's cash falling short is skimming when the cash share fell with it; when every
    # payment method fell alike it is plain under-reporting.
    skim_like = (
        (frame["cash_share"] < frame["usual_cash"] - 0.1)
        | (frame["op_cash_drop"] >= 1.5)
        | (frame["cash_drop"] >= 1.5)
    )
    short = frame["op_cash_short"]
    return pd.DataFrame(
        {
            "device_off": np.where(silent, frame["silence"], 0.0),
            "split_transactions": frame[["tiny_excess", "burst", "payer_repeat"]].max(axis=1),
            "void_abuse": frame[
                ["void_excess", "op_void_excess", "void_shift_end", "cash_refund_noncash"]
            ].max(axis=1),
            "cash_skimming": np.maximum(
                frame[["cash_drop", "op_cash_drop"]].max(axis=1), np.where(skim_like, short, 0.0)
            ),
            "ticket_shaving": np.where(
                frame["count_drop"] < 2.5,
                frame[["ticket_drop", "ticket_day_drop"]].max(axis=1),
                0.0,
            ),
            "under_reporting": np.where(
                silent,
                frame["small_shortfall"],
                np.maximum(
                    frame[
                        ["rev_drop", "count_drop", "day_drop", "level_shift", "small_shortfall"]
                    ].max(axis=1),
                    np.where(skim_like, 0.0, short),
                ),
            ),
        },
        index=frame.index,
    )


SPECIFIC_KINDS = ("split_transactions", "void_abuse", "cash_skimming", "ticket_shaving")


def suspected_kind(frame: pd.DataFrame, min_evidence: float) -> pd.Series:
    """The pattern each row most looks like. A silent device first; then, among the specific
    patterns whose own signal is strong, the one with the most money at stake (thirty voided
    Rp 85.000 sales re-rung as tiny tickets are void abuse worth Rp 2.550.000, not splitting
    worth the few thousand the tickets fell short); a specific pattern beats the generic
    "revenue is down" (skimmed cash and shaved tickets also lower revenue)."""
    evidence = kind_evidence(frame)
    kind = evidence.idxmax(axis=1)
    kind = kind.where(~(evidence["under_reporting"] >= min_evidence), "under_reporting")
    strong = evidence[list(SPECIFIC_KINDS)] >= 0.75 * min_evidence
    # Tickets split into tiny ones lower the average ticket: that is the splitting, not shaving.
    strong["ticket_shaving"] &= ~strong["split_transactions"]
    if strong.to_numpy().any():
        stake = kind_shortfalls(frame)[list(SPECIFIC_KINDS)].where(strong)
        # Money first, evidence to break ties (splitting often has no shortfall of its own).
        tie = evidence[list(SPECIFIC_KINDS)].where(strong).fillna(0) * 1e-6
        best = (stake.fillna(-1.0) + tie).idxmax(axis=1)
        kind = kind.where(~strong.any(axis=1), best)
    device = (evidence["device_off"] >= 0.75 * min_evidence) & ~thin_silence(frame, min_evidence)
    return kind.where(~device, "device_off")


def kind_shortfalls(frame: pd.DataFrame) -> pd.DataFrame:
    """Per row, the whole rupiah each pattern would have cost (>= 0): the generic one is usual x
    peers minus recorded; cash skimming the cash the normal non-cash sales imply minus the cash
    recorded; void abuse the voided and refunded amount above usual; ticket shaving the sales
    at the usual ticket minus recorded."""
    expected = frame["expected_rev"].where(frame["expected_rev"] > 0, frame["usual_rev"])
    generic = (expected - frame["gross_paid"]).clip(lower=0)
    noncash = frame["gross_paid"] - frame["cash_amount"]
    implied = noncash * frame["usual_cash"] / (1 - frame["usual_cash"]).clip(lower=0.05)
    skimmed = (implied - frame["cash_amount"]).clip(lower=0)
    skimmed = skimmed.where((frame["usual_cash"] < 1) & (frame["gross_paid"] > 0), generic)
    voided = (
        frame["void_amount"] + frame["refund_amount"] - frame["usual_void"] * frame["gross_paid"]
    )
    shaved = frame["txn_count"] * frame["usual_ticket"].fillna(0) - frame["gross_paid"]
    shaved = shaved.where(frame["txn_count"] > 0, generic)
    out = pd.DataFrame(
        {
            "device_off": generic,
            "split_transactions": generic,
            "void_abuse": voided.clip(lower=0),
            "cash_skimming": skimmed,
            "ticket_shaving": shaved.clip(lower=0),
            "under_reporting": generic,
        },
        index=frame.index,
    )
    return out.astype(float).fillna(0.0).round()


def _reasons(row, kind: str) -> list[Phrase]:
    """What an auditor reads: each signal that is strong enough, with its numbers, as phrases
    (``core.phrases``: the review app says them in the reader's language)."""
    parts = [
        *_level_reasons(row, kind),
        *_cash_void_reasons(row, kind),
        *_pattern_reasons(row, kind),
    ]
    return [as_phrase(p) for p in parts] or [phrase("unusual combination of signals")]


def _level_reasons(row, kind: str) -> list[Phrase]:
    """Revenue and sales against the usual level and what peers did."""
    parts: list[Phrase] = []
    expected = row.expected_rev
    if row.cold:
        parts.append(
            phrase(
                "new point (%(history_n)s days of history): compared with peers of the same type",
                history_n=int(row.history_days),
            )
        )
    if kind == "device_off":
        parts.append(_silent_reason(row))
    elif row.usual_rev > 0 and row.gross_paid < expected:
        parts.append(
            phrase(
                "revenue %(drop_pct)s below the usual for %(at_slot)s"
                " (%(recorded_rp)s vs %(expected_rp)s)",
                drop_pct=1 - row.gross_paid / max(expected, 1),
                at_slot=row.local_time,
                recorded_rp=round(row.gross_paid),
                expected_rp=round(expected),
            )
        )
    if row.count_drop >= 3 and kind != "device_off":
        parts.append(
            phrase(
                "%(sales_n)s sales vs usual %(usual_n)s",
                sales_n=row.txn_count,
                usual_n=row.expected_cnt,
            )
        )
    if abs(row.peer_rev - 1) >= 0.15:
        parts.append(
            phrase(
                "peers of the same type were at %(peers_pct)s of their usual this hour"
                " (allowed for)",
                peers_pct=row.peer_rev,
            )
        )
    return parts


def _silent_reason(row) -> Phrase:
    """A silent open hour and what it should have brought: the same expected sales and rupiah
    as the shortfall (usual x peers, the usual alone where peers give none). The usual count is
    an average: below one sale an hour it is said with its decimal, not rounded to "0 sales"
    beside a positive usual revenue."""
    if row.expected_rev > 0:
        count, revenue = row.expected_cnt, row.expected_rev
    else:
        count, revenue = row.usual_cnt, row.usual_rev
    if round(count) >= 1:
        return phrase(
            "no transactions while open; %(sales_n)s sales (%(expected_rp)s) expected at %(at_slot)s",
            sales_n=count,
            expected_rp=round(revenue),
            at_slot=row.local_time,
        )
    return phrase(
        "no transactions while open; %(sales_avg)s sales on average (%(expected_rp)s)"
        " expected at %(at_slot)s",
        sales_avg=count,
        expected_rp=round(revenue),
        at_slot=row.local_time,
    )


def _cash_void_reasons(row, kind: str) -> list[Phrase]:
    """Cash shares and voids, the point's and each named operator's."""
    parts: list[Phrase] = []
    if row.cash_drop >= 3 or kind == "cash_skimming" and row.cash_drop >= row.op_cash_drop:
        if not np.isnan(row.cash_share):
            parts.append(
                phrase(
                    "cash share %(share_pct)s vs usual %(usual_pct)s",
                    share_pct=row.cash_share,
                    usual_pct=row.usual_cash,
                )
            )
    if row.op_cash_drop >= 3 and isinstance(row.op_cash_id, str):
        parts.append(
            phrase(
                "operator %(operator)s: cash share %(share_pct)s vs that operator's usual"
                " %(usual_pct)s",
                operator=row.op_cash_id,
                share_pct=row.op_cash_share,
                usual_pct=row.op_cash_usual,
            )
        )
    if row.op_cash_short >= 3 and isinstance(row.op_short_id, str):
        days = int(row.op_short_days) if not np.isnan(row.op_short_days) else 1
        figures = dict(
            operator=row.op_short_id,
            recorded_rp=round(row.op_short_obs),
            usual_rp=round(row.op_short_exp),
        )
        if days == 1:
            parts.append(
                phrase(
                    "operator %(operator)s: cash recorded today %(recorded_rp)s vs usual"
                    " %(usual_rp)s",
                    **figures,
                )
            )
        else:
            parts.append(
                phrase(
                    "operator %(operator)s: cash recorded over the last %(days_n)s working days"
                    " %(recorded_rp)s vs usual %(usual_rp)s",
                    days_n=days,
                    **figures,
                )
            )
    parts.extend(_void_reasons(row))
    return parts


def _void_reasons(row) -> list[Phrase]:
    parts: list[Phrase] = []
    if row.void_excess >= 3 and not np.isnan(row.void_share):
        parts.append(
            phrase(
                "voids/refunds %(share_pct)s of transactions vs usual %(usual_pct)s",
                share_pct=row.void_share,
                usual_pct=row.usual_void,
            )
        )
    if row.op_void_excess >= 3 and isinstance(row.op_void_id, str):
        parts.append(
            phrase(
                "operator %(operator)s: voids/refunds %(share_pct)s vs that operator's usual"
                " %(usual_pct)s",
                operator=row.op_void_id,
                share_pct=row.op_void_share,
                usual_pct=row.op_void_usual,
            )
        )
    if row.void_shift_end >= 3 and isinstance(row.shift_end_id, str):
        parts.append(
            phrase(
                "operator %(operator)s: %(late_n)s of %(voids_n)s voids/refunds in the last"
                " %(minutes_n)s minutes of the shift vs usual %(usual_pct)s"
                " (their share of sales then)",
                operator=row.shift_end_id,
                late_n=row.shift_end_k,
                voids_n=row.shift_end_n,
                minutes_n=SHIFT_END_MINUTES,
                usual_pct=row.shift_end_p,
            )
        )
    if row.cash_refund_noncash >= 3 and isinstance(row.cash_refund_id, str):
        parts.append(
            phrase(
                "operator %(operator)s: %(refunds_n)s cash refunds (%(refunds_rp)s) against"
                " sales paid by QRIS/card/e-wallet that day",
                operator=row.cash_refund_id,
                refunds_n=row.cash_refund_k,
                refunds_rp=round(row.cash_refund_rp),
            )
        )
    return parts


def _pattern_reasons(row, kind: str) -> list[Phrase]:
    """Ticket size, silence, tiny tickets, bursts, repeated payers, the day, the holiday."""
    parts: list[Phrase] = []
    if (row.ticket_drop >= 3 or kind == "ticket_shaving") and not np.isnan(row.ticket):
        figures = dict(
            ticket_rp=round(row.ticket),
            usual_rp=round(row.usual_ticket),
            drop_pct=1 - row.ticket / row.usual_ticket,
        )
        if row.count_drop < 3:
            parts.append(
                phrase(
                    "average ticket %(ticket_rp)s vs usual %(usual_rp)s (%(drop_pct)s lower)"
                    " with %(sales_n)s sales vs usual %(usual_sales_n)s",
                    sales_n=row.txn_count,
                    usual_sales_n=row.expected_cnt,
                    **figures,
                )
            )
        else:
            parts.append(
                phrase(
                    "average ticket %(ticket_rp)s vs usual %(usual_rp)s (%(drop_pct)s lower)",
                    **figures,
                )
            )
    if row.ticket_day_drop >= 3 and not np.isnan(row.day_ticket_ratio):
        parts.append(
            phrase(
                "average ticket of the day %(drop_pct)s below usual",
                drop_pct=1 - row.day_ticket_ratio,
            )
        )
    if row.silence >= 3 and kind == "device_off":
        parts.append(phrase("part of a run of silent open hours"))
    if row.tiny_excess >= 3:
        parts.append(
            phrase(
                "%(tiny_n)s tiny tickets among %(sales_n)s sales",
                tiny_n=row.tiny_n,
                sales_n=row.txn_count,
            )
        )
    if row.burst >= 3:
        parts.append(
            phrase(
                "burst: %(sales_n)s sales vs usual %(usual_n)s at a lower ticket",
                sales_n=row.txn_count,
                usual_n=row.expected_cnt,
            )
        )
    if row.payer_repeat >= 3 and isinstance(row.payer_ref_top, str):
        parts.append(
            phrase(
                "payer %(payer)s paid %(hour_n)s times this hour, %(day_n)s times today",
                payer=row.payer_ref_top,
                hour_n=row.payer_hour_n,
                day_n=row.payer_day_n,
            )
        )
    parts.extend(_day_reasons(row))
    return parts


def _day_reasons(row) -> list[Phrase]:
    """The level of the day and of the last days, and the holiday allowed for."""
    parts: list[Phrase] = []
    if row.level_shift >= 3 and row.shift_exp > 0:
        days = int(row.shift_days)
        figures = dict(
            drop_pct=1 - row.shift_rev / row.shift_exp,
            recorded_rp=round(row.shift_rev),
            expected_rp=round(row.shift_exp),
            short_rp=round(row.shift_exp - row.shift_rev),
        )
        if days <= 1:
            parts.append(
                phrase(
                    "revenue %(drop_pct)s below the usual x peers today"
                    " (%(recorded_rp)s vs %(expected_rp)s, %(short_rp)s short)",
                    **figures,
                )
            )
        else:
            parts.append(
                phrase(
                    "revenue %(drop_pct)s below the usual x peers every day for %(days_n)s days"
                    " (%(recorded_rp)s vs %(expected_rp)s, %(short_rp)s short)",
                    days_n=days,
                    **figures,
                )
            )
    if row.small_shortfall >= 3 and row.small_expected > 0:
        parts.append(
            phrase(
                "a small point: %(sales_n)s sales over the last %(days_n)s days vs usual x peers"
                " %(usual_n)s",
                sales_n=int(row.small_cnt),
                days_n=int(row.small_days),
                usual_n=round(row.small_expected),
            )
        )
    if row.day_drop >= 3 and row.day_usual > 0:
        parts.append(
            phrase(
                "day so far %(drop_pct)s below usual (%(recorded_rp)s vs %(usual_rp)s)",
                drop_pct=1 - row.day_rev / row.day_usual,
                recorded_rp=round(row.day_rev),
                usual_rp=round(row.day_usual),
            )
        )
    if isinstance(row.holiday, str):
        parts.append(phrase("%(holiday)s: peers' movement taken into account", holiday=row.holiday))
    return parts


def _void_operator(row) -> str | None:
    """The operator whose own void evidence is strongest, if any is strong."""
    named = [
        (row.op_void_excess, row.op_void_id),
        (row.void_shift_end, row.shift_end_id),
        (row.cash_refund_noncash, row.cash_refund_id),
    ]
    named = [(z, op) for z, op in named if z >= 3 and isinstance(op, str)]
    return max(named, key=lambda pair: pair[0])[1] if named else None


# What ``explain`` adds to a flagged row besides its score, in order.
FLAG_COLUMNS = (
    "kind",
    "evidence",
    "severity",
    "reasons",
    "reason_parts",
    "shortfall_rp",
    "operators",
)


def explain(
    frame: pd.DataFrame, scores: np.ndarray, flagged: np.ndarray, detector: LeakageDetector
) -> pd.DataFrame:
    """Flag rows with score, severity, kind, evidence (``case_evidence``), reasons (English
    text and its phrases as JSON, ``reason_parts``), shortfall_rp and operators."""
    rows = frame.loc[flagged.astype(bool)].copy()
    rows["score"] = np.asarray(scores)[flagged.astype(bool)]
    if not rows.empty:
        rows["kind"] = suspected_kind(rows, detector.min_evidence)
        quiet = (
            local_dip(rows, detector.min_evidence)
            | hour_not_down(rows, detector.min_evidence)
            | day_view_over(rows, detector.min_evidence)
        )
        rows = rows[~quiet]
    if not rows.empty:
        evidence = rows[list(FEATURES)].max(axis=1)
        rows["evidence"] = case_evidence(rows, detector.min_evidence)
        rows["severity"] = np.select(
            [
                (evidence >= 2.0 * detector.min_evidence) | (rows["score"] >= detector.score_high_),
                evidence >= PATTERN_STRENGTH * detector.min_evidence,
            ],
            ["high", "medium"],
            "low",
        )
        rows = rows[~weak_volume(rows, detector.min_evidence)]
    if rows.empty:
        return rows.assign(**{column: [] for column in FLAG_COLUMNS})
    stakes = kind_shortfalls(rows)
    column = stakes.columns.get_indexer(rows["kind"])
    shortfalls = stakes.to_numpy()[np.arange(len(rows)), column].astype(np.int64)
    reasons, reason_parts, operators = [], [], []
    for row in rows.itertuples(index=False):
        parts = _reasons(row, row.kind)
        reasons.append(english(parts))
        reason_parts.append(dumps(parts))
        if (
            row.kind == "cash_skimming"
            and row.op_cash_drop >= 3
            and isinstance(row.op_cash_id, str)
        ):
            operators.append(row.op_cash_id)
        elif row.kind == "void_abuse" and _void_operator(row):
            operators.append(_void_operator(row))
        else:
            operators.append(
                row.operators_active if isinstance(row.operators_active, str) else None
            )
    rows["reasons"] = reasons
    rows["reason_parts"] = reason_parts
    rows["shortfall_rp"] = shortfalls
    rows["operators"] = operators
    return rows
