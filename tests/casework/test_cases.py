"""Flags -> cases on SQLite and PostgreSQL: decided cases survive rescoring, closures stay
silent, reruns replace rather than accumulate."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import insert, select, update

from pipeline.casework.cases import list_anomalies, list_cases, rebuild_cases, record_flags
from pipeline.detection.backfill import backfill, score_range
from pipeline.detection.backtest import backtest
from pipeline.reference.suppressions import (
    add_suppression,
    load_closures,
    suppressed_mask,
    suppression_windows,
)
from pipeline.store.schema import case_events, cases
from tests.helpers.detect_fixtures import (
    START,
    in_window,
    load_world,
    local_window,
    make_points,
    make_transactions,
)

DAYS = 21  # three weeks: enough for a usual level per hour of the week
END = START + pd.Timedelta(days=DAYS)
DEVICE_OFF = ("P02", *local_window(15, 10, 14))
CLOSURE = ("P03", *local_window(17, 0, 24))


def _already_aggregated(engine, start, end) -> None:
    """load_world wrote the hour aggregates."""


@pytest.fixture(
    scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def scored(request, tmp_path_factory):
    """A small world with a silent device and an announced closure, backfilled once per backend
    (module scope: the tests below read it in order, the decision test last but one)."""
    tmp_path = tmp_path_factory.mktemp(request.param)
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'cases.db'}"
        yield from _scored_world(url, tmp_path)
    else:
        yield from _postgres_world(tmp_path)


def _postgres_world(tmp_path):
    import uuid

    from sqlalchemy import text

    # tests.conftest by its package path: a bare ``conftest`` is whichever conftest.py pytest
    # imported last (tests/alerts has one), so this failed when collected with the alert tests.
    from tests.conftest import _postgres_admin_engine

    admin = _postgres_admin_engine()
    name = f"eincome_test_{uuid.uuid4().hex[:12]}"
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield from _scored_world(
            admin.url.set(database=name).render_as_string(hide_password=False), tmp_path
        )
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def _scored_world(url, tmp_path):
    from pipeline.store import connect

    engine = connect(url)
    pts = make_points(6)
    txns = make_transactions(pts, days=DAYS, seed=5, scale=0.9)
    for point, start, end in (DEVICE_OFF, CLOSURE):
        txns = txns[~in_window(txns, point, start, end)]
    load_world(engine, pts, txns)
    closures = tmp_path / "closures.csv"
    point, start, end = CLOSURE
    closures.write_text(
        f"point_id,starts_at,ends_at,reason\n{point},{start.isoformat()},{end.isoformat()},renovation\n"
    )
    assert load_closures(engine, closures) == 1
    assert load_closures(engine, closures) == 0  # loading the file again adds nothing
    models = tmp_path / "models"
    backfill(engine, models, START, END, aggregate=_already_aggregated, hindsight=True)
    try:
        yield engine, models
    finally:
        engine.dispose()


def _case_of(frame: pd.DataFrame, point: str, start, end) -> pd.DataFrame:
    return frame[
        (frame["point_id"] == point) & (frame["start_at"] < end) & (frame["end_at"] > start)
    ]


def test_closure_is_silent_and_device_off_is_one_case(scored):
    engine, _ = scored
    anomalies, found = list_anomalies(engine), list_cases(engine)
    point, start, end = CLOSURE
    assert anomalies[
        (anomalies["point_id"] == point)
        & (anomalies["hour_start"] >= start)
        & (anomalies["hour_start"] < end)
    ].empty
    assert _case_of(found, point, start, end).empty
    point, start, end = DEVICE_OFF
    case = _case_of(found, point, start, end)
    assert len(case) == 1 and case["kind"].iloc[0] == "device_off"
    assert case["status"].iloc[0] == "open" and case["shortfall_rp"].iloc[0] > 0


def test_decided_case_survives_rescoring(scored):
    engine, models = scored
    point, start, end = DEVICE_OFF
    before_cases = list_cases(engine)
    case_id = int(_case_of(before_cases, point, start, end)["case_id"].iloc[0])
    hours_before = list_anomalies(engine).query("case_id == @case_id")["hour_start"].tolist()
    now = datetime.now(UTC)
    with engine.begin() as connection:
        connection.execute(
            update(cases)
            .where(cases.c.case_id == case_id)
            .values(status="confirmed", updated_at=now)
        )
        connection.execute(
            insert(case_events).values(
                case_id=case_id,
                at=now,
                actor="auditor1",
                action="decide",
                before=json.dumps({"status": "open"}),
                after=json.dumps({"status": "confirmed"}),
                note="field visit: box unplugged",
            )
        )
    # Rescore everything: the decision stays attached and nothing is duplicated. (The confirmed
    # hours now stay out of the usual level, so other open cases may shift a little.)
    score_range(engine, models, START, END, hindsight=True)
    after = list_cases(engine)
    decided = after[after["case_id"] == case_id]
    assert decided["status"].tolist() == ["confirmed"]
    assert len(_case_of(after, point, start, end)) == 1
    assert (
        list_anomalies(engine).query("case_id == @case_id")["hour_start"].tolist() == hours_before
    )
    for _, rows in after.sort_values("start_at").groupby("point_id"):
        assert (rows["start_at"].iloc[1:].to_numpy() >= rows["end_at"].iloc[:-1].to_numpy()).all()
    # A second rescore of the same range changes nothing: open cases are replaced in place.
    score_range(engine, models, START, END, hindsight=True)
    again = list_cases(engine)
    columns = ["case_id", "point_id", "start_at", "end_at", "kind", "status", "shortfall_rp"]
    pd.testing.assert_frame_equal(
        after[columns].sort_values("case_id").reset_index(drop=True),
        again[columns].sort_values("case_id").reset_index(drop=True),
    )
    with engine.connect() as connection:
        events = connection.execute(
            select(case_events.c.action).where(case_events.c.case_id == case_id)
        ).all()
    assert [e.action for e in events] == ["decide"]


def test_backtest_touches_no_live_case(scored):
    engine, models = scored
    version = list_anomalies(engine)["model_version"].iloc[0]
    before = (list_anomalies(engine), list_cases(engine))
    flags, found = backtest(engine, models, version, START, END)
    assert not flags.empty and not found.empty
    point, start, end = DEVICE_OFF
    assert (found["point_id"] == point).any()
    pd.testing.assert_frame_equal(before[0], list_anomalies(engine))
    pd.testing.assert_frame_equal(before[1], list_cases(engine))


def test_false_alarm_suppression_silences_only_its_kind(sqlite_url):
    """An auditor's false alarm suppresses that pattern at that point for the period, not others."""
    from pipeline.store import connect

    engine = connect(sqlite_url)
    load_world(engine, make_points(2), make_transactions(make_points(2), days=1))
    s, e = local_window(0, 8, 12)
    add_suppression(
        engine, point_id="P00", starts_at=s, ends_at=e, reason="false alarm", kind="device_off"
    )
    add_suppression(engine, point_id="P01", starts_at=s, ends_at=e, reason="maintenance")
    flags = pd.DataFrame(
        {
            "point_id": ["P00", "P00", "P00", "P01"],
            "hour_start": [s, s, e, s],
            "kind": ["device_off", "cash_skimming", "device_off", "void_abuse"],
        }
    )
    windows = suppression_windows(engine, s, e + pd.Timedelta(hours=2))
    assert suppressed_mask(flags, windows, kind_column="kind").tolist() == [
        True,
        False,
        False,
        True,
    ]
    engine.dispose()


def test_rescoring_an_unflagged_world_removes_stale_open_flags(sqlite_url, tmp_path):
    """A rerun over a range replaces its open flags: after the data is fixed they are gone.
    (Replacement logic only, so SQLite; the module world above covers PostgreSQL.)"""
    from pipeline.store import connect

    engine = connect(sqlite_url)
    pts = make_points(6)
    txns = make_transactions(pts, days=DAYS, seed=6, scale=0.9)
    point, start, end = DEVICE_OFF
    hidden = in_window(txns, point, start, end)
    load_world(engine, pts, txns[~hidden])
    models = tmp_path / "models"
    backfill(engine, models, START, END, aggregate=_already_aggregated, hindsight=True)
    assert not _case_of(list_cases(engine), point, start, end).empty
    # The late rows arrive (re-aggregated the way ingest would), and the range is rescored.
    from pipeline.store.schema import hour_aggregates
    from pipeline.store.upsert import upsert
    from tests.helpers.detect_fixtures import aggregate_hours

    late = aggregate_hours(txns[in_window(txns, point, start, end)])
    rows = late.assign(hour_start=[t.to_pydatetime() for t in late["hour_start"]]).to_dict(
        "records"
    )
    rows = [{k: (int(v) if isinstance(v, np.integer) else v) for k, v in r.items()} for r in rows]
    with engine.begin() as connection:
        upsert(connection, hour_aggregates, rows)
    score_range(engine, models, START, END, hindsight=True)
    assert _case_of(list_cases(engine), point, start, end).empty
    hits = list_anomalies(engine)
    assert hits[
        (hits["point_id"] == point) & (hits["hour_start"] >= start) & (hits["hour_start"] < end)
    ].empty


def _low_flag(point_id: str, hour: pd.Timestamp) -> dict:
    return {
        "point_id": point_id,
        "hour_start": hour,
        "score": 0.7,
        "severity": "low",
        "kind": "under_reporting",
        "reasons": "revenue below the usual",
        "reason_parts": None,
        "shortfall_rp": 40_000,
        "operators": None,
    }


def test_a_week_rebuilt_from_what_was_known_ignores_the_next_weeks_stale_flags(engine):
    """The rerun defect of a walk-forward backfill: a lone low flag of week 1 opens no case, but
    a previous pass's flag of week 2 left in the table (four days later, inside the incident
    gap) joined it into one when week 1 was rescored, and that case kept week 1's hours out of
    week 2's usual levels. Rebuilt from the flags known at the week's end, week 1 has no case;
    the last week's rebuild, with every flag, joins the two."""
    load_world(engine, make_points(1), make_transactions(make_points(1), days=1))
    week_1, week_2 = pd.Timestamp(START), pd.Timestamp(START) + pd.Timedelta(days=7)
    early = week_1 + pd.Timedelta(days=5, hours=5)  # a Saturday noon in Jakarta
    stale = early + pd.Timedelta(days=4)  # the previous pass's week-2 flag
    week_1_flags = pd.DataFrame([_low_flag("P00", early)])
    next_week = (week_2, week_2 + pd.Timedelta(days=7))
    # The previous pass: both weeks scored, the two flags one case.
    record_flags(engine, week_1_flags, week_1, week_2, model_version="m0")
    record_flags(engine, pd.DataFrame([_low_flag("P00", stale)]), *next_week, model_version="m0")
    assert len(list_cases(engine)) == 1
    # The rerun's first week, while the previous pass's week 2 is still in the table.
    record_flags(engine, week_1_flags, week_1, week_2, model_version="m1", known_until=week_2)
    assert list_cases(engine).empty
    assert list_anomalies(engine)["case_id"].isna().all()

    rebuild_cases(engine, *next_week)  # the last week: every flag
    (case,) = list_cases(engine).itertuples()
    assert (pd.Timestamp(case.start_at), pd.Timestamp(case.end_at)) == (
        early,
        stale + pd.Timedelta(hours=1),
    )


def _flag(point_id: str, hour: pd.Timestamp, evidence: str, severity: str = "low") -> dict:
    kind = "device_off" if evidence == "device" else "under_reporting"
    return {**_low_flag(point_id, hour), "kind": kind, "severity": severity, "evidence": evidence}


def _case_tables(engine) -> dict[str, pd.DataFrame]:
    """The anomalies and cases tables but their wall-clock columns, in key order."""
    wall = {"scored_at", "created_at", "updated_at"}
    tables = {}
    with engine.connect() as connection:
        for table, keys in (("anomalies", ["point_id", "hour_start"]), ("cases", ["case_id"])):
            frame = pd.read_sql(f"SELECT * FROM {table}", connection)
            frame = frame[[c for c in frame.columns if c not in wall]]
            tables[table] = frame.sort_values(keys).reset_index(drop=True)
    return tables


def test_a_weeks_rebuild_leaves_other_points_far_cases_alone_and_forms_the_global_cases(engine):
    """The quadratic walk: a week's rebuild widened its span by any point's case or flag near
    its edge, so one point's chain of flags reaching back to the walk's first week made every
    week regroup and rewrite every case of every point since. Each point is regrouped within
    its own span: P00's device-off case of week 1, inside the span of P01's month-long incident,
    is not rewritten by week 5's rebuild (its updated_at stays), and the tables are what a rebuild
    of the whole range (every point regrouped within the span of all) gives. P02's week-5 case
    needs its own flag from before week 4, within INCIDENT_GAP of its span's edge: a closure
    that did not widen by a point's flags would leave it two days short of a case."""
    load_world(engine, make_points(4), make_transactions(make_points(4), days=1))
    week = pd.Timedelta(days=7)
    weeks = [pd.Timestamp(START) + i * week for i in range(6)]
    noon = pd.Timedelta(hours=5)  # noon in Jakarta
    chain = [weeks[0] + pd.Timedelta(days=d) + noon for d in (1, 6, 11, 16, 21, 26, 29)]
    flags = [_flag("P00", weeks[0] + pd.Timedelta(days=3) + noon, "device", "high")]
    # A lone low flag of P03 before P01's incident: the span of all points reaches it, and from
    # there P00's case (the span of all widens by the cases it touches, then by the flags).
    flags += [_flag("P03", weeks[0] + noon, "volume")]
    flags += [_flag("P01", hour, "volume", "medium") for hour in chain]
    flags += [
        _flag("P02", weeks[3] - pd.Timedelta(days=1) + noon, "volume"),
        _flag("P02", weeks[3] + pd.Timedelta(days=2) + noon, "volume"),
        _flag("P02", weeks[4] + pd.Timedelta(days=1) + noon, "volume"),
    ]
    frame = pd.DataFrame(flags)
    for start, end in zip(weeks[:-1], weeks[1:], strict=False):
        mine = frame[(frame["hour_start"] >= start) & (frame["hour_start"] < end)]
        if start == weeks[4]:
            far = list_cases(engine).set_index("point_id").loc["P00"]
        record_flags(engine, mine, start, end, model_version="m0", known_until=end)

    after = list_cases(engine).set_index("point_id")
    assert after.loc["P00", "case_id"] == far["case_id"]
    assert after.loc["P00", "updated_at"] == far["updated_at"]  # not rewritten
    assert (after.loc["P01", "start_at"], after.loc["P01", "end_at"]) == (
        chain[0],
        chain[-1] + pd.Timedelta(hours=1),
    )
    assert after.loc["P02", "start_at"] == weeks[3] - pd.Timedelta(days=1) + noon
    walked = _case_tables(engine)
    rebuild_cases(engine, weeks[0], weeks[-1])  # every point regrouped within the span of all
    for name, table in _case_tables(engine).items():
        pd.testing.assert_frame_equal(walked[name], table, check_exact=True)
