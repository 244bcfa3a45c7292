"""``python -m msgr_nodes``: the same as the ``msgr-nodes`` command."""
import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
