"""The one error type for input a person gave us that we cannot use."""

from __future__ import annotations

from pipeline.core.phrases import Phrase, phrase


class UnusableInputError(Exception):
    """Raised when a file, argument or setting cannot be used as given.

    The message must name the bad value and where it was, so a person can act on it:
    ``feed week3.csv line 1042: amount "-5000" is negative``. The CLI prints it as one line
    and exits non-zero; the web app shows it on an error page.

    Made with ``said`` (a msgid and its values, ``core.phrases``), the refusal also carries its
    ``phrase``, so the app and the commands say it in the reader's language; ``str()`` is the
    English.
    """

    phrase: Phrase | None = None

    @classmethod
    def said(cls, msgid: str, **params):
        part = phrase(msgid, **params)
        error = cls(part.english())
        error.phrase = part
        return error


class NotFoundError(UnusableInputError):
    """The thing a person asked for (a case, a batch, a user) does not exist: a 404 in the app."""
