"""`python -m oracle node|work|demo` (see oracle/cli.py)."""

import sys

from oracle.cli import main

sys.exit(main())
