"""`python -m collector`: the same as the `collector` command (collector/cli)."""

import sys

from collector.cli import main

if __name__ == "__main__":
    sys.exit(main())
