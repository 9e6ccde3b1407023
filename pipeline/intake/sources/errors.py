"""The one failure of a source that is not the user's input: it is down. Retrying later may help."""


class SourceUnavailableError(Exception):
    """A source kept failing (5xx, timeouts, refused connections) after every retry."""
