"""Exception classes of evtools.

Every error that evtools raises on purpose derives from :class:`EvtoolsError`.
Errors caused by bad input also derive from :class:`ValueError`, so code that
already catches ``ValueError`` keeps working.
"""


class EvtoolsError(Exception):
    """Base class of every error raised by evtools."""


class InvalidInputError(EvtoolsError, ValueError):
    """An argument has the wrong shape, dtype, value or is non-finite."""


class NotFittedError(EvtoolsError, AttributeError):
    """A method that needs fitted state was called before ``fit``."""


class UnsupportedModelError(EvtoolsError, ValueError):
    """A model or layer that an adapter cannot compute exactly; the message names it, why, and the way out."""
