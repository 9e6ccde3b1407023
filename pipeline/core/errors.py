"""The one error type for input a person gave us that we cannot use."""


class UnusableInputError(Exception):
    """Raised when a file, argument or setting cannot be used as given.

    The message must name the bad value and where it was, so a person can act on it:
    ``feed week3.csv line 1042: amount "-5000" is negative``. The CLI prints it as one line
    and exits non-zero; the web app shows it on an error page.
    """


class NotFoundError(UnusableInputError):
    """The thing a person asked for (a case, a batch, a user) does not exist: a 404 in the app."""
