"""The review app's routers, one per area. Each route parses its input, calls one function in
``pipeline`` (queries, audit, users, exports) and renders or redirects; shared dependencies come
from ``pipeline.review.deps``. ``ROUTERS`` is the order ``app.py`` includes them in."""

from pipeline.review.routes import (
    alerts,
    auth,
    cases,
    dashboard,
    evidence,
    follow_up,
    keys,
    leaders,
    live,
    ops,
    push_api,
    quarantine,
    users,
)

# The push API first: devices send a thousand requests a second, and a request is matched
# against the routes in this order.
ROUTERS = (
    push_api.router,
    auth.router,
    cases.router,
    follow_up.router,
    evidence.router,
    dashboard.router,
    leaders.router,
    live.router,
    keys.router,
    alerts.router,
    ops.router,
    quarantine.router,
    users.router,
)

__all__ = ["ROUTERS"]
