import sys

from p2p.cli import main

sys.exit(main())
