"""What the review pages show, as queries: the case queue, one case, the dashboard, pipeline health.

Routes call these and render the result; nothing here knows about HTTP. Times come back
timezone-aware (UTC); pages show them in the point's local time. One private module per page
area; this package is their public face.
"""

from pipeline.review.queries._case import (
    BAND_WEEKS,
    TransactionPage,
    case_chart,
    case_days,
    case_hours,
    case_transactions,
    case_transactions_for_export,
    case_workers,
    get_case,
)
from pipeline.review.queries._dashboard import dashboard
from pipeline.review.queries._health import batch_quarantine, pipeline_health
from pipeline.review.queries._queue import (
    SEVERITIES,
    SORTS,
    QueueFilter,
    QueuePage,
    case_queue,
    filter_choices,
    queue_rows_for_export,
)
from pipeline.review.queries._region import (
    MAX_PAGE,
    PAGE_SIZE,
    local_midnight,
    page_number,
    region_tz,
)

__all__ = [
    "BAND_WEEKS",
    "MAX_PAGE",
    "PAGE_SIZE",
    "SEVERITIES",
    "SORTS",
    "QueueFilter",
    "QueuePage",
    "TransactionPage",
    "batch_quarantine",
    "case_chart",
    "case_days",
    "case_hours",
    "case_queue",
    "case_transactions",
    "case_transactions_for_export",
    "case_workers",
    "dashboard",
    "filter_choices",
    "get_case",
    "local_midnight",
    "page_number",
    "pipeline_health",
    "queue_rows_for_export",
    "region_tz",
]
