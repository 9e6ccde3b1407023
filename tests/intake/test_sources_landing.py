import json
import os
import time

import pytest
from sqlalchemy import select

from pipeline.core.errors import UnusableInputError
from pipeline.intake.sources import LandingSource
from pipeline.intake.sources.landing import pull_landing, settled_files
from pipeline.store.schema import ingest_batches
from tests.helpers.sources_helpers import (
    feed_rows,
    load_points,
    sqlite_store,
    stored_txn_ids,
    write_csv,
)


@pytest.fixture
def sqlite_engine(sqlite_url):
    yield from sqlite_store(sqlite_url)


@pytest.fixture
def landing(tmp_path):
    config = LandingSource(
        name="kota",
        path=tmp_path / "in",
        archive=tmp_path / "archive",
        pattern="*",
        settle_seconds=30,
    )
    config.path.mkdir()
    return config


def _age(path, seconds=120):
    """Make a file look finished: unchanged for ``seconds``."""
    then = time.time() - seconds
    os.utime(path, (then, then))
    return path


def test_csv_gz_and_jsonl_are_ingested_once_and_archived(engine, landing, tmp_path):
    load_points(engine, tmp_path)
    _age(write_csv(landing.path / "a.csv.gz", feed_rows(10)))
    jsonl = landing.path / "b.jsonl"
    jsonl.write_text("".join(json.dumps(r) + "\n" for r in feed_rows(5, start=10)))
    _age(jsonl)

    results = pull_landing(engine, landing)

    assert sorted(r.rows_read for r in results) == [5, 10]
    assert sum(r.accepted for r in results) == 15
    assert len(stored_txn_ids(engine)) == 15
    assert list(landing.path.iterdir()) == []
    archived = sorted(p.name for p in landing.archive.rglob("*") if p.is_file())
    assert archived == ["a.csv.gz", "b.jsonl"]
    with engine.connect() as connection:
        sources = set(connection.execute(select(ingest_batches.c.source)).scalars())
        shas = connection.execute(select(ingest_batches.c.sha256)).scalars().all()
    assert sources == {"landing:kota"}
    assert all(sha and len(sha) == 64 for sha in shas)


def test_same_file_dropped_again_is_not_processed_twice(sqlite_engine, landing, tmp_path):
    load_points(sqlite_engine, tmp_path)
    rows = feed_rows(8)
    _age(write_csv(landing.path / "day1.csv", rows))
    assert len(pull_landing(sqlite_engine, landing)) == 1

    # The collection point re-sends the very same file, under another name as well.
    _age(write_csv(landing.path / "day1.csv", rows))
    _age(write_csv(landing.path / "day1-resend.csv", rows))
    assert pull_landing(sqlite_engine, landing) == []

    with sqlite_engine.connect() as connection:
        assert connection.execute(select(ingest_batches.c.batch_id)).scalars().all() == [1]
    assert len(stored_txn_ids(sqlite_engine)) == 8
    names = sorted(p.name for p in landing.archive.rglob("*.csv"))
    assert len(names) == 3 and "day1.csv" in names and "day1-resend.csv" in names


def test_file_still_being_written_is_left_alone(sqlite_engine, landing, tmp_path):
    load_points(sqlite_engine, tmp_path)
    fresh = write_csv(landing.path / "now.csv", feed_rows(3))  # mtime: just now
    partial = _age(write_csv(landing.path / "big.csv.part", feed_rows(3, start=3)))
    hidden = _age(write_csv(landing.path / ".big.csv", feed_rows(3, start=6)))
    other = landing.path / "readme.txt"
    other.write_text("not a feed name")
    _age(other)

    assert settled_files(landing) == []
    assert pull_landing(sqlite_engine, landing) == []
    assert {p.name for p in landing.path.iterdir()} == {
        fresh.name,
        partial.name,
        hidden.name,
        "readme.txt",
    }

    # Once it has settled, it is taken.
    assert settled_files(landing, now=time.time() + 60) == [fresh]


def test_rejected_file_is_moved_aside_and_the_pull_fails_naming_it(
    sqlite_engine, landing, tmp_path
):
    load_points(sqlite_engine, tmp_path)
    _age(write_csv(landing.path / "good.csv", feed_rows(4)))
    bad = landing.path / "bad.csv"
    bad.write_text("hello,world\n1,2\n")
    _age(bad)

    with pytest.raises(
        UnusableInputError, match=r"landing source kota: 1 file\(s\) rejected .*bad\.csv"
    ):
        pull_landing(sqlite_engine, landing)

    assert len(stored_txn_ids(sqlite_engine)) == 4  # the good file went through
    assert [p.name for p in (landing.archive / "rejected").rglob("*.csv")] == ["bad.csv"]
    assert list(landing.path.iterdir()) == []


def test_missing_landing_folder_is_a_clear_error(sqlite_engine, tmp_path):
    config = LandingSource(name="x", path=tmp_path / "nowhere", archive=tmp_path / "a")
    with pytest.raises(
        UnusableInputError, match="landing source x: folder .*nowhere does not exist"
    ):
        pull_landing(sqlite_engine, config)
