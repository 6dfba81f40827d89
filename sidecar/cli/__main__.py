"""``python -m sidecar.cli``: the ``hz-sidecar`` command without its console script."""

import sys

from sidecar.cli import main

sys.exit(main())
