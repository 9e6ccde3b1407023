"""The review app's languages: Bahasa Indonesia first, English second.

Every string a user of the app reads is an English msgid in the code or a template, looked up in
``locale/<lang>/LC_MESSAGES/messages.po``. Only the ``.po`` is committed: it is compiled in
memory when first needed (babel's ``read_po`` -> ``write_mo`` -> ``Translations``), so a fresh
clone and an installed wheel work alike without a build step. English is the msgids themselves.

The language of a request: ``?lang=`` (which also sets the ``eincome_lang`` cookie, so the choice
sticks), else that cookie, else Indonesian. Templates get ``_``/``gettext``/``ngettext`` through
Jinja2's i18n extension; the callables read the language of the page being rendered from a
context variable that ``deps.render`` sets around the rendering.

``python -m pipeline.review.i18n`` re-extracts the msgids (templates and Python) into the
Indonesian catalog, keeping the translations already there; a test fails while any is missing.
"""

from __future__ import annotations

import functools
import io
import sys
from contextvars import ContextVar
from gettext import NullTranslations
from pathlib import Path

from babel.messages.catalog import Catalog
from babel.messages.extract import extract_from_dir
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po, write_po
from babel.support import Translations

from pipeline.core.errors import NotFoundError, UnusableInputError

HERE = Path(__file__).parent
LOCALE_DIR = HERE / "locale"
LANGUAGES = {"id": "Bahasa Indonesia", "en": "English"}
DEFAULT_LANGUAGE = "id"
LANG_COOKIE = "eincome_lang"
LANG_COOKIE_DAYS = 365
# Python code marks a msgid it does not translate on the spot (a label table) with N_.
KEYWORDS = {
    "_": None,
    "gettext": None,
    "ngettext": (1, 2),
    "N_": None,
    "tr": (2,),
    "TranslatableInputError": None,
    "TranslatableNotFound": None,
    # core.phrases.phrase: the detector's, reconciliation's and late data's reason parts
    "phrase": None,
    "say": None,  # pipeline.cli.common.say: what the commands print
    "said": None,  # core.errors.UnusableInputError.said: refusals the domain phrases
}
JINJA_EXTENSIONS = "jinja2.ext.i18n"

current_language: ContextVar[str] = ContextVar("eincome_language", default=DEFAULT_LANGUAGE)

__all__ = [
    "DEFAULT_LANGUAGE",
    "LANGUAGES",
    "LANG_COOKIE",
    "N_",
    "TranslatableInputError",
    "TranslatableNotFound",
    "catalog_path",
    "choose_language",
    "current_language",
    "extract",
    "gettext",
    "ngettext",
    "translations",
]


def N_(message: str) -> str:  # noqa: N802 - the gettext convention for "mark, translate later"
    """Mark ``message`` for the catalog without translating it here."""
    return message


def catalog_path(lang: str) -> Path:
    return LOCALE_DIR / lang / "LC_MESSAGES" / "messages.po"


@functools.cache
def translations(lang: str) -> NullTranslations:
    """The compiled catalog of ``lang`` (English: the msgids as they are)."""
    path = catalog_path(lang)
    if lang not in LANGUAGES or lang == "en" or not path.exists():
        return NullTranslations()
    with path.open("rb") as po:
        catalog = read_po(po, locale=lang)
    compiled = io.BytesIO()
    write_mo(compiled, catalog)
    compiled.seek(0)
    return Translations(fp=compiled)


def gettext(message: str) -> str:
    return translations(current_language.get()).gettext(message)


def ngettext(singular: str, plural: str, n: int) -> str:
    return translations(current_language.get()).ngettext(singular, plural, n)


def choose_language(query_value: str | None, cookie_value: str | None) -> str:
    """The request's language: a valid ``?lang=``, else a valid cookie, else Indonesian."""
    for value in (query_value, cookie_value):
        if value in LANGUAGES:
            return value
    return DEFAULT_LANGUAGE


class _Translatable:
    """A refusal whose message is a msgid with ``%(name)s`` parameters, so the error page can
    say it in the reader's language (``str()`` is the English)."""

    def __init__(self, msgid: str, **params) -> None:
        self.msgid, self.params = msgid, params
        super().__init__(msgid % params)

    def translated(self, lang: str) -> str:
        return translations(lang).gettext(self.msgid) % self.params


class TranslatableInputError(_Translatable, UnusableInputError):
    """An unusable request the review app itself refuses (a 400 page)."""


class TranslatableNotFound(_Translatable, NotFoundError):
    """Something the review app was asked for that does not exist (a 404 page)."""


# ----------------------------------------------------------------------------- the catalog


def extract() -> Catalog:
    """Every msgid a user reads: the review app's templates and Python, the commands' messages,
    and the reasons' phrases the producers write."""
    catalog = Catalog(locale=DEFAULT_LANGUAGE, project="eincome review")
    method_map = [
        ("review/templates/**.html", "jinja2"),
        ("review/**.py", "python"),
        ("cli/**.py", "python"),  # the commands speak the same languages
        # The producers of reasons (``core.phrases.phrase``) the app and the commands show.
        ("detection/**.py", "python"),
        ("reconciliation/**.py", "python"),
        ("casework/**.py", "python"),
        ("alerts/**.py", "python"),  # alert and digest e-mails
        ("reference/**.py", "python"),  # refusals of the targets file and form
        ("intake/quarantine.py", "python"),  # its refusals reach the app and the commands
    ]
    options_map = {"review/templates/**.html": {"extensions": JINJA_EXTENSIONS}}
    for filename, lineno, message, comments, context in extract_from_dir(
        str(HERE.parent),
        method_map=method_map,
        options_map=options_map,
        keywords=KEYWORDS,
        comment_tags=("Translators:",),
        strip_comment_tags=True,
    ):
        catalog.add(message, None, [(filename, lineno)], auto_comments=comments, context=context)
    return catalog


def update_catalog(lang: str = DEFAULT_LANGUAGE) -> tuple[int, int]:
    """Merge the extracted msgids into ``lang``'s .po; returns (msgids, untranslated)."""
    template = extract()
    path = catalog_path(lang)
    if path.exists():
        with path.open("rb") as po:
            catalog = read_po(po, locale=lang)
        catalog.update(template, no_fuzzy_matching=True)
    else:
        catalog = Catalog(locale=lang, project="eincome review")
        catalog.update(template, no_fuzzy_matching=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as po:
        # No line numbers: a line moved in a template must not churn the catalog.
        write_po(po, catalog, width=100, ignore_obsolete=True, include_lineno=False)
    untranslated = sum(1 for m in catalog if m.id and not m.string)
    return len([m for m in catalog if m.id]), untranslated


if __name__ == "__main__":
    total, missing = update_catalog(sys.argv[1] if len(sys.argv) > 1 else DEFAULT_LANGUAGE)
    print(f"{catalog_path(DEFAULT_LANGUAGE)}: {total} messages, {missing} untranslated")
