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


class UnsupportedModelError(EvtoolsError, ValueError):
    """A model or layer that an adapter cannot compute exactly.

    The message names the layer (or parameter), the reason (parametrised,
    compiled, shared, checkpointed ...) and the way out (usually leaving it
    out with ``layers=`` / ``filters=``, or ``method="func"``).
    """


class FileFormatError(InvalidInputError):
    """A file given to a loader is missing, damaged or not what the loader reads."""


class FileWriteError(EvtoolsError, OSError):
    """Writing a file failed (disk full, file-size limit, permissions); the message names the file."""
