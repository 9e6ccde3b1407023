"""Point-hour features for leakage detection, relative to each point's own seasonality and peers.

For every point and every hour it should be trading (its registry open hours, in its own timezone)
or did trade, the features say how far the hour sits from the point's *usual* for that hour of the
week (robust medians over a baseline window that leaves out holidays, closures and confirmed
leakage), after taking out what the point's peers (same revenue type, same district when there are
enough of them) did in the same hour: a holiday or a regency-wide rain dip moves every peer
together and so cancels out. Every feature is one-sided ("how much worse than usual", in
noise-scaled units) because only losses matter: a busy day is not leakage.

The modules, in the order a run uses them: ``config`` (the features and knobs), ``loading``
(reads from the store), ``grid`` (every point x hour), ``baseline`` and ``baseline_cache`` (the
usual levels), ``peers``, ``noise_units`` (the one-sided z yardsticks), ``hour_signals``,
``day_signals``, ``transaction_signals`` and ``operator_signals`` (with ``shift_cache``: the
operators' complete days kept between the hourly runs of a day), and ``assemble``
(``compute_features``, which runs them).
"""

from pipeline.detection.features.assemble import compute_features
from pipeline.detection.features.baseline import baseline_window, slot_usuals, usual_window
from pipeline.detection.features.config import (
    CAP,
    FEATURES,
    HORIZONS,
    SCALE_DEFAULTS,
    SHRINK_SALES,
    SLOT_COLUMNS,
    WEEKDAYS,
    FeatureConfig,
)
from pipeline.detection.features.grid import HOUR_OF_WEEK_LABELS, build_grid
from pipeline.detection.features.hour_signals import damp_of
from pipeline.detection.features.loading import (
    OP_USUAL_VALUES,
    StoredWeeks,
    confirmed_windows,
    data_span,
    load_hour_aggregates,
    load_points,
    load_transactions,
    operator_usuals,
    unusual_case_windows,
)
from pipeline.detection.features.noise_units import (
    binomial_excess,
    binomial_shortfall,
    poisson_shortfall,
    poisson_surplus,
)
from pipeline.detection.features.operator_signals import (
    CASH_REFUND_COLUMNS,
    SHIFT_END_COLUMNS,
    SHIFT_END_MINUTES,
)

__all__ = [
    "CAP",
    "CASH_REFUND_COLUMNS",
    "FEATURES",
    "HORIZONS",
    "HOUR_OF_WEEK_LABELS",
    "OP_USUAL_VALUES",
    "SCALE_DEFAULTS",
    "SHIFT_END_COLUMNS",
    "SHIFT_END_MINUTES",
    "SHRINK_SALES",
    "SLOT_COLUMNS",
    "WEEKDAYS",
    "FeatureConfig",
    "StoredWeeks",
    "baseline_window",
    "binomial_excess",
    "binomial_shortfall",
    "build_grid",
    "compute_features",
    "confirmed_windows",
    "damp_of",
    "data_span",
    "load_hour_aggregates",
    "load_points",
    "load_transactions",
    "operator_usuals",
    "poisson_shortfall",
    "poisson_surplus",
    "slot_usuals",
    "unusual_case_windows",
    "usual_window",
]
