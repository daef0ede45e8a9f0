"""``python -m tpose.export.int8``."""

import sys

from .command import main

sys.exit(main())
