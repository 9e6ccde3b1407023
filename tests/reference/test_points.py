import subprocess
import sys

import pytest

from pipeline.core.errors import UnusableInputError
from pipeline.reference.points import known_points, load_registry, parse_registry
from tests.helpers import REPO_ROOT

REGISTRY = """point_id,name,revenue_type,district,open_hours,timezone
PK-001,Parkir Pasar Baru,parking,Kota,06:00-22:00,
RS-002,Warung Sate,restaurant_tax,Utara,10:00-22:00,Asia/Makassar
"""


def test_registry_loads_and_updates(engine, tmp_path):
    path = tmp_path / "points.csv"
    path.write_text(REGISTRY)
    assert load_registry(engine, path) == 2
    path.write_text(REGISTRY.replace("Warung Sate", "Warung Sate Pak Kumis"))
    assert load_registry(engine, path) == 2
    registry = known_points(engine)
    assert registry["RS-002"]["name"] == "Warung Sate Pak Kumis"
    assert registry["RS-002"]["timezone"] == "Asia/Makassar"
    assert registry["PK-001"]["timezone"] == "Asia/Jakarta"  # the default


def test_registry_keeps_an_optional_taxpayer_number(engine, tmp_path):
    path = tmp_path / "points.csv"
    path.write_text(
        "point_id,name,revenue_type,district,open_hours,taxpayer_id\n"
        "RS-002,Warung Sate,restaurant_tax,Utara,10:00-22:00, P.2.0012345.05.01 \n"
        "PK-001,Parkir Pasar Baru,parking,Kota,06:00-22:00,\n"
    )
    load_registry(engine, path)
    registry = known_points(engine)
    assert registry["RS-002"]["taxpayer_id"] == "P.2.0012345.05.01"
    assert registry["PK-001"]["taxpayer_id"] is None


def test_bad_registry_names_every_problem_with_its_line(tmp_path):
    path = tmp_path / "points.csv"
    path.write_text(REGISTRY + "XX-1,X,casino,Kota,25:00-02:00,Mars/Base\n")
    with pytest.raises(UnusableInputError) as caught:
        parse_registry(path)
    message = str(caught.value)
    assert "line 4" in message and "'casino'" in message and "'25:00-02:00'" in message
    assert "'Mars/Base'" in message


def test_registry_missing_columns_is_refused(tmp_path):
    path = tmp_path / "points.csv"
    path.write_text("point_id,name\nA,B\n")
    with pytest.raises(UnusableInputError, match="missing column"):
        parse_registry(path)


def test_cli_turns_unusable_input_into_one_line_and_exit_2(tmp_path):
    env = {"EINCOME_HOME": str(tmp_path), "PATH": "/usr/bin:/bin"}
    done = subprocess.run(
        [sys.executable, "-m", "pipeline", "points", "load", str(tmp_path / "nope.csv")],
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO_ROOT,
    )
    assert done.returncode == 2
    assert "cannot open" in done.stderr and "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
