"""Reconciliation: sales recorded vs tax declared vs money deposited; every gap becomes a case.

Two matches are made:

* **Taxpayer points** (hotel, restaurant, entertainment, other), per point and return period
  (normally a calendar month): device-recorded sales (paid minus refunded, from ``transactions``)
  vs the self-assessed return's declared sales and tax due vs the tax deposited on the treasury
  bank statement for that period.
* **Levy collectors** (parking attendants, market collectors: the ``operator_id`` on cash
  transactions at parking/market points), per collector and day: cash recorded vs cash handed in.

Gaps are raised as ``cases`` with origin ``reconciliation`` (the review queue): the three numbers
side by side, the difference in rupiah and references to the underlying rows are in ``details``.
Raising is idempotent: a rerun updates the open case it raised before; a case a person has acted
on (decided, assigned or noted: ``casework.case_store.ACTED_ON``) is never changed or erased.
Consecutive gap days of one collector form one case, like consecutive flagged hours do in the
detector.

Nothing here calls ``now()`` to decide what is due: the caller passes ``as_of`` (a DAG's interval
end, the CLI's today), so a rerun of a past window gives the same answer.

This module is the public face; the rules live in the package's modules, one per part of the job:

* ``config``: ``ReconConfig``, the tolerances and rules, and ``RECON_OPTIONS``, their help;
* ``business_days``: due dates, business days, months;
* ``gaps``: ``Gap``, ``ReconResult``, and collector gap days merged into runs;
* ``tax``: taxpayer points; ``collectors``: levy collectors; ``bank``: credits that match nothing;
* ``raise_cases``: gaps -> cases (through ``casework.case_store``);
* ``run``: ``find_gaps``, ``reconcile`` and the scheduled windows.
"""

from __future__ import annotations

from pipeline.reconciliation.bank import unmatched_gaps
from pipeline.reconciliation.business_days import (
    business_days_late,
    calendar_months,
    is_business_day,
    last_allowed_day,
    month_bounds,
    roll_forward,
    tax_due_date,
)
from pipeline.reconciliation.collectors import LEVY_TYPES, collector_gaps
from pipeline.reconciliation.config import RECON_OPTIONS, ReconConfig, parse_iso_day
from pipeline.reconciliation.gaps import KINDS, UNATTRIBUTED, Gap, ReconResult, merge_runs
from pipeline.reconciliation.raise_cases import ORIGIN, raise_cases
from pipeline.reconciliation.run import (
    SCOPES,
    find_gaps,
    gap_summary,
    interval_window,
    reconcile,
    reconcile_interval,
)
from pipeline.reconciliation.tax import TAX_TYPES, deposit_period, tax_gaps

__all__ = [
    "KINDS",
    "LEVY_TYPES",
    "ORIGIN",
    "RECON_OPTIONS",
    "SCOPES",
    "TAX_TYPES",
    "UNATTRIBUTED",
    "Gap",
    "ReconConfig",
    "ReconResult",
    "business_days_late",
    "calendar_months",
    "collector_gaps",
    "deposit_period",
    "find_gaps",
    "gap_summary",
    "interval_window",
    "is_business_day",
    "last_allowed_day",
    "merge_runs",
    "month_bounds",
    "parse_iso_day",
    "raise_cases",
    "reconcile",
    "reconcile_interval",
    "roll_forward",
    "tax_due_date",
    "tax_gaps",
    "unmatched_gaps",
]
