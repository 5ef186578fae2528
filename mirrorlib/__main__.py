"""``python -m mirrorlib``: see :mod:`mirrorlib.cli`."""

import sys

from mirrorlib.cli import main

sys.exit(main())
