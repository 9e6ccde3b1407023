"""Reconciliation's tolerances and rules: every option has a default and one line of help."""

from __future__ import annotations

import json
from dataclasses import dataclass, field, fields
from datetime import date
from pathlib import Path

from pipeline.core.errors import UnusableInputError


@dataclass(frozen=True)
class ReconConfig:
    """Tolerances and rules; every field has a default and a line of help in ``RECON_OPTIONS``."""

    tax_rates: dict = field(
        default_factory=lambda: {
            "hotel_tax": 0.10,
            "restaurant_tax": 0.10,
            "entertainment_tax": 0.10,
            "other": 0.10,
        }
    )
    point_tax_rates: dict = field(default_factory=dict)
    rounding_rp: int = 1_000
    relative_tolerance: float = 0.005
    bank_fee_rp: int = 7_500
    tax_due_day: int = 10
    collector_due_days: int = 1
    allowed_days_late: int = 1
    public_holidays: bool = True
    closed_days: tuple = ()  # "YYYY-MM-DD" strings
    flat_window_days: int = 14
    flat_min_days: int = 7
    flat_max_spread: float = 0.02
    flat_min_recorded_cv: float = 0.10
    match_window_days: int = 3

    def rate_for(self, point_id: str, revenue_type: str) -> float:
        if point_id in self.point_tax_rates:
            return float(self.point_tax_rates[point_id])
        return float(self.tax_rates.get(revenue_type, self.tax_rates.get("other", 0.10)))

    def tolerance(self, base: int) -> int:
        """How far two amounts may differ and still agree: rounding, or a share of the base."""
        return max(self.rounding_rp, int(self.relative_tolerance * abs(base)))

    @classmethod
    def from_file(cls, path: Path | str | None) -> ReconConfig:
        """Defaults, overridden by a JSON or YAML file of ``name: value`` (empty path: defaults)."""
        if not path:
            return cls()
        path = Path(path)
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise UnusableInputError(
                f"reconciliation config {path}: cannot open ({exc.strerror})"
            ) from None
        import yaml

        try:
            values = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text) or {}
        except (ValueError, yaml.YAMLError) as exc:
            raise UnusableInputError(f"reconciliation config {path}: not valid ({exc})") from None
        if not isinstance(values, dict):
            raise UnusableInputError(
                f"reconciliation config {path}: expected name: value pairs, got {type(values).__name__}"
            )
        return cls.from_mapping(values, where=str(path))

    @classmethod
    def from_mapping(cls, values: dict, *, where: str = "reconciliation config") -> ReconConfig:
        known = {f.name: f for f in fields(cls)}
        unknown = sorted(set(values) - set(known))
        if unknown:
            raise UnusableInputError(
                f"{where}: unknown option(s) {', '.join(unknown)}; known: {', '.join(known)}"
            )
        checked = {}
        for name, value in values.items():
            default = getattr(cls(), name)
            try:
                if isinstance(default, tuple):
                    checked[name] = tuple(
                        parse_iso_day(str(v), f"{where}: {name}").isoformat() for v in value
                    )
                elif isinstance(default, dict):
                    # A file naming one revenue type's rate keeps the defaults for the others.
                    checked[name] = {
                        **default,
                        **{str(k): float(v) for k, v in dict(value).items()},
                    }
                elif isinstance(default, bool):
                    checked[name] = (
                        value
                        if isinstance(value, bool)
                        else str(value).lower() in ("1", "true", "yes")
                    )
                else:
                    checked[name] = type(default)(value)
            except (TypeError, ValueError):
                raise UnusableInputError(
                    f"{where}: {name}={value!r} is not a {type(default).__name__}"
                ) from None
        return cls(**checked)


def parse_iso_day(text: str, where: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise UnusableInputError(f"{where}: {text!r} is not a date written YYYY-MM-DD") from None


RECON_OPTIONS: tuple[tuple[str, str], ...] = (
    (
        "tax_rates",
        "Tax rate per revenue type (10% restaurant/hotel; entertainment 10-35% by perda).",
    ),
    ("point_tax_rates", "Per-point rate overrides, e.g. a discotheque at 0.35."),
    ("rounding_rp", "Amounts this close (rupiah) agree: rounding to the nearest thousand."),
    ("relative_tolerance", "...or this share of the larger figure (POS timing, cancelled orders)."),
    ("bank_fee_rp", "Transfer fee a bank may take off each deposit without it counting as short."),
    ("tax_due_day", "Tax for a period is due by this day of the following month."),
    ("collector_due_days", "Collector cash is due this many days after the collection day."),
    (
        "allowed_days_late",
        "Business days a deposit may land after its due date (weekends roll over).",
    ),
    ("public_holidays", "Treat Indonesian public holidays as non-business days (banks closed)."),
    (
        "closed_days",
        "More days banks are closed, e.g. cuti bersama around Lebaran (YYYY-MM-DD list).",
    ),
    ("flat_window_days", "Trailing days examined for flat (fixed 'setoran') deposits."),
    ("flat_min_days", "Deposit days needed in the window before calling deposits flat."),
    ("flat_max_spread", "Deposits within this share of their median count as one fixed amount."),
    (
        "flat_min_recorded_cv",
        "...while recorded cash varies at least this much (coefficient of variation).",
    ),
    (
        "match_window_days",
        "Days a collector's bank credit may lag their cash hand-in and still match.",
    ),
)
