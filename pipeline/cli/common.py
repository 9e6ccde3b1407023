"""Helpers shared by command modules: the runtime from the environment, the error console, and
the language the commands speak.

Command modules import this, never the hub (`pipeline.cli`), so imports flow one way:
hub -> command modules -> common -> pipeline.

Every sentence a command prints for a person goes through ``say`` (an English msgid with
``%(name)s`` values, looked up in the review app's catalog, ``pipeline.review.i18n``), so the
commands speak Bahasa Indonesia by default and English with ``--lang en`` or
``EINCOME_LANGUAGE=en``. Machine output stays as it is: JSON keys and CSV headers are English
names, and ``--help`` is English (Typer builds it before any option is read).
"""

from __future__ import annotations

import functools
from datetime import datetime

from rich.console import Console

from pipeline.core.errors import UnusableInputError
from pipeline.core.settings import LANGUAGES, Settings
from pipeline.runtime import Runtime, runtime_from_env

err_console = Console(stderr=True)

_chosen: list[str] = []  # the --lang of this run, set by the hub's callback


def runtime() -> Runtime:
    return runtime_from_env()


def choose_language(lang: str | None) -> None:
    """The hub's ``--lang``: this run's language, over EINCOME_LANGUAGE."""
    _chosen.clear()
    if lang is not None:
        _chosen.append(_checked(lang, "--lang"))


def language() -> str:
    """The language of this run: ``--lang``, else EINCOME_LANGUAGE, else Bahasa Indonesia."""
    if _chosen:
        return _chosen[0]
    try:
        return Settings.from_env().language
    except UnusableInputError:  # a bad setting: runtime() says so, in the default language
        return "id"


def _checked(lang: str, where: str) -> str:
    if lang not in LANGUAGES:
        raise UnusableInputError(
            say("%(where)s %(lang)r: the commands speak id or en", where=where, lang=lang)
        )
    return lang


@functools.cache
def _catalog(lang: str):
    # Imported here: the catalog reader is the review package's (Babel), loaded when a command
    # first speaks, so `eincome --help` stays light.
    from pipeline.review.i18n import translations

    return translations(lang)


def say(msgid: str, **params) -> str:
    """``msgid`` in this run's language, its ``%(name)s`` values filled in."""
    text = _catalog(language()).gettext(msgid)
    return text % params if params else text


def moment_option(value: str, option: str) -> datetime:
    """The time an option gives, ISO 8601 with its UTC offset (a time without one is refused:
    whose midnight would it be?)."""
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise UnusableInputError(
            say("%(option)s %(value)r is not an ISO-8601 time", option=option, value=value)
        ) from None
    if moment.tzinfo is None:
        raise UnusableInputError(
            say(
                "%(option)s %(value)r has no UTC offset (e.g. 2025-11-03T00:00+07:00)",
                option=option,
                value=value,
            )
        )
    return moment


def phrased(part) -> str:
    """A phrase (``core.phrases``) in this run's language."""
    from pipeline.review.formats import phrase_text

    return phrase_text(part, language())


def reason_of(error: Exception) -> str:
    """A refusal's message in this run's language (phrased refusals; others as written)."""
    part = getattr(error, "phrase", None)
    return str(error) if part is None else phrased(part)


def reasons_text(parts: str | None, text: str | None, tz_name: str | None = None) -> str:
    """A stored reason (its phrases, else its text) in this run's language."""
    from pipeline.review.formats import reason_text

    return reason_text(parts, text, language(), tz_name)
