"""The deadline of the call being served, shared by every layer without being passed along.

The gRPC layer knows when the shim stops waiting; the writer, the retry loop and a
provider waiting for a pooled connection must all stop by then. The deadline is an
absolute ``time.monotonic()`` timestamp kept in a context variable, so that it follows
the call through ``await`` and into the tasks it starts, and never leaks into another
call. This module imports nothing of the sidecar: every layer may use it.
"""

from __future__ import annotations

import contextlib
import contextvars
import time
from collections.abc import Iterator

#: The deadline of the call being served, as a ``time.monotonic()`` timestamp (None: none).
call_deadline: contextvars.ContextVar[float | None] = contextvars.ContextVar(
    "hz_sidecar_call_deadline", default=None
)


@contextlib.contextmanager
def deadline_scope(seconds: float | None) -> Iterator[float | None]:
    """Bound everything inside the block to ``seconds`` from now (None: unbounded).

    An enclosing scope with an earlier deadline wins.
    """
    outer = call_deadline.get()
    deadline = None if seconds is None else time.monotonic() + seconds
    if outer is not None and (deadline is None or outer < deadline):
        deadline = outer
    token = call_deadline.set(deadline)
    try:
        yield deadline
    finally:
        call_deadline.reset(token)


def remaining(deadline: float | None) -> float | None:
    """Seconds left before ``deadline`` (never negative), None when unbounded."""
    if deadline is None:
        return None
    return max(0.0, deadline - time.monotonic())
