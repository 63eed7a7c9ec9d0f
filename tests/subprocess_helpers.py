"""Helpers of the tests that run evtools in a fresh interpreter or write to odd files."""
import os
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "adapters")])}
"""The environment of a child interpreter: this checkout's packages first."""


def run_python(code, *args, timeout=300):
    """Run ``code`` (dedented) in a new interpreter with ``args`` as ``sys.argv[1:]``; the CompletedProcess."""
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code), *map(str, args)],
                          capture_output=True, text=True, env=ENV, timeout=timeout)


def make_fifo(path):
    """A fifo with a reader attached, so that code that (wrongly) opens it for writing does not block."""
    os.mkfifo(path)
    return os.open(path, os.O_RDONLY | os.O_NONBLOCK)
