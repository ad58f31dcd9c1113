"""``python -m hatchway.transfer``: see :mod:`hatchway.transfer`."""

import sys

from hatchway.transfer.cli import main

sys.exit(main())
