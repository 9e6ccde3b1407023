"""Push ingest: devices and vendors send feed rows over HTTP (``POST /api/v1/transactions``).

keys (the API keys a supervisor issues, scoped to points, revocable) · body (a request's rows
and limits) · inbox (requests committed before they are answered; the idempotency record) ·
group (a group of requests ingested through the files' batch path) · rate (per-key limits) ·
service (one server process's writer and waiting requests). Docs: docs/push.md.
"""

from pipeline.intake.push.body import PushLimits, PushRefused
from pipeline.intake.push.keys import (
    ApiKey,
    IssuedKey,
    KeyRefused,
    authenticate_key,
    get_key,
    issue_key,
    list_keys,
    revoke_key,
)
from pipeline.intake.push.service import PushService, Receipt, answer_of, status_path

__all__ = [
    "ApiKey",
    "IssuedKey",
    "KeyRefused",
    "PushLimits",
    "PushRefused",
    "PushService",
    "Receipt",
    "answer_of",
    "authenticate_key",
    "get_key",
    "issue_key",
    "list_keys",
    "revoke_key",
    "status_path",
]
