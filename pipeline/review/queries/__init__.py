"""What the review pages show, as queries: the case queue, one case, the dashboard, the leaders'
pages (realisation against target, cashless progress, weekly trends), pipeline health.

Routes call these and render the result; nothing here knows about HTTP. Times come back
timezone-aware (UTC); pages show them in the point's local time. One private module per page
area; this package is their public face.
"""

from pipeline.review.queries._alerts import RuleView, alerts_view
from pipeline.review.queries._case import (
    BAND_WEEKS,
    NO_OPERATOR,
    PAYMENT_METHODS,
    TXN_STATUSES,
    Breakdown,
    TransactionFilter,
    TransactionPage,
    case_breakdown,
    case_chart,
    case_hours,
    case_transactions,
    case_transactions_for_export,
    case_workers,
    get_case,
    reconciliation_view,
)
from pipeline.review.queries._cashless import cashless, flagged_by_point, leaders_weeks
from pipeline.review.queries._dashboard import dashboard
from pipeline.review.queries._freshness import (
    FreshnessView,
    freshness_json,
    freshness_view,
    min_open_hours_param,
)
from pipeline.review.queries._health import batch_quarantine, pipeline_health
from pipeline.review.queries._history import CaseHistory, case_history
from pipeline.review.queries._leaders import as_of_moment, realisation
from pipeline.review.queries._live import cases_after, latest_case_id, live_token
from pipeline.review.queries._quarantine import QuarantineParams, release_ids
from pipeline.review.queries._queue import (
    SEVERITIES,
    SORTS,
    QueueFilter,
    QueuePage,
    case_queue,
    filter_choices,
    latest_decisions,
    local_today,
    next_case_id,
    point_suggestions,
    queue_rows_for_export,
)
from pipeline.review.queries._region import (
    MAX_PAGE,
    PAGE_SIZE,
    local_midnight,
    page_number,
    parse_day_param,
    region_tz,
)
from pipeline.review.queries._report import ReportChart, report_chart
from pipeline.review.queries._revenue import data_span, paid_revenue
from pipeline.review.queries._trends import trends

__all__ = [
    "trends",
    "cashless",
    "flagged_by_point",
    "leaders_weeks",
    "RuleView",
    "alerts_view",
    "QuarantineParams",
    "release_ids",
    "FreshnessView",
    "freshness_json",
    "freshness_view",
    "min_open_hours_param",
    "data_span",
    "paid_revenue",
    "as_of_moment",
    "realisation",
    "cases_after",
    "latest_case_id",
    "live_token",
    "BAND_WEEKS",
    "NO_OPERATOR",
    "PAYMENT_METHODS",
    "TXN_STATUSES",
    "CaseHistory",
    "ReportChart",
    "report_chart",
    "TransactionFilter",
    "case_history",
    "local_today",
    "next_case_id",
    "point_suggestions",
    "MAX_PAGE",
    "PAGE_SIZE",
    "SEVERITIES",
    "SORTS",
    "QueueFilter",
    "QueuePage",
    "Breakdown",
    "TransactionPage",
    "batch_quarantine",
    "case_chart",
    "case_breakdown",
    "case_hours",
    "case_queue",
    "case_transactions",
    "case_transactions_for_export",
    "case_workers",
    "dashboard",
    "filter_choices",
    "get_case",
    "latest_decisions",
    "local_midnight",
    "page_number",
    "parse_day_param",
    "pipeline_health",
    "queue_rows_for_export",
    "reconciliation_view",
    "region_tz",
]
