"""The exit codes of every ``hz-sidecar`` command."""

from __future__ import annotations

from typing import Final

EXIT_OK: Final = 0
#: Unexpected failure; also ``dlq replay`` / ``adopt`` when some entry was not done.
EXIT_FAILURE: Final = 1
#: Invalid configuration or usage (the message names the key).
EXIT_CONFIG: Final = 2
#: The provider cannot be reached (``check``, ``migrate``, or ``run`` at start).
EXIT_UNAVAILABLE: Final = 3
