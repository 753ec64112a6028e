"""``python -m research_lib.cli ARGS`` is ``research-lib ARGS``."""

import sys

from . import main

sys.exit(main())
