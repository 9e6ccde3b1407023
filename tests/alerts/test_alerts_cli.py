"""`eincome alerts ...` and `eincome users email`: a supervisor manages the rules and sends by
hand, without Airflow, to a real SMTP server on 127.0.0.1."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from pipeline.casework.users import add_user
from pipeline.cli import app, main
from pipeline.store import connect
from pipeline.store.failures import record_failure


def _run(*args: str):
    return CliRunner().invoke(app, list(args))


def test_rules_email_send_and_history_from_the_command_line(tmp_path, smtp_home):
    inbox = smtp_home
    engine = connect(f"sqlite:///{tmp_path / 'eincome.db'}")
    add_user(engine, "oki", "ops", "password-123", actor="test")

    listed = _run("alerts", "rules", "list")
    assert listed.exit_code == 0
    assert "pipeline failures to ops\tfailure\t-\trole:ops\taktif" in listed.stdout
    added = _run("alerts", "rules", "add", "oki failures", "--event", "failure", "--user", "oki")
    assert added.exit_code == 0, added.output
    assert added.stdout == "aturan oki failures ditambahkan: failure - ke user:oki\n"
    assert _run("alerts", "rules", "disable", "oki failures").exit_code == 0
    assert "oki failures\tfailure\t-\tuser:oki\tnonaktif" in _run("alerts", "rules", "list").stdout

    record_failure(engine, "eincome_detect.score_and_cases", "manual__1", "ValueError: boom")
    nobody = _run("alerts", "send")
    assert "tanpa alamat e-mail (eincome users email NAMA ALAMAT): oki" in nobody.stdout
    assert _run("users", "email", "oki", "oki@pemkab.test").exit_code == 0
    sent = _run("alerts", "send", "--json")
    assert json.loads(sent.stdout)["sent"] == 1
    assert [rcpts for rcpts, _ in inbox.mails] == [["oki@pemkab.test"]]
    again = _run("alerts", "send")
    assert again.stdout.startswith("0 terkirim, 0 gagal (dicoba lagi pada run berikutnya), 1 sudah")
    history = _run("alerts", "history").stdout.splitlines()
    assert len(history) == 1 and "\tuser:oki\toki@pemkab.test\temail\t#1\tsent" in history[0]
    assert _run("alerts", "digest", "--day", "2026-03-04").exit_code == 0


def test_a_bad_rule_from_the_command_line_is_one_line_and_exit_2(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("EINCOME_HOME", str(tmp_path))
    monkeypatch.setenv("EINCOME_DB_URL", "")
    monkeypatch.delenv("EINCOME_LANGUAGE", raising=False)
    monkeypatch.setattr(
        "sys.argv", ["eincome", "alerts", "rules", "add", "x", "--event", "sms", "--role", "ops"]
    )
    with pytest.raises(SystemExit) as exit_:
        main()
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert "aturan 'x': peristiwa 'sms' bukan salah satu dari case, silence, failure" in err
    assert "Traceback" not in err
