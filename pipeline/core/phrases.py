"""Reasons as phrases: a message id and its named values, so a reader's language can say them.

The detector, late-data re-scoring and reconciliation explain every flag, gap and closing in
words. They run below the review app and know nothing of languages, so they do not write finished
sentences: each part of a reason is a ``Phrase``, an English msgid such as ``"revenue %(drop_pct)s
below the usual for %(at_slot)s"`` with its values kept as values. ``phrase(...)`` is also the
catalog's marker (``pipeline.review.i18n`` extracts its first argument), so every msgid a producer
writes reaches ``messages.po``.

What a value is, is said by the end of its name, so one table formats it for English here and
the review app formats it for a language in ``review.formats``:

    _rp   whole rupiah              Rp 1.234.567
    _pct  a fraction, as a percent  0.58 -> 58%
    _n    a count                   12 (grouped for the reader: 1.234)
    _avg  an average count          0.4 (one decimal)
    _day  a local calendar day      2026-03-01
    _days a run of days [from, to]  2026-03-01..2026-03-31
    _month a calendar month         2026-03
    _at   a local time, ISO with offset (named with the zone of ``tz`` when present)
    _slot an hour of the week       "Tue 10:00"
    _kind a domain code             under_reporting -> "under reporting" (a label in the app)
    _kinds [code, hours] pairs      "device off 3 h, under reporting 1 h"
    _part a nested phrase (its JSON form)
    _parts a list of nested phrases, said '; '-separated (a refusal's several problems)
    anything else: text shown as it is (point, operator and payer ids, a holiday's name)

The stored ``reasons`` text stays the English rendering (``english``) so the CSV and JSON of the
command line, logs and older readers keep working and a test can read it; the phrases are stored
beside it as JSON (``dumps``) and rendered in the reader's language wherever a person reads them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import date, datetime
from numbers import Integral, Real

from pipeline.core.money import rupiah

SEPARATOR = "; "

__all__ = [
    "SEPARATOR",
    "Phrase",
    "as_phrase",
    "dumps",
    "english",
    "kind_of",
    "loads",
    "phrase",
]


@dataclass(frozen=True)
class Phrase:
    """One part of a reason: an English msgid with ``%(name)s`` placeholders and their values."""

    msgid: str
    params: dict = field(default_factory=dict)

    def english(self) -> str:
        if not self.params:  # a msgid without placeholders is not a format ("58% less")
            return self.msgid
        return self.msgid % {name: _english(name, v) for name, v in self.params.items()}

    def to_json(self) -> dict:
        return {"id": self.msgid, "params": self.params} if self.params else {"id": self.msgid}

    @classmethod
    def from_json(cls, value: dict) -> Phrase:
        return cls(str(value["id"]), dict(value.get("params") or {}))


def phrase(msgid: str, **params) -> Phrase:
    """A reason part; values become plain JSON (numpy numbers, dates, nested phrases)."""
    return Phrase(msgid, {name: _plain(v) for name, v in params.items()})


def _plain(value):
    if isinstance(value, Phrase):
        return value.to_json()
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, Integral):
        return int(value)
    if isinstance(value, Real):
        return float(value)
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    raise TypeError(f"a phrase value must be text, a number, a date or a list, not {value!r}")


def kind_of(name: str) -> str:
    """The kind of value a parameter holds, from the end of its name ('' for plain text)."""
    suffix = name.rsplit("_", 1)[-1] if "_" in name else ""
    return suffix if suffix in KINDS else ""


def _english(name: str, value) -> str:
    return KINDS.get(kind_of(name), _text)(value)


def _text(value) -> str:
    return "" if value is None else str(value)


def _count(value) -> str:
    return f"{float(value):.0f}"


def _kinds(pairs) -> str:
    return ", ".join(f"{str(code).replace('_', ' ')} {int(n)} h" for code, n in pairs)


def _at(value) -> str:
    moment = datetime.fromisoformat(str(value))
    return f"{moment:%Y-%m-%d %H:%M}"


KINDS = {
    "rp": rupiah,
    "pct": lambda v: f"{round(100 * float(v))}%",
    "n": _count,
    "avg": lambda v: f"{float(v):.1f}",
    "day": _text,
    "days": lambda v: f"{v[0]}..{v[1]}",
    "month": _text,
    "at": _at,
    "slot": _text,
    "kind": lambda v: str(v).replace("_", " "),
    "kinds": _kinds,
    "part": lambda v: Phrase.from_json(v).english(),
    "parts": lambda v: SEPARATOR.join(Phrase.from_json(p).english() for p in v),
}


def as_phrase(part: Phrase | str) -> Phrase:
    """A part as a phrase: finished text (a producer's words not yet in the catalog) stays as
    it is in every language."""
    return part if isinstance(part, Phrase) else Phrase(str(part))


def english(phrases: list[Phrase]) -> str:
    """The stored text of a reason: its parts in English, '; '-separated."""
    return SEPARATOR.join(as_phrase(p).english() for p in phrases)


def dumps(phrases: list[Phrase]) -> str:
    """The JSON stored beside the text (``reason_parts``)."""
    return json.dumps([as_phrase(p).to_json() for p in phrases], ensure_ascii=False, sort_keys=True)


def loads(text: str | None) -> list[Phrase] | None:
    """The phrases of a stored ``reason_parts``; None for rows written before there were any."""
    if not text:
        return None
    try:
        return [Phrase.from_json(v) for v in json.loads(text)]
    except (ValueError, TypeError, KeyError):
        return None
