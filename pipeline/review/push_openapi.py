"""The push API's OpenAPI description, served at /api/v1/openapi.json and committed as
docs/push-openapi.json (a test keeps the two equal), so a vendor can code against a file.

Written by hand rather than generated from the routes: the routes read raw bodies (JSON array or
JSON Lines, under a size cap), which FastAPI's generator cannot describe.
"""

from __future__ import annotations

from pipeline.intake.feeds import FEED_COLUMNS

_ROW = {
    "type": "object",
    "description": "One sale, in the feed contract of files (README 'Feed format'). Values are "
    "judged by the same expectation suite as files; a bad row is quarantined with its reason, "
    "never the whole request.",
    "required": ["txn_id", "point_id", "occurred_at", "amount", "payment_method", "status"],
    "properties": {
        "txn_id": {
            "type": "string",
            "maxLength": 128,
            "description": "receipt number, unique per point",
        },
        "point_id": {"type": "string", "maxLength": 64, "description": "a point the key covers"},
        "occurred_at": {
            "type": "string",
            "format": "date-time",
            "description": "ISO-8601 with an offset, e.g. 2026-03-01T10:15:00+07:00",
        },
        "amount": {"type": ["integer", "string"], "minimum": 0, "description": "whole rupiah"},
        "payment_method": {"enum": ["cash", "qris", "card", "transfer", "ewallet"]},
        "status": {"enum": ["paid", "void", "refund"]},
        "operator_id": {"type": ["string", "null"], "maxLength": 64},
        "payer_ref": {"type": ["string", "null"], "maxLength": 128},
    },
}

_COUNTS = {
    "type": "object",
    "description": "The same counts as `eincome ingest --json` gives a file: rows_read = "
    "accepted + quarantined + duplicates.",
    "required": ["request_id", "status", "rows_read", "accepted", "quarantined", "duplicates"],
    "properties": {
        "request_id": {"type": "string"},
        "status": {"const": "done"},
        "batch_id": {
            "type": "integer",
            "description": "the ingest batch (lineage) holding the rows",
        },
        "rows_read": {"type": "integer"},
        "accepted": {"type": "integer", "description": "stored now"},
        "quarantined": {"type": "integer", "description": "refused rows, listed in rejected"},
        "duplicates": {"type": "integer", "description": "already stored, identical: ignored"},
        "replayed": {"type": "boolean", "description": "true: the answer of an earlier send"},
        "rejected": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "row": {"type": "integer", "description": "1-based position in the body"},
                    "point_id": {"type": ["string", "null"]},
                    "txn_id": {"type": ["string", "null"]},
                    "kind": {"enum": ["invalid", "conflict"]},
                    "reason": {"type": "string", "description": "what to fix, in plain words"},
                },
            },
        },
    },
}

_PENDING = {
    "type": "object",
    "description": "Stored in the inbox and certain to be ingested; the counts are not ready yet.",
    "properties": {
        "request_id": {"type": "string"},
        "status": {"const": "pending"},
        "rows_read": {"type": "integer"},
        "status_url": {"type": "string"},
    },
}

_ERROR = {
    "type": "object",
    "required": ["error", "status"],
    "properties": {"error": {"type": "string"}, "status": {"type": "integer"}},
}


def _error(description: str) -> dict:
    return {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
    }


_ANSWERS = {
    "200": {
        "description": "Ingested (or, for a resend, the earlier answer, replayed: true).",
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Counts"}}},
    },
    "202": {
        "description": "Stored, counts pending (Prefer: respond-async, or a busy server). GET "
        "status_url, or send the same request again, for the counts.",
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Pending"}}},
    },
    "400": _error("The body is not JSON / JSON Lines of objects, or has no rows."),
    "401": _error("No API key, an unknown one, or a revoked one."),
    "403": _error("A row names a point the key does not cover; nothing is stored."),
    "413": _error("The body is over the size limit, or holds too many rows."),
    "415": _error("Content-Type is not application/json or application/x-ndjson."),
    "422": _error("The Idempotency-Key was used before with a different body."),
    "429": _error("The key sends too often; wait Retry-After seconds."),
}


# long: one literal document, read top to bottom like the file it is committed as
def push_openapi() -> dict:
    """The OpenAPI 3.1 description of the push API."""
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "eincome push API",
            "version": "1",
            "description": (
                "Tapping boxes, QRIS gateways and POS vendors push each sale (or a small batch) "
                "as it happens. Send rows as a JSON array or JSON Lines with an API key a "
                "supervisor issued (scoped to points). Idempotent: send an Idempotency-Key "
                "(a UUID per batch of rows) and retry with the same key and body on any network "
                "error or 5xx until you get a 2xx; the same rows resent are counted duplicates, "
                "never stored twice. Columns: " + ", ".join(FEED_COLUMNS) + "."
            ),
        },
        "servers": [{"url": "/"}],
        "security": [{"bearer": []}],
        "paths": {
            "/api/v1/transactions": {
                "post": {
                    "summary": "Push sales",
                    "operationId": "pushTransactions",
                    "parameters": [
                        {
                            "name": "Idempotency-Key",
                            "in": "header",
                            "schema": {"type": "string", "maxLength": 128},
                            "description": "Names this request; a resend with the same key and "
                            "body is answered from the first. Default: the body's SHA-256.",
                        },
                        {
                            "name": "Prefer",
                            "in": "header",
                            "schema": {"const": "respond-async"},
                            "description": "Answer 202 as soon as the rows are stored safely.",
                        },
                    ],
                    "requestBody": {
                        "required": True,
                        "content": {
                            "application/json": {
                                "schema": {
                                    "type": "array",
                                    "items": {"$ref": "#/components/schemas/Row"},
                                }
                            },
                            "application/x-ndjson": {
                                "schema": {
                                    "type": "string",
                                    "description": "one Row object per line",
                                }
                            },
                        },
                    },
                    "responses": _ANSWERS,
                }
            },
            "/api/v1/transactions/requests/{request_id}": {
                "get": {
                    "summary": "The answer to an earlier push request of this key",
                    "operationId": "pushRequestStatus",
                    "parameters": [
                        {
                            "name": "request_id",
                            "in": "path",
                            "required": True,
                            "schema": {"type": "string"},
                        }
                    ],
                    "responses": {
                        "200": _ANSWERS["200"],
                        "202": _ANSWERS["202"],
                        "401": _ANSWERS["401"],
                        "404": _error("This key sent no such request."),
                    },
                }
            },
        },
        "components": {
            "securitySchemes": {
                "bearer": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "Authorization: Bearer eik_<prefix>_<secret> (or X-API-Key).",
                }
            },
            "schemas": {"Row": _ROW, "Counts": _COUNTS, "Pending": _PENDING, "Error": _ERROR},
        },
    }


if __name__ == "__main__":  # writes docs/push-openapi.json: python -m pipeline.review.push_openapi
    import json

    print(json.dumps(push_openapi(), indent=2, ensure_ascii=False))
