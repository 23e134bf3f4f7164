"""Run the command line with ``python -m riskstream``."""

import sys

from riskstream.cli import main

sys.exit(main())
