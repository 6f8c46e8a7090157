"""``python -m callbridge``: the same command line as the ``callbridge`` console script."""

import sys

from callbridge.adapters.cli import main

if __name__ == "__main__":
    sys.exit(main())
