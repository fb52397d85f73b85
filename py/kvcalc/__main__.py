"""``python -m kvcalc``: see kvcalc.cli."""

import sys

from .cli import main

sys.exit(main())
