"""Exception classes of evtools.

Every error that evtools raises on purpose derives from :class:`EvtoolsError`.
Errors caused by bad input also derive from :class:`ValueError`, so code that
already catches ``ValueError`` keeps working.
"""


class EvtoolsError(Exception):
    """Base class of every error raised by evtools."""


class InvalidInputError(EvtoolsError, ValueError):
    """An argument has the wrong shape, dtype, value or is non-finite."""


class NotFittedError(EvtoolsError, ValueError, AttributeError):
    """A method that needs fitted state was called before ``fit``.

    Both a ``ValueError`` and an ``AttributeError``, like scikit-learn's
    ``NotFittedError``, so code written for scikit-learn catches it.
    """


class UnsupportedModelError(EvtoolsError):
    """A model's layer is one an adapter cannot give exact per-filter columns for.

    The message names the layer, the reason and the way out (usually leaving
    the layer out with ``filters=``).
    """


class FileFormatError(InvalidInputError):
    """A file given to a loader is missing, damaged or not what the loader reads."""


class FileWriteError(EvtoolsError, OSError):
    """Writing a file failed (disk full, file-size limit, permissions); the message names the file."""
