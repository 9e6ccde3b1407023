"""The HTTP source against a real HTTP server on 127.0.0.1 (pytest-httpserver)."""

import json

import pytest
from sqlalchemy import select

from pipeline.core.errors import UnusableInputError
from pipeline.intake.sources import HttpSource, SecretRef
from pipeline.intake.sources.errors import SourceUnavailableError
from pipeline.intake.sources.http_api import pull_http
from pipeline.intake.sources.watermarks import get_watermark, set_watermark
from pipeline.store.schema import ingest_batches
from tests.helpers.sources_helpers import (
    feed_rows,
    load_points,
    sqlite_store,
    stored_txn_ids,
)


@pytest.fixture
def sqlite_engine(sqlite_url):
    yield from sqlite_store(sqlite_url)


TOKEN = "s3cret-token"


class VendorApi:
    """A tapping-box vendor: rows in order, `since` = index of the last row sent, pages of `limit`.

    Vendor field names differ from the feed's (`id`, `tapped_at`), as they do in life.
    ``fail_from`` makes every request for a cursor at or past it answer ``fail_status``.
    """

    def __init__(self, rows):
        self.rows = [{**r, "id": r.pop("txn_id"), "tapped_at": r.pop("occurred_at")} for r in rows]
        self.fail_from: int | None = None
        self.fail_status = 503
        self.requests: list[dict] = []

    def __call__(self, request):
        from werkzeug import Response

        self.requests.append(dict(request.args))
        if request.headers.get("Authorization") != f"Bearer {TOKEN}":
            return Response("unauthorised", status=401)
        since = int(request.args.get("since", 0))
        limit = int(request.args["limit"])
        if self.fail_from is not None and since >= self.fail_from:
            return Response("upstream down", status=self.fail_status)
        page = self.rows[since : since + limit]
        body = {"items": page, "next_cursor": str(since + len(page)) if page else str(since)}
        return Response(json.dumps(body), content_type="application/json")


def _config(httpserver, **overrides):
    options = dict(
        name="tapbox",
        url=httpserver.url_for("/v1/transactions"),
        token=SecretRef(env="TAPBOX_TOKEN"),
        page_size=10,
        max_attempts=3,
        backoff_seconds=0.01,
        fields={"txn_id": "id", "occurred_at": "tapped_at"},
    )
    options.update(overrides)
    return HttpSource(**options)


@pytest.fixture
def vendor(httpserver):
    api = VendorApi(feed_rows(27))
    httpserver.expect_request("/v1/transactions").respond_with_handler(api)
    return api


def test_pages_are_pulled_until_caught_up_and_the_cursor_is_kept(
    sqlite_engine, tmp_path, httpserver, vendor
):
    load_points(sqlite_engine, tmp_path)
    results = pull_http(sqlite_engine, _config(httpserver), token=TOKEN)

    assert [r.rows_read for r in results] == [10, 10, 7]
    assert len(stored_txn_ids(sqlite_engine)) == 27
    assert get_watermark(sqlite_engine, "api:tapbox") == "27"
    assert vendor.requests[0] == {"limit": "10"}  # first pull: no cursor yet
    with sqlite_engine.connect() as connection:
        refs = connection.execute(select(ingest_batches.c.source_ref)).scalars().all()
    assert refs[1].endswith("?since=10")

    # Nothing new: one request, nothing stored.
    vendor.requests.clear()
    assert pull_http(sqlite_engine, _config(httpserver), token=TOKEN) == []
    assert vendor.requests == [{"limit": "10", "since": "27"}]

    # New rows arrive at the vendor: only they are fetched.
    vendor.rows.extend(VendorApi(feed_rows(3, start=27)).rows)
    assert [r.rows_read for r in pull_http(sqlite_engine, _config(httpserver), token=TOKEN)] == [3]
    assert len(stored_txn_ids(sqlite_engine)) == 30


def test_server_failing_midway_resumes_from_the_watermark_nothing_lost_nothing_twice(
    engine, tmp_path, httpserver, vendor
):
    load_points(engine, tmp_path)
    vendor.fail_from = 20  # pages 1 and 2 are served, then the vendor goes down
    naps: list[float] = []
    with pytest.raises(SourceUnavailableError, match="failed 3 times; last: HTTP 503"):
        pull_http(engine, _config(httpserver), token=TOKEN, sleep=naps.append)
    assert naps == [0.01, 0.02]  # exponential backoff between the 3 attempts
    assert get_watermark(engine, "api:tapbox") == "20"
    assert len(stored_txn_ids(engine)) == 20

    vendor.fail_from = None
    vendor.requests.clear()
    results = pull_http(engine, _config(httpserver), token=TOKEN)

    assert vendor.requests[0]["since"] == "20"  # resumed, not restarted
    assert sum(r.accepted for r in results) == 7
    assert sum(r.duplicates for r in results) == 0
    assert stored_txn_ids(engine) == sorted(f"T{i:06d}" for i in range(27))


def test_crash_after_storing_a_page_before_the_cursor_moved_stores_nothing_twice(
    sqlite_engine, tmp_path, httpserver, vendor
):
    load_points(sqlite_engine, tmp_path)
    pull_http(sqlite_engine, _config(httpserver), token=TOKEN)
    # As if the process died between storing page 3 and advancing the cursor past it.
    set_watermark(sqlite_engine, "api:tapbox", "20")

    results = pull_http(sqlite_engine, _config(httpserver), token=TOKEN)

    assert sum(r.rows_read for r in results) == 7
    assert sum(r.accepted for r in results) == 0
    assert sum(r.duplicates for r in results) == 7
    assert len(stored_txn_ids(sqlite_engine)) == 27


def test_transient_errors_are_retried(sqlite_engine, tmp_path, httpserver):
    load_points(sqlite_engine, tmp_path)
    api = VendorApi(feed_rows(5))
    # Two failures (a 502 and a 500) then the real answer, on the first page only.
    httpserver.expect_ordered_request("/v1/transactions").respond_with_data(
        "bad gateway", status=502
    )
    httpserver.expect_ordered_request("/v1/transactions").respond_with_data("oops", status=500)
    httpserver.expect_request("/v1/transactions").respond_with_handler(api)

    results = pull_http(sqlite_engine, _config(httpserver), token=TOKEN, sleep=lambda s: None)

    assert sum(r.accepted for r in results) == 5


@pytest.mark.parametrize("status", [401, 403])
def test_refused_token_is_a_clear_failure_without_retries(sqlite_engine, httpserver, status):
    httpserver.expect_request("/v1/transactions").respond_with_data("no", status=status)
    with pytest.raises(
        UnusableInputError,
        match=rf"tapbox: .* answered {status} .*check its token \(\$TAPBOX_TOKEN\)",
    ):
        pull_http(
            sqlite_engine,
            _config(httpserver),
            token="wrong",
            sleep=lambda s: pytest.fail("retried"),
        )
    assert len(httpserver.log) == 1
    assert get_watermark(sqlite_engine, "api:tapbox") is None


def test_timeouts_are_retried_then_reported(sqlite_engine):
    import socket

    # A socket that accepts connections and never answers.
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)
    host, port = silent.getsockname()
    config = HttpSource(
        name="slow",
        url=f"http://{host}:{port}/tx",
        timeout_seconds=0.2,
        max_attempts=2,
        backoff_seconds=0,
    )
    try:
        with pytest.raises(
            SourceUnavailableError, match="slow: .* failed 2 times; last: ReadTimeout"
        ):
            pull_http(sqlite_engine, config)
    finally:
        silent.close()


def test_answer_that_is_not_the_agreed_json_names_what_was_wrong(sqlite_engine, httpserver):
    httpserver.expect_request("/v1/transactions").respond_with_json({"data": []})
    with pytest.raises(UnusableInputError, match="response has no 'items' list \\(keys: data\\)"):
        pull_http(sqlite_engine, _config(httpserver), token=TOKEN)


def test_numeric_ids_and_a_null_stay_text_and_a_resent_page_adds_nothing(engine, httpserver):
    # Was: ids stored as "900000.0", the null as txn_id "nan"; a resent page of 50 sales made
    # 60 rows.
    from tests.helpers.registry import register

    register(engine, "P1")
    items = [
        {
            "id": 900_000 + i,
            "point_id": "P1",
            "tapped_at": "2026-03-01T03:00:00Z",
            "amount": 1000,
            "payment_method": "cash",
            "status": "paid",
            "operator_id": None if i % 2 else 7,
        }
        for i in range(50)
    ] + [{"id": None, "point_id": "P1", "tapped_at": "2026-03-01T03:00:00Z", "amount": 1}]
    pages = iter([items, items])

    def handler(request):
        from werkzeug import Response

        page = next(pages, [])
        return Response(
            json.dumps({"items": page, "next_cursor": ""}), content_type="application/json"
        )

    httpserver.expect_request("/v1/transactions").respond_with_handler(handler)
    config = _config(httpserver, token=None)
    (first,) = pull_http(engine, config)
    (again,) = pull_http(engine, config)
    assert (first.accepted, first.quarantined) == (50, 1)
    assert (again.accepted, again.duplicates, again.quarantined) == (0, 50, 1)
    ids = stored_txn_ids(engine)
    assert len(ids) == 50 and "900000" in ids and "nan" not in ids
    assert not any(i.endswith(".0") for i in ids)
    with engine.connect() as connection:
        from pipeline.store.schema import transactions

        operators = set(connection.execute(select(transactions.c.operator_id)).scalars())
    assert operators == {"7", None}


def test_a_cursor_that_goes_backwards_stops_with_a_clear_error(sqlite_engine, tmp_path, httpserver):
    # Was: the pull looped to max_pages without a word.
    load_points(sqlite_engine, tmp_path)
    rows = feed_rows(3)

    def handler(request):
        from werkzeug import Response

        body = {
            "items": [{**rows[0], "id": rows[0]["txn_id"], "tapped_at": rows[0]["occurred_at"]}],
            "next_cursor": "5" if request.args.get("since") != "5" else "2",
        }
        return Response(json.dumps(body), content_type="application/json")

    httpserver.expect_request("/v1/transactions").respond_with_handler(handler)
    with pytest.raises(UnusableInputError, match="goes backwards"):
        pull_http(sqlite_engine, _config(httpserver), token=TOKEN)
    assert get_watermark(sqlite_engine, "api:tapbox") == "5"
    assert len(httpserver.log) == 2
