"""Loader of the published data sets copied into tests/data (one place for the provenance check)."""
import gzip
import hashlib
from pathlib import Path

DATA = Path(__file__).parent.parent / "data"


def load_published(name, n_chars, sha256):
    """The copied source text of ``tests/data/<name>`` (gzip), its '#' provenance lines dropped.

    Asserts that the text has ``n_chars`` characters and the SHA-256 ``sha256`` (hex) of the
    text as copied from its source, so a changed data file fails the test that reads it.
    """
    with gzip.open(DATA / name, "rt") as f:
        text = "".join(line for line in f if not line.startswith("#"))
    assert len(text) == n_chars and hashlib.sha256(text.encode()).hexdigest() == sha256
    return text
