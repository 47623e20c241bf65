"""Run the ``dbapi-pool`` command as ``python -m dbapi_pool``."""

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
