"""``python -m evtools``: the same command line as the ``evtools`` console script."""
import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
